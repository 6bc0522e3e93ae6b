"""Offline replay speed: bag seconds per compute second (x real time), per stage.

    python benchmarks/replay_speed.py [--camera 640x480] [--images raw|compressed|both|none] [--model default]

Builds a session bag of the demo conversation (synthesised voices, about 9 s): the user's
camera at 25 fps (scikit-image's astronaut drifting a little, raw rgb8), the microphone and the
robot speech in 20 ms messages. Replays it with the shipped parameters and prints the speed
and where the time goes. Torch and OpenCV are held to the threads given (default 1).
"""
import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.core.audio import SAMPLE_RATE, encode_s16le
from avatar_forcing_ros.demo import build_conversation
from avatar_forcing_ros.offline.replay import replay
from camera import drifting_face_frames  # benchmarks/camera.py

CHUNK = 320


def session_bag(path, width, height):
    avatar_audio, user_audio, _, _ = build_conversation()
    duration = user_audio.size / SAMPLE_RATE
    t0 = 100.0
    events = []
    for i, rgb in enumerate(drifting_face_frames(width, height, int(duration * 25))):
        events.append((t0 + i / 25, bags.topic("camera"), rgb))
    for k in range(user_audio.size // CHUNK):
        t = t0 + k * CHUNK / SAMPLE_RATE
        events.append((t, bags.topic("user_audio"), user_audio[k * CHUNK:(k + 1) * CHUNK]))
        if np.any(avatar_audio[k * CHUNK:(k + 1) * CHUNK]):
            events.append((t, bags.topic("speech"), avatar_audio[k * CHUNK:(k + 1) * CHUNK]))
    events.sort(key=lambda e: e[0])
    with bags.BagWriter(path) as w:
        for t, topic, data in events:
            msg = bags.image_msg(data, t, "camera") if data.ndim == 3 else bags.audio_msg(encode_s16le(data), t)
            w.write(topic, bags.t_to_ns(t), msg)
    return duration


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--camera", default="640x480", help="camera size WxH")
    p.add_argument("--images", default="params", help="avatar images written: params, raw, compressed, both, none")
    p.add_argument("--model", default="default", help="generator.model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mp4", action="store_true", help="also write the MP4")
    p.add_argument("--parallel", action="store_true", help="perception in a second process (as the CLI does)")
    a = p.parse_args()
    try:
        import torch
        torch.set_num_threads(a.threads)
    except ImportError:
        pass
    cv2.setNumThreads(a.threads)
    width, height = map(int, a.camera.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        duration = session_bag(Path(tmp) / "in", width, height)
        print(f"session bag: {duration:.1f} s, camera {width}x{height} raw at 25 fps "
              f"(built in {time.perf_counter() - t:.1f} s)")
        res = replay(Path(tmp) / "in", Path(tmp) / "out", images=a.images,
                     overrides=[f"generator.model={a.model}", f"generator.torch_threads={a.threads}"],
                     mp4=Path(tmp) / "avatar.mp4" if a.mp4 else None, parallel=a.parallel)
    print(f"model {res.model}, images {a.images}, perception {'in a second process' if a.parallel else 'inline'}: {res.account.duration_s:.1f} s of bag in {res.wall_s:.2f} s "
          f"= {res.speed:.2f}x real time")
    print(f"{'stage':<12}{'seconds':>9}{'x real time':>13}{'share':>8}")
    for stage, s in res.stage_s.items():
        if s > 0:
            print(f"{stage:<12}{s:>9.2f}{res.account.duration_s / s:>13.1f}{100 * s / res.wall_s:>7.0f}%")
    other = res.wall_s - sum(res.stage_s.values())
    if other < 0:  # stages overlapped: perception ran in its own process
        return
    print(f"{'other':<12}{other:>9.2f}{'':>13}{100 * other / res.wall_s:>7.0f}%  (model and tracker start-up, bookkeeping)")


if __name__ == "__main__":
    main()
