"""Camera images: sensor_msgs/Image fields <-> numpy arrays, and CompressedImage JPEG/PNG
(format strings as image_transport writes them, e.g. ``rgb8; jpeg compressed bgr8``, or plain).

Pure numpy + cv2 (no rclpy, no cv_bridge), with cv_bridge's semantics: an image comes back in
its own encoding (HxW for one channel, HxWxC otherwise, native byte order), rows are read at
``step`` bytes apart (padding skipped), and ``is_bigendian`` is honoured. Bytes beyond
``step * height`` are ignored, as cv_bridge does; fewer are an error.

``to_rgb8`` is the one conversion the face tracker needs. Every malformed input raises
``ImageFormatError`` (a ValueError) whose message names the problem, so a node can log it
once and drop the frame.
"""
from __future__ import annotations

import sys

import cv2
import numpy as np


class ImageFormatError(ValueError):
    """An image (or compressed image) that cannot be interpreted as declared."""


# encoding -> (numpy dtype without byte order, channels); names as in sensor_msgs/image_encodings
_ENCODINGS = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "mono16": ("u2", 1),
    "rgb16": ("u2", 3), "bgr16": ("u2", 3), "rgba16": ("u2", 4), "bgra16": ("u2", 4),
}
for _bits, _kind in ((8, "U"), (8, "S"), (16, "U"), (16, "S"), (32, "S"), (32, "F"), (64, "F")):
    for _c in (1, 2, 3, 4):
        _code = {"U": "u", "S": "i", "F": "f"}[_kind] + str(_bits // 8)
        _ENCODINGS[f"{_bits}{_kind}C{_c}"] = (_code, _c)
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)

_NATIVE_BIG = sys.byteorder == "big"


def _encoding_info(encoding: str) -> tuple[np.dtype, int]:
    try:
        code, channels = _ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ImageFormatError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None
    return np.dtype(code), channels


def _as_bytes_view(data) -> memoryview:
    # rclpy hands uint8[] as array.array('B'), rosbags as numpy arrays, tests as bytes
    if isinstance(data, (list, tuple)):
        data = np.asarray(data, dtype=np.uint8)
    try:
        return memoryview(data).cast("B")
    except TypeError as e:
        raise ImageFormatError(f"image data of type {type(data).__name__} is not a byte buffer: {e}") from None


def image_fields_to_array(height: int, width: int, encoding: str, is_bigendian, step: int,
                          data) -> np.ndarray:
    """The fields of a sensor_msgs/Image -> a native-order numpy array (a copy) in ``encoding``."""
    dtype, channels = _encoding_info(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"image has zero size ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            f"step {step} is smaller than one row of {width} px {encoding} ({row_bytes} bytes)")
    if step % dtype.itemsize:
        raise ImageFormatError(f"step {step} is not a multiple of the {dtype.itemsize}-byte {encoding} element")
    buf = _as_bytes_view(data)
    needed = step * height
    if len(buf) < needed:
        raise ImageFormatError(
            f"image data truncated: {len(buf)} bytes, {needed} needed for {height} rows of step {step}")
    rows = np.frombuffer(buf, dtype=np.uint8, count=needed).reshape(height, step)[:, :row_bytes]
    order = ">" if is_bigendian else "<"
    arr = np.ascontiguousarray(rows).view(dtype.newbyteorder(order)).reshape(height, width, channels)
    arr = arr.astype(dtype.newbyteorder("="), copy=True)  # native order, owned, writable
    return arr[:, :, 0] if channels == 1 else arr


def array_to_image_fields(array: np.ndarray, encoding: str) -> dict:
    """A numpy image -> the fields of a sensor_msgs/Image (dense rows, data as bytes)."""
    dtype, channels = _encoding_info(encoding)
    a = np.asarray(array)
    if a.size == 0:
        raise ImageFormatError(f"image has zero size (shape {a.shape})")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] != channels:
        raise ImageFormatError(
            f"{encoding} needs {channels} channel(s); array has shape {np.asarray(array).shape}")
    if a.dtype.kind != dtype.kind or a.dtype.itemsize != dtype.itemsize:
        raise ImageFormatError(f"{encoding} needs dtype {dtype.name}; array has {a.dtype.name}")
    a = np.ascontiguousarray(a)
    big = a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and _NATIVE_BIG)
    height, width = a.shape[:2]
    return {
        "height": int(height),
        "width": int(width),
        "encoding": encoding,
        "is_bigendian": int(big and dtype.itemsize > 1),
        "step": int(width * channels * dtype.itemsize),
        "data": a.tobytes(),
    }


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """An image in ``encoding`` -> HxWx3 uint8 RGB for the face tracker.

    16-bit images are scaled to 8 bits; ``8UC3``/``8UC4`` are taken as BGR(A), OpenCV's own
    order. Float, signed and two-channel encodings are not pictures of a face: rejected.
    """
    dtype, channels = _encoding_info(encoding)
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] != channels or a.size == 0:
        raise ImageFormatError(
            f"{encoding} needs a non-empty HxWx{channels} array; got shape {np.asarray(array).shape}")
    if dtype.kind != "u" or channels == 2:
        raise ImageFormatError(f"{encoding} is not a colour or grey picture; cannot make rgb8 from it")
    if a.dtype.kind != "u" or a.dtype.itemsize != dtype.itemsize:
        raise ImageFormatError(f"{encoding} needs dtype {dtype.name}; array has {a.dtype.name}")
    if dtype.itemsize == 2:
        a = (a >> 8).astype(np.uint8)  # keep the high byte: 65535 -> 255, as a display would
    if channels == 1:
        return np.ascontiguousarray(np.repeat(a, 3, axis=2))
    bgr_first = encoding.startswith("bgr") or encoding.startswith("8UC") or encoding.startswith("16UC")
    rgb = a[:, :, 2::-1] if bgr_first else a[:, :, :3]
    return np.ascontiguousarray(rgb, dtype=np.uint8)


_CODECS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}


def compressed_format(codec: str = "jpeg", encoding: str = "rgb8") -> str:
    """The CompressedImage ``format`` image_transport's compressed plugin writes for an image of
    ``encoding`` encoded by OpenCV (which takes colour as BGR): ``"rgb8; jpeg compressed bgr8"``."""
    kind = _CODECS.get(str(codec).lower())
    if kind is None:
        raise ImageFormatError(f"unsupported compressed format {codec!r}; use 'jpeg' or 'png'")
    target = "mono8" if encoding in ("mono8", "8UC1") else "bgr8"
    return f"{encoding}; {kind} compressed {target}"


def parse_compressed_format(format: str) -> tuple[str, str, str]:
    """(original encoding, codec, compressed encoding) of a CompressedImage ``format``.

    Accepts image_transport's form ``"rgb8; jpeg compressed bgr8"`` and the plain ``"jpeg"`` /
    ``"png"`` (older publishers); the parts a plain format leaves out are "". The codec is
    lower-case as written ("" if none is named): the bytes are sniffed by OpenCV anyway.
    """
    text = str(format).strip()
    if "compresseddepth" in text.lower():
        raise ImageFormatError(f"compressed depth images ({format!r}) are not supported")
    original, sep, rest = text.partition(";")
    if not sep:
        original, rest = "", text
    words = rest.split()
    codec = _CODECS.get(words[0].lower(), words[0].lower()) if words else ""
    target = ""
    if "compressed" in (w.lower() for w in words):
        after = words[[w.lower() for w in words].index("compressed") + 1:]
        target = after[0] if after else ""
    return original.strip(), codec, target


def decode_compressed(format: str, data) -> np.ndarray:
    """A sensor_msgs/CompressedImage (format, data) -> HxWx3 uint8 RGB.

    ``format`` may be plain ("jpeg", "png") or image_transport's ("rgb8; jpeg compressed bgr8");
    the bytes are sniffed by OpenCV. The compressed encoding says which channel order went into
    the encoder: ``bgr8`` (image_transport, OpenCV) decodes to true colours; a publisher that
    encoded its ``rgb8`` buffer as is ("... compressed rgb8") gets its channels swapped back.
    Depth streams ("compressedDepth") are not faces: rejected.
    """
    _, _, target = parse_compressed_format(format)
    buf = np.frombuffer(_as_bytes_view(data), dtype=np.uint8)
    if buf.size == 0:
        raise ImageFormatError(f"compressed image ({format!r}) has no data")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageFormatError(f"cannot decode {buf.size} bytes of compressed image (format {format!r})")
    if target.lower() in ("rgb8", "rgba8", "rgb16", "rgba16"):
        return np.ascontiguousarray(bgr)  # the encoder got RGB as if BGR: its "BGR" is our RGB
    return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """HxWx3 uint8 RGB -> JPEG or PNG bytes (the data of a CompressedImage with format ``fmt``:
    "jpeg", "png", or image_transport's "rgb8; jpeg compressed bgr8"). Colours go into the
    encoder as BGR, i.e. "compressed bgr8" as image_transport writes them."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.size == 0:
        raise ImageFormatError(f"encode_compressed needs a non-empty HxWx3 uint8 RGB array; got {a.dtype} {a.shape}")
    kind = parse_compressed_format(fmt)[1]  # "jpeg" or image_transport's "rgb8; jpeg compressed bgr8"
    if kind == "jpeg":
        if not 1 <= int(quality) <= 100:
            raise ImageFormatError(f"JPEG quality {quality} is outside 1..100")
        ok, out = cv2.imencode(".jpg", a[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif kind == "png":
        ok, out = cv2.imencode(".png", a[:, :, ::-1])
    else:
        raise ImageFormatError(f"unsupported compressed format {fmt!r}; use 'jpeg' or 'png'")
    if not ok:
        raise ImageFormatError(f"OpenCV could not encode a {a.shape} image as {fmt}")
    return out.tobytes()
