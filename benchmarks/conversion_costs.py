"""What one message conversion costs in the nodes' Python (per message, microseconds).

    source scripts/env.sh && python benchmarks/conversion_costs.py

Times, with the package's own functions: building a FaceMotion (generator, perception),
reading one (renderer), an avatar/audio message (generator, 40 ms of speech per frame),
decoding a 20 ms microphone chunk, building a 480x480 rgb8 Image from the rendered array
(renderer, raw and via the generated message's ``data`` setter), and rclpy's serialisation /
deserialisation of each (what publish and take do in C, without DDS). Multiply by the rates
(25 frames/s, 50 audio chunks/s per stream, 15-30 camera frames/s) for the share of a core.
"""
from __future__ import annotations

import array
import sys
import timeit

import numpy as np


def us(fn, n: int = 2000) -> float:
    t = timeit.Timer(fn)
    reps = max(3, int(0.3 / max(t.timeit(20) / 20, 1e-7) / n) or 3)
    return min(t.repeat(reps, n)) / n * 1e6


def main() -> int:
    from audio_common_msgs.msg import AudioDataStamped
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from avatar_forcing_ros.core.audio import AudioFormat, PcmDecoder, encode_s16le
    from avatar_forcing_ros.core.imaging import array_to_image_fields, image_fields_to_array, to_rgb8
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    from avatar_forcing_ros.core.messages import audio_payload, face_motion_msg, read_face_motion
    from avatar_forcing_ros.ros.messages import ROS_KIT

    rng = np.random.default_rng(0)
    v = M.clip(rng.uniform(0, 1, M.dim).astype(np.float32))
    fm = face_motion_msg(ROS_KIT, M, v, 1.0, True, 12.34, "avatar_face")
    fm_b = serialize_message(fm)
    speech = (0.1 * rng.standard_normal(640)).astype(np.float32)

    def audio_msg():
        m = AudioDataStamped()
        m.audio.data = array.array("B", encode_s16le(speech))
        return m

    am = audio_msg()
    am_b = serialize_message(am)
    mic = AudioDataStamped()
    mic.audio.data = array.array("B", (rng.standard_normal(320) * 300).astype("<i2").tobytes())
    dec = PcmDecoder(AudioFormat(16000, 1, "S16LE"))
    rgb = rng.integers(0, 255, (480, 480, 3), dtype=np.uint8)

    def image_msg():
        f = array_to_image_fields(rgb, "rgb8")
        img = Image(height=f["height"], width=f["width"], encoding="rgb8", is_bigendian=0, step=f["step"])
        img.data = array.array("B", f["data"])
        return img

    img = image_msg()
    img_b = serialize_message(img)

    def image_in():
        a = image_fields_to_array(img.height, img.width, img.encoding, img.is_bigendian, img.step, bytes(img.data))
        return to_rgb8(a, img.encoding)

    rows = [
        ("FaceMotion build (face_motion_msg)", lambda: face_motion_msg(ROS_KIT, M, v, 1.0, True, 12.34, "x"), 25),
        ("FaceMotion read (read_face_motion)", lambda: read_face_motion(fm, M), 25),
        ("FaceMotion serialise", lambda: serialize_message(fm), 25),
        ("FaceMotion deserialise", lambda: deserialize_message(fm_b, ROS_KIT.face_motion), 25),
        ("avatar/audio build (40 ms S16LE)", audio_msg, 25),
        ("avatar/audio serialise", lambda: serialize_message(am), 25),
        ("avatar/audio deserialise", lambda: deserialize_message(am_b, AudioDataStamped), 25),
        ("mic chunk decode (audio_payload + PcmDecoder, 20 ms)", lambda: dec.decode(audio_payload(mic)), 50),
        ("Image build 480x480 rgb8 (renderer)", image_msg, 25),
        ("Image serialise 480x480", lambda: serialize_message(img), 25),
        ("Image deserialise 480x480", lambda: deserialize_message(img_b, Image), 25),
        ("Image to numpy rgb8 (perception)", image_in, 15),
    ]
    print(f"{'conversion':52s} {'us/msg':>9s} {'rate/s':>7s} {'% of a core':>11s}")
    for name, fn, rate in rows:
        t = us(fn, 200 if "Image" in name else 2000)
        print(f"{name:52s} {t:9.1f} {rate:7d} {t * rate / 1e4:10.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
