"""CompressedImage ``format``: written as image_transport's compressed plugin writes it
("rgb8; jpeg compressed bgr8"); read in that form and in the plain one ("jpeg", "png")."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatar_forcing_ros.core.messages import image_to_rgb
from avatar_forcing_ros.core.imaging import (ImageFormatError, compressed_format, decode_compressed,
                                             encode_compressed, parse_compressed_format)
from avatar_forcing_ros.offline import bags


def picture() -> np.ndarray:
    """Red, green and blue bands: a swapped channel order cannot pass unnoticed."""
    rgb = np.zeros((24, 36, 3), np.uint8)
    rgb[:, :12, 0] = 255
    rgb[:, 12:24, 1] = 255
    rgb[:, 24:, 2] = 255
    return rgb


@pytest.mark.parametrize("fmt, expected", [
    ("jpeg", "rgb8; jpeg compressed bgr8"), ("png", "rgb8; png compressed bgr8"),
    ("rgb8; png compressed bgr8", "rgb8; png compressed bgr8")])
def test_written_images_carry_the_image_transport_format(tmp_path, fmt, expected):
    with bags.BagWriter(tmp_path / "bag") as w:
        w.write("/img/compressed", 1, bags.compressed_image_msg(picture(), 0.0, fmt=fmt, quality=100))
    account = bags.BagAccount()
    (m,) = list(bags.read_bag(tmp_path / "bag", account))
    assert m.msg.format == expected
    got = image_to_rgb(m.msg).astype(int)
    # JPEG blurs the bands' edges; their middles keep their colours (a channel swap would not)
    assert np.abs(got[:, 4:8] - picture()[:, 4:8]).max() < 40
    assert np.abs(got[:, 28:32] - picture()[:, 28:32]).max() < 40


def test_compressed_format_strings():
    assert compressed_format() == "rgb8; jpeg compressed bgr8"
    assert compressed_format("png", "bgr8") == "bgr8; png compressed bgr8"
    assert compressed_format("jpg", "mono8") == "mono8; jpeg compressed mono8"
    assert parse_compressed_format("rgb8; jpeg compressed bgr8") == ("rgb8", "jpeg", "bgr8")
    assert parse_compressed_format("PNG") == ("", "png", "")
    with pytest.raises(ImageFormatError, match="unsupported"):
        compressed_format("theora")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "rgb8; png compressed bgr8", "bgr8; png compressed bgr8",
                                 "mono8; png compressed bgr8", ""])
def test_plain_and_image_transport_formats_decode_to_the_same_colours(fmt):
    data = encode_compressed(picture(), "png")  # what OpenCV and image_transport encode: BGR order
    np.testing.assert_array_equal(decode_compressed(fmt, data), picture())


def test_an_rgb_buffer_encoded_as_is_is_turned_back():
    # a publisher that handed its rgb8 buffer straight to the encoder says "compressed rgb8"
    ok, data = cv2.imencode(".png", picture())
    assert ok
    np.testing.assert_array_equal(decode_compressed("rgb8; png compressed rgb8", data.tobytes()), picture())


def test_depth_and_unknown_codecs_are_refused():
    data = encode_compressed(picture(), "png")
    with pytest.raises(ImageFormatError, match="depth"):
        decode_compressed("16UC1; compressedDepth png", data)
    with pytest.raises(ImageFormatError, match="unsupported"):
        encode_compressed(picture(), "rgb8; theora compressed bgr8")
