"""The one message module: ROS messages <-> the core's values.

rclpy messages (live nodes) and rosbags messages (bags, replay) have the same field names, so
reading works on either. Building takes a ``MessageKit`` — the classes of one flavour and how
it holds arrays — so the nodes and the bag tools make the same messages the same way. The only
stamp <-> seconds conversions of the package live here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .imaging import (ImageFormatError, array_to_image_fields, compressed_format, decode_compressed,
                      image_fields_to_array, to_rgb8)
from .motion import MotionSpace

PCM_CODINGS = ("wave", "wav", "pcm", "raw")  # AudioInfo.coding_format values that mean raw PCM


@dataclass(frozen=True)
class MessageKit:
    """Message classes of one flavour (rclpy or rosbags) and how it wants array fields."""
    time: type
    header: type
    face_motion: type
    audio_data: type
    audio_stamped: type
    audio_info: type
    image: type
    compressed_image: type
    u8: Callable[[bytes], object]        # uint8[] from bytes
    f32: Callable[[np.ndarray], object]  # float32[] from a float32 array


# -- time ---------------------------------------------------------------------------------------

def stamp_to_s(stamp) -> float:
    """A builtin_interfaces/Time as seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_sec_nanosec(t: float) -> tuple[int, int]:
    """Seconds as (sec, nanosec), rounded to the nanosecond; times before 0 become 0."""
    ns = max(int(round(t * 1e9)), 0)
    return ns // 1_000_000_000, ns % 1_000_000_000


def header_stamp_s(msg) -> float | None:
    """The header stamp of a message in seconds; None if it has no header or the stamp is 0
    (unset: the consumer falls back to arrival time)."""
    header = getattr(msg, "header", None)
    if header is None:
        return None
    return stamp_to_s(header.stamp) or None


def make_header(kit: MessageKit, t, frame_id: str = ""):
    """A Header stamped ``t``: seconds, or a stamp to copy exactly (sec/nanosec)."""
    sec, nanosec = (t.sec, t.nanosec) if hasattr(t, "nanosec") else s_to_sec_nanosec(t)
    return kit.header(stamp=kit.time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)


# -- face motion --------------------------------------------------------------------------------

def face_motion_msg(kit: MessageKit, space: MotionSpace, values: np.ndarray, confidence: float,
                    face_present: bool, t, frame_id: str = ""):
    return kit.face_motion(header=make_header(kit, t, frame_id), motion_space=space.id,
                           values=kit.f32(np.asarray(values, dtype=np.float32)),
                           confidence=float(confidence), face_present=bool(face_present))


def read_face_motion(msg, space: MotionSpace) -> tuple[np.ndarray, float, int]:
    """(values within range, confidence in [0, 1], how many non-finite values were replaced).

    The boundary where face motion from a topic or a bag enters: another motion space or
    length is a ValueError (drop the message), non-finite values become neutral; an absent
    face or a non-finite confidence counts as confidence 0."""
    if msg.motion_space and msg.motion_space != space.id:
        raise ValueError(f"motion space {msg.motion_space!r}, expected {space.id!r}")
    values, n_bad = space.sanitize(np.asarray(msg.values, dtype=np.float32))
    conf = float(msg.confidence)
    if not (np.isfinite(conf) and msg.face_present):
        conf = 0.0
    return values, float(np.clip(conf, 0.0, 1.0)), n_bad


# -- audio --------------------------------------------------------------------------------------

def audio_payload(msg) -> bytes:
    """The PCM bytes of an AudioDataStamped or an AudioData."""
    audio = msg.audio if hasattr(msg, "audio") else msg
    return np.asarray(audio.data, dtype=np.uint8).tobytes()


def audio_stamp(msg) -> float | None:
    """The sender's time of an AudioDataStamped chunk (s); None for AudioData or an unset
    stamp, which are placed by arrival."""
    return header_stamp_s(msg)


def audio_stamped_msg(kit: MessageKit, pcm: bytes, t, frame_id: str = ""):
    return kit.audio_stamped(header=make_header(kit, t, frame_id), audio=kit.audio_data(data=kit.u8(pcm)))


def audio_data_msg(kit: MessageKit, pcm: bytes):
    return kit.audio_data(data=kit.u8(pcm))


def audio_info_msg(kit: MessageKit, sample_rate: int = 16000, channels: int = 1,
                   sample_format: str = "S16LE", coding_format: str = "wave"):
    return kit.audio_info(channels=int(channels), sample_rate=int(sample_rate),
                          sample_format=sample_format, bitrate=0, coding_format=coding_format)


def is_pcm_coding(coding_format: str) -> bool:
    return (coding_format or "wave").strip().lower() in PCM_CODINGS


# -- images -------------------------------------------------------------------------------------

def image_msg(kit: MessageKit, rgb: np.ndarray, t, frame_id: str = "", encoding: str = "rgb8"):
    f = array_to_image_fields(rgb, encoding)
    return kit.image(header=make_header(kit, t, frame_id), height=f["height"], width=f["width"],
                     encoding=f["encoding"], is_bigendian=f["is_bigendian"], step=f["step"],
                     data=kit.u8(f["data"]))


def compressed_image_msg(kit: MessageKit, data: bytes, codec: str, t, frame_id: str = "",
                         encoding: str = "rgb8"):
    """``data``: an ``encoding`` image compressed as ``codec`` (jpeg, png) by OpenCV; ``format``
    is written as image_transport's compressed plugin does ("rgb8; jpeg compressed bgr8")."""
    return kit.compressed_image(header=make_header(kit, t, frame_id), format=compressed_format(codec, encoding),
                                data=kit.u8(data))


def image_to_rgb(msg) -> np.ndarray:
    """An Image or a CompressedImage (by fields) -> HxWx3 uint8 RGB; ImageFormatError otherwise."""
    if hasattr(msg, "encoding"):
        arr = image_fields_to_array(msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step, msg.data)
        return to_rgb8(arr, msg.encoding)
    if hasattr(msg, "format") and hasattr(msg, "data"):
        return decode_compressed(msg.format, msg.data)
    raise ImageFormatError(f"{type(msg).__name__} is not an image")
