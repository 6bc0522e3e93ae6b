"""Message <-> core conversions (FaceMotion, audio_common_msgs, sensor_msgs images)."""
from __future__ import annotations

import numpy as np

from ..core.motion import MotionSpace
from .common import s_to_stamp


def face_motion_msg(msg_type, space: MotionSpace, values: np.ndarray, confidence: float,
                    face_present: bool, stamp_s: float, frame_id: str = ""):
    msg = msg_type()
    s_to_stamp(stamp_s, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.motion_space = space.id
    msg.values = np.asarray(values, dtype=np.float32).tolist()
    msg.confidence = float(confidence)
    msg.face_present = bool(face_present)
    return msg


def read_face_motion(msg, space: MotionSpace) -> tuple[np.ndarray, float, int]:
    """(values, confidence, non-finite count). Raises ValueError for another space/length."""
    if msg.motion_space and msg.motion_space != space.id:
        raise ValueError(f"motion space {msg.motion_space!r}, expected {space.id!r}")
    values, n_bad = space.sanitize(np.asarray(msg.values, dtype=np.float32))
    conf = float(msg.confidence) if np.isfinite(msg.confidence) else 0.0
    if not msg.face_present:
        conf = 0.0
    return values, float(np.clip(conf, 0.0, 1.0)), n_bad


def audio_bytes(msg) -> bytes:
    """The PCM payload of an AudioDataStamped or an AudioData."""
    audio = msg.audio if hasattr(msg, "audio") else msg
    return bytes(audio.data)
