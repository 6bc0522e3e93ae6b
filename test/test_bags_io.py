"""bags.py: our types in rosbag2 files, and an account of every message of bad or partial bags.

``write_session_bag`` (used by the other test_bags_* files) records a short synthetic session
the way the robot would: a camera on the user's face (scikit-image's astronaut, gently
moving), the user's microphone, and the robot's speech (espeak-ng).
"""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import skimage.data

from avatar_forcing_ros.core.messages import image_to_rgb, read_face_motion, stamp_to_s
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.core.audio import SAMPLE_RATE, encode_s16le
from avatar_forcing_ros.core.imaging import ImageFormatError
from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.corpus.speech import synthesize

DURATION_S = 4.0
CAMERA_FPS = 15.0
CHUNK = 320  # 20 ms audio messages
USER_SPEECH_AT = 0.2
AVATAR_SPEECH_AT = 2.0
T0 = 1000.0  # bag time of the first message (s): not zero, as on a robot


def face_frames(n: int, size: int = 192) -> list[np.ndarray]:
    """The astronaut's face, swaying a little from frame to frame."""
    img = np.ascontiguousarray(skimage.data.astronaut()[0:250, 100:350])
    out = []
    for i in range(n):
        dx = 6 * np.sin(2 * np.pi * i / 30)
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        out.append(cv2.resize(cv2.warpAffine(img, m, (250, 250), borderMode=cv2.BORDER_REFLECT),
                              (size, size), interpolation=cv2.INTER_AREA))
    return out


_SPEECH = {}


def speech_tracks() -> tuple[np.ndarray, np.ndarray]:
    """(user microphone, robot speech) on one 16 kHz timeline of DURATION_S."""
    if not _SPEECH:
        n = int(DURATION_S * SAMPLE_RATE)
        user = synthesize("Hi, nice to meet you.", voice="en-gb", rate_wpm=190).audio
        robot = synthesize("Hello there, how are you?", voice="en-us", rate_wpm=190).audio
        mic = np.zeros(n, np.float32)
        s = int(USER_SPEECH_AT * SAMPLE_RATE)
        mic[s:s + user.size] = user[:n - s]
        speech = np.zeros(n, np.float32)
        s = int(AVATAR_SPEECH_AT * SAMPLE_RATE)
        speech[s:s + robot.size] = robot[:n - s]
        _SPEECH["tracks"] = (mic, speech)
    return _SPEECH["tracks"]


def write_session_bag(path, storage="mcap", compressed=False, extra=None) -> dict:
    """A DURATION_S session bag; returns the message counts per topic written."""
    mic, speech = speech_tracks()
    frames = face_frames(int(DURATION_S * CAMERA_FPS))
    events = []  # (t, topic, msg)
    for i, rgb in enumerate(frames):
        t = T0 + i / CAMERA_FPS
        if compressed:
            events.append((t, bags.topic("camera_compressed"), bags.compressed_image_msg(rgb, t, "camera")))
        else:
            events.append((t, bags.topic("camera"), bags.image_msg(rgb, t, "camera")))
    for k in range(mic.size // CHUNK):
        t = T0 + k * CHUNK / SAMPLE_RATE
        events.append((t, bags.topic("user_audio"), bags.audio_msg(encode_s16le(mic[k * CHUNK:(k + 1) * CHUNK]), t)))
        chunk = speech[k * CHUNK:(k + 1) * CHUNK]
        if np.any(chunk):  # a TTS only sends while it speaks
            events.append((t, bags.topic("speech"), bags.audio_msg(encode_s16le(chunk), t)))
    events += list(extra or ())
    events.sort(key=lambda e: e[0])
    with bags.BagWriter(path, storage) as w:
        for t, name, msg in events:
            w.write(name, bags.t_to_ns(t), msg)
    return dict(w.counts)


def read_all(path):
    account = bags.BagAccount()
    return list(bags.read_bag(path, account)), account


@pytest.mark.parametrize("storage", bags.STORAGES)
def test_every_message_written_reads_back_with_its_type(tmp_path, storage):
    counts = write_session_bag(tmp_path / "bag", storage)
    msgs, account = read_all(tmp_path / "bag")
    assert dict(account.read) == counts
    assert account.topics[bags.topic("speech")] == bags.AUDIO_STAMPED
    assert not account.problems and not account.lost_in_file()
    t = [m.t_ns for m in msgs]
    assert t == sorted(t)


def test_face_motion_round_trips_through_a_bag(tmp_path):
    values = np.linspace(-0.2, 0.2, AF_MOTION_V1.dim).astype(np.float32)
    values = AF_MOTION_V1.clip(values)
    with bags.BagWriter(tmp_path / "bag") as w:
        w.write("/avatar/face_motion", 5, bags.face_motion_msg(AF_MOTION_V1, values, 0.7, True, 12.5, "f"))
    (m,), _ = read_all(tmp_path / "bag")
    got, conf, _ = read_face_motion(m.msg, AF_MOTION_V1)
    np.testing.assert_array_equal(got, values)
    assert conf == pytest.approx(0.7) and stamp_to_s(m.msg.header.stamp) == pytest.approx(12.5)


def test_raw_and_compressed_images_decode_to_the_same_picture(tmp_path):
    rgb = face_frames(1, 64)[0]
    with bags.BagWriter(tmp_path / "bag") as w:
        w.write("/a", 1, bags.image_msg(rgb, 0.0))
        w.write("/b", 2, bags.compressed_image_msg(rgb, 0.0, quality=95))
    (a, b), _ = read_all(tmp_path / "bag")
    np.testing.assert_array_equal(image_to_rgb(a.msg), rgb)
    assert np.abs(image_to_rgb(b.msg).astype(int) - rgb).mean() < 4


def test_a_corrupt_image_is_an_image_format_error(tmp_path):
    msg = bags.compressed_image_msg(face_frames(1, 32)[0], 0.0)
    msg.data = np.zeros(10, np.uint8)
    with pytest.raises(ImageFormatError):
        image_to_rgb(msg)


def test_a_missing_bag_is_a_clear_error(tmp_path):
    with pytest.raises(bags.BagError, match="does not exist"):
        read_all(tmp_path / "nope")


def test_a_directory_that_is_not_a_bag_is_a_clear_error(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: [a bag")
    with pytest.raises(bags.BagError, match="cannot open bag"):
        read_all(tmp_path / "junk")


def test_writing_over_an_existing_bag_is_refused(tmp_path):
    (tmp_path / "bag").mkdir()
    with pytest.raises(bags.BagError, match="exists"):
        bags.BagWriter(tmp_path / "bag")


def test_messages_of_an_unknown_type_are_counted_not_lost(tmp_path):
    # A type this store does not know, with its definition left out of the bag.
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 x", "lab_msgs/msg/Thing"))
    thing = store.types["lab_msgs/msg/Thing"](x=3)
    with Writer(tmp_path / "bag", version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/thing", "lab_msgs/msg/Thing", msgdef="", rihs01="RIHS01_" + "0" * 64)
        for i in range(3):
            w.write(conn, i, store.serialize_cdr(thing, "lab_msgs/msg/Thing"))
    msgs, account = read_all(tmp_path / "bag")
    assert msgs == []
    assert account.read["/thing"] == 3
    assert account.skipped["/thing"] == {"unknown message type lab_msgs/msg/Thing": 3}


def test_a_truncated_mcap_keeps_what_was_read_and_says_the_rest_is_missing(tmp_path):
    counts = write_session_bag(tmp_path / "bag")
    mcap = next((tmp_path / "bag").glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    msgs, account = read_all(tmp_path / "bag")
    total = sum(counts.values())
    assert 0 < len(msgs) < total
    assert "cut off" in account.summary()
    assert all(m.t_ns >= msgs[0].t_ns for m in msgs)


def test_topic_names_follow_the_namespace():
    assert bags.topic("camera", "robot1") == "/robot1/camera/image_raw"
    assert bags.topic("avatar_motion") == "/avatar/face_motion"


def test_pipeline_outputs_are_written_with_the_nodes_offered_qos(tmp_path):
    """Bags written offline (replay) say what the nodes offer, so ros2 bag play latches the
    audio info; inputs carry no offer unless one is given."""
    with bags.BagWriter(tmp_path / "bag") as w:
        w.write(bags.topic("avatar_audio_info", "robot"), 1, bags.audio_info_msg())
        w.write(bags.topic("avatar_motion"), 2, bags.face_motion_msg(AF_MOTION_V1, np.zeros(AF_MOTION_V1.dim), 1.0, True, 0.0))
        w.write(bags.topic("user_audio"), 3, bags.audio_msg(b"\0\0", 0.0))
        w.write("/other", 4, bags.audio_msg(b"\0\0", 0.0), offered_qos=[bags.offered_qos(2, 2)])
    offered = bags.bag_offered_qos(tmp_path / "bag")
    assert offered["/robot/avatar/audio_info"] == [{"history": "keep_last", "depth": 1, "reliability": "reliable",
                                                    "durability": "transient_local"}]
    assert offered["/avatar/face_motion"][0]["durability"] == "volatile"
    assert offered["/user/audio"] == []
    assert offered["/other"][0]["reliability"] == "best_effort"
