"""imaging.py: sensor_msgs/Image fields <-> numpy with cv_bridge semantics, and JPEG/PNG."""
import array

import numpy as np
import pytest
import skimage.data

from avatar_forcing_ros.core.imaging import (ImageFormatError, array_to_image_fields, decode_compressed,
                                        encode_compressed, image_fields_to_array, to_rgb8)

# encoding -> (dtype, channels) of the array cv_bridge would return
ROUND_TRIP = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "8UC3": (np.uint8, 3), "8UC1": (np.uint8, 1), "rgb16": (np.uint16, 3), "32FC1": (np.float32, 1),
}


def _random_image(dtype, channels, h=5, w=7, seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def _fields(**kw):
    f = dict(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9, data=bytes(18))
    f.update(kw)
    return f


@pytest.mark.parametrize("encoding", sorted(ROUND_TRIP))
def test_each_encoding_round_trips_through_image_fields(encoding):
    dtype, channels = ROUND_TRIP[encoding]
    img = _random_image(dtype, channels)
    f = array_to_image_fields(img, encoding)
    assert (f["height"], f["width"], f["encoding"]) == (5, 7, encoding)
    assert f["step"] == 7 * channels * np.dtype(dtype).itemsize
    back = image_fields_to_array(**f)
    assert back.dtype == np.dtype(dtype) and back.shape == img.shape
    np.testing.assert_array_equal(back, img)


def test_step_padding_is_skipped():
    img = _random_image(np.uint8, 3, h=4, w=5)
    step = 5 * 3 + 7
    padded = np.full((4, step), 0xEE, np.uint8)
    padded[:, :15] = img.reshape(4, 15)
    back = image_fields_to_array(4, 5, "rgb8", 0, step, padded.tobytes())
    np.testing.assert_array_equal(back, img)


def test_big_endian_16_bit_data_is_read_in_native_order():
    img = np.array([[1, 256, 65535], [4660, 0, 513]], np.uint16)
    data = img.astype(">u2").tobytes()
    back = image_fields_to_array(2, 3, "mono16", 1, 6, data)
    np.testing.assert_array_equal(back, img)
    assert back.dtype.byteorder in ("=", "<" if np.little_endian else ">")


def test_big_endian_array_is_written_with_the_flag_set():
    img = np.array([[1, 2], [3, 4]], dtype=">u2")
    f = array_to_image_fields(img, "16UC1")
    assert f["is_bigendian"] == 1 and f["data"] == img.tobytes()
    np.testing.assert_array_equal(image_fields_to_array(**f), img.astype(np.uint16))


def test_rclpy_style_array_of_bytes_and_list_data_are_accepted():
    img = _random_image(np.uint8, 3, h=2, w=3)
    for data in (array.array("B", img.tobytes()), list(img.tobytes()), bytearray(img.tobytes())):
        np.testing.assert_array_equal(image_fields_to_array(2, 3, "rgb8", 0, 9, data), img)


def test_extra_trailing_bytes_are_ignored_like_cv_bridge():
    img = _random_image(np.uint8, 1, h=2, w=3)
    back = image_fields_to_array(2, 3, "mono8", 0, 3, img.tobytes() + b"\x00\x01")
    np.testing.assert_array_equal(back, img)


def test_unknown_encoding_is_rejected_naming_it():
    with pytest.raises(ImageFormatError, match="unsupported image encoding 'yuv9000'"):
        image_fields_to_array(**_fields(encoding="yuv9000"))


def test_step_smaller_than_a_row_is_rejected():
    with pytest.raises(ImageFormatError, match="step 8 is smaller than one row"):
        image_fields_to_array(**_fields(step=8))


def test_step_not_a_multiple_of_the_element_size_is_rejected():
    with pytest.raises(ImageFormatError, match="not a multiple"):
        image_fields_to_array(2, 3, "mono16", 0, 7, bytes(14))


def test_truncated_data_is_rejected_with_sizes():
    with pytest.raises(ImageFormatError, match="truncated: 17 bytes, 18 needed"):
        image_fields_to_array(**_fields(data=bytes(17)))


@pytest.mark.parametrize("h,w", [(0, 3), (2, 0)])
def test_zero_size_image_is_rejected(h, w):
    with pytest.raises(ImageFormatError, match="zero size"):
        image_fields_to_array(**_fields(height=h, width=w, data=b""))


def test_data_that_is_not_a_buffer_is_rejected():
    with pytest.raises(ImageFormatError, match="not a byte buffer"):
        image_fields_to_array(**_fields(data=12345))


def test_array_with_wrong_channels_or_dtype_is_rejected():
    with pytest.raises(ImageFormatError, match="needs 3 channel"):
        array_to_image_fields(np.zeros((2, 3), np.uint8), "rgb8")
    with pytest.raises(ImageFormatError, match="needs dtype uint16"):
        array_to_image_fields(np.zeros((2, 3), np.uint8), "mono16")
    with pytest.raises(ImageFormatError, match="zero size"):
        array_to_image_fields(np.zeros((0, 3, 3), np.uint8), "rgb8")


def test_to_rgb8_puts_channels_in_rgb_order():
    rgb = _random_image(np.uint8, 3)
    bgr = rgb[:, :, ::-1]
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb, "rgb8"), rgb)
    np.testing.assert_array_equal(to_rgb8(bgr, "bgr8"), rgb)
    np.testing.assert_array_equal(to_rgb8(bgr, "8UC3"), rgb)  # OpenCV order
    np.testing.assert_array_equal(to_rgb8(np.concatenate([rgb, alpha], 2), "rgba8"), rgb)
    np.testing.assert_array_equal(to_rgb8(np.concatenate([bgr, alpha], 2), "bgra8"), rgb)


def test_to_rgb8_makes_grey_from_mono_and_scales_16_bit():
    mono = np.array([[0, 128, 255]], np.uint8)
    out = to_rgb8(mono, "mono8")
    assert out.shape == (1, 3, 3) and (out == mono[:, :, None]).all()
    out16 = to_rgb8(np.array([[0, 32768, 65535]], np.uint16), "mono16")
    np.testing.assert_array_equal(out16[0, :, 0], [0, 128, 255])


def test_to_rgb8_rejects_depth_and_mismatched_arrays():
    with pytest.raises(ImageFormatError, match="not a colour or grey picture"):
        to_rgb8(np.zeros((2, 2), np.float32), "32FC1")
    with pytest.raises(ImageFormatError, match="needs a non-empty HxWx3"):
        to_rgb8(np.zeros((2, 2), np.uint8), "rgb8")


def test_png_round_trip_is_exact_and_jpeg_is_close():
    rgb = np.ascontiguousarray(skimage.data.astronaut()[100:228, 150:278])
    png = encode_compressed(rgb, "png")
    np.testing.assert_array_equal(decode_compressed("png", png), rgb)
    jpg = encode_compressed(rgb, "jpeg", quality=95)
    back = decode_compressed("rgb8; jpeg compressed bgr8", jpg)
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 4.0


def test_jpeg_quality_changes_the_size():
    rgb = np.ascontiguousarray(skimage.data.astronaut()[:256, :256])
    assert len(encode_compressed(rgb, "jpeg", 30)) < len(encode_compressed(rgb, "jpeg", 95))


def test_undecodable_compressed_bytes_are_rejected():
    with pytest.raises(ImageFormatError, match="cannot decode 9 bytes"):
        decode_compressed("jpeg", b"not a jpg")
    with pytest.raises(ImageFormatError, match="has no data"):
        decode_compressed("jpeg", b"")
    jpg = encode_compressed(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageFormatError, match="cannot decode"):
        decode_compressed("jpeg", jpg[:20])


def test_compressed_depth_is_rejected():
    with pytest.raises(ImageFormatError, match="compressed depth"):
        decode_compressed("16UC1; compressedDepth", b"\x00" * 20)


def test_encode_rejects_bad_arrays_formats_and_quality():
    with pytest.raises(ImageFormatError, match="HxWx3 uint8"):
        encode_compressed(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageFormatError, match="unsupported compressed format 'webp'"):
        encode_compressed(np.zeros((4, 4, 3), np.uint8), "webp")
    with pytest.raises(ImageFormatError, match="quality 0"):
        encode_compressed(np.zeros((4, 4, 3), np.uint8), "jpeg", quality=0)
