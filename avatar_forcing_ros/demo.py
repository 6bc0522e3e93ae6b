"""The out-of-the-box demo: the avatar answers a synthetic user, written to an MP4.

The user (left, a second stylised face) says a sentence and smiles; the avatar (right)
listens — nodding at the pause, smiling back — then answers with its own synthesised
sentence, lip-synced. Sound: both voices. No ROS needed: the same streaming runtime the
generator node runs, driven on a simulated clock.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from .core.audio import SAMPLE_RATE
from .core.motion import AF_MOTION_V1 as M
from .generation.factory import load_motion_model
from .render import make_renderer
from .render.stylised import StylisedFaceRenderer
from .core.runtime import StreamingGenerator, generate_offline
from .corpus.speech import synthesize
from .offline.video import write_mp4

log = logging.getLogger("avatar_forcing.demo")

USER_TEXT = "Hi there! I just got back from a long trip to the mountains, and it was wonderful."
AVATAR_TEXT = "Welcome back! That sounds amazing. Tell me, what was the best part of the trip?"


def build_conversation(user_text=USER_TEXT, avatar_text=AVATAR_TEXT, gap_s=0.8):
    """User speaks, pauses, the avatar answers. Returns (avatar_audio, user_audio,
    user_motion(t), info dict) on one 16 kHz timeline."""
    user = synthesize(user_text, voice="en-gb", rate_wpm=165, pitch=45)
    avatar = synthesize(avatar_text, voice="en-us", rate_wpm=160, pitch=55)
    lead = int(0.6 * SAMPLE_RATE)
    user_start, user_end = lead, lead + user.audio.size
    avatar_start = user_end + int(gap_s * SAMPLE_RATE)
    n = avatar_start + avatar.audio.size + int(1.0 * SAMPLE_RATE)
    user_audio = np.zeros(n, np.float32)
    user_audio[user_start:user_end] = user.audio
    avatar_audio = np.zeros(n, np.float32)
    avatar_audio[avatar_start:avatar_start + avatar.audio.size] = avatar.audio
    smile_from = user_start / SAMPLE_RATE + 0.5 * user.duration_s
    smile_to = avatar_start / SAMPLE_RATE + 1.5

    def user_motion(t: float):
        """The synthetic user: talks with a moving jaw, smiles, nods once."""
        v = M.neutral()
        i = int(t * SAMPLE_RATE)
        seg = user_audio[max(i - 640, 0):i + 1]
        v[M.index("jawOpen")] = float(np.clip(np.sqrt(np.mean(seg ** 2)) * 6, 0, 0.8)) if seg.size else 0.0
        smile = np.clip(min(t - smile_from, smile_to - t) / 0.4, 0, 1) * 0.9
        v[M.index("mouthSmileLeft")] = v[M.index("mouthSmileRight")] = smile
        v[M.index("cheekSquintLeft")] = v[M.index("cheekSquintRight")] = 0.5 * smile
        v[M.index("head_pitch")] = -0.15 * np.exp(-((t - (user_end / SAMPLE_RATE + 0.3)) / 0.15) ** 2)
        v[M.index("head_yaw")] = 0.05 * np.sin(0.7 * t)
        return v, 1.0

    info = {"user_speech_s": (user_start / SAMPLE_RATE, user_end / SAMPLE_RATE),
            "avatar_speech_s": (avatar_start / SAMPLE_RATE, (avatar_start + avatar.audio.size) / SAMPLE_RATE)}
    return avatar_audio, user_audio, user_motion, info


def label(canvas: np.ndarray, text: str, org: tuple[int, int]) -> None:
    """Light text with a dark outline: readable on the dark face screen and on a photo."""
    for colour, thickness in (((0, 0, 0), 3), ((230, 230, 230), 1)):
        cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, thickness, cv2.LINE_AA)


def run_demo(out: str | Path = "avatar_forcing_demo.mp4", model: str = "default",
             renderer: str = "stylised", size: int = 480, seed: int = 0, portrait: str | None = None) -> dict:
    face_params = dict(width=size, height=size)
    if portrait:  # a photo of one's own: the photo renderer, checked before anything runs
        renderer = "portrait"
        face_params["image_path"] = str(portrait)
    avatar_face = make_renderer(renderer, **face_params)
    avatar_audio, user_audio, user_motion, info = build_conversation()
    motion_model, note = load_motion_model(model, seed=seed)
    if note:
        log.warning(note)
    gen = StreamingGenerator(motion_model)
    frames = generate_offline(gen, avatar_audio, user_audio, user_motion)
    user_face = StylisedFaceRenderer(width=size // 2, height=size // 2, background=(35, 35, 35),
                                     face_colour=(200, 220, 250), feature_colour=(40, 50, 80))

    def video():
        for f in frames:
            canvas = np.zeros((size, size + size // 2, 3), np.uint8)
            canvas[:, size // 2:] = avatar_face.render(f.values)
            canvas[size // 4:size // 4 + size // 2, :size // 2] = user_face.render(user_motion(f.content_time)[0])
            label(canvas, "user", (10, size // 4 - 10))
            label(canvas, f"avatar ({motion_model.name})", (size // 2 + 10, 24))
            yield canvas

    # What a viewer hears: the user live, the avatar's speech as the generator republishes it.
    speech = np.concatenate([f.speech for f in frames])
    delay = int(round(gen.output_delay_s * SAMPLE_RATE))
    sound = np.zeros(len(frames) * gen.hop, np.float32)
    sound[:min(user_audio.size, sound.size)] += user_audio[:sound.size]
    sound[delay:] += speech[:sound.size - delay]
    path = write_mp4(out, video(), gen.fps, sound, SAMPLE_RATE)
    avatar_face.close()
    user_face.close()
    info.update(path=str(path), frames=len(frames), model=motion_model.name)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="avatar_forcing_demo.mp4", help="MP4 to write")
    p.add_argument("--model", default="default", help="default, procedural, checkpoint dir or .onnx")
    p.add_argument("--renderer", default="stylised", help="stylised or portrait")
    p.add_argument("--portrait", default=None, metavar="PHOTO",
                   help="animate this photo (one face; implies --renderer portrait)")
    p.add_argument("--size", type=int, default=480, help="avatar image size (px)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        info = run_demo(a.out, a.model, a.renderer, a.size, a.seed, a.portrait)
    except (FileNotFoundError, ValueError) as e:  # a bad photo, model or option: say which
        print(f"avatar-forcing demo: {e}", file=sys.stderr)
        return 2
    print(f"wrote {info['path']}: {info['frames']} frames, model {info['model']}")
    return 0
