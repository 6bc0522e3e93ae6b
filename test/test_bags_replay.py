"""replay.py: a session bag through perception, generator and renderer in bag time."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatar_forcing_ros.core.messages import audio_payload, image_to_rgb, stamp_to_s
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.core.audio import encode_s16le
from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.offline.replay import apply_overrides, main_replay, replay
from test_bags_io import CAMERA_FPS, DURATION_S, T0, face_frames, read_all, speech_tracks, write_session_bag

# The shipped parameters, with the procedural model (fast, no model files) and small images.
OVERRIDES = ["generator.model=procedural", "renderer.width=96", "renderer.height=96"]
JAW = AF_MOTION_V1.index("jawOpen")


@pytest.fixture(scope="module")
def session_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("session") / "in"
    counts = write_session_bag(path)
    return path, counts


@pytest.fixture(scope="module")
def replayed(session_bag, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    res = replay(session_bag[0], out / "out", overrides=OVERRIDES, images="both", mp4=out / "avatar.mp4")
    msgs, account = read_all(out / "out")
    return res, msgs, account


def by_topic(msgs, key):
    return [m for m in msgs if m.topic == bags.topic(key)]


def test_every_input_message_is_used(session_bag, replayed):
    res = replayed[0]
    assert dict(res.account.read) == session_bag[1]
    assert dict(res.account.used) == session_bag[1]
    assert res.account.unaccounted() == {}


def test_one_avatar_frame_per_video_frame_of_the_bag(replayed):
    res, msgs, account = replayed
    n = len(by_topic(msgs, "avatar_motion"))
    assert n == res.frames
    # inputs span DURATION_S, all of it becomes frames; the flush runs on by output_delay_s and
    # two blocks of bag time (6 frames at most), and frames are made in whole blocks
    assert DURATION_S * 25 <= n <= DURATION_S * 25 + 6
    for key in ("avatar_audio", "avatar_image", "avatar_image_compressed"):
        assert account.read[bags.topic(key)] == n


def test_user_face_motion_for_every_camera_frame(replayed):
    msgs = replayed[1]
    user = by_topic(msgs, "user_motion")
    assert len(user) == int(DURATION_S * CAMERA_FPS)
    assert sum(m.msg.face_present for m in user) >= 0.9 * len(user)


def test_avatar_stamps_are_presentation_times_on_the_frame_grid(replayed):
    res, msgs, _ = replayed
    stamps = np.array([stamp_to_s(m.msg.header.stamp) for m in by_topic(msgs, "avatar_motion")])
    np.testing.assert_allclose(np.diff(stamps), 1 / 25, atol=1e-6)
    assert stamps[0] >= T0 and stamps[-1] <= T0 + DURATION_S + 1.0
    audio = np.array([stamp_to_s(m.msg.header.stamp) for m in by_topic(msgs, "avatar_audio")])
    np.testing.assert_allclose(audio, stamps)


def test_avatar_images_decode_at_the_renderer_size(replayed):
    msgs = replayed[1]
    for key in ("avatar_image", "avatar_image_compressed"):
        imgs = by_topic(msgs, key)
        rgb = image_to_rgb(imgs[len(imgs) // 2].msg)
        assert rgb.shape == (96, 96, 3) and rgb.std() > 5


def test_the_avatar_mouth_moves_while_it_speaks(replayed):
    msgs = replayed[1]
    _, speech = speech_tracks()
    frames = by_topic(msgs, "avatar_motion")
    jaw = np.array([m.msg.values[JAW] for m in frames])
    speech_audio = np.concatenate([np.frombuffer(audio_payload(m.msg), "<i2") for m in by_topic(msgs, "avatar_audio")])
    # the republished speech is the robot's speech, in the same frames
    loud = np.array([np.abs(np.frombuffer(audio_payload(m.msg), "<i2")).mean() > 300
                     for m in by_topic(msgs, "avatar_audio")])
    assert loud.sum() > 10 and np.abs(speech_audio).max() > 3000
    assert jaw[loud].mean() > jaw[~loud].mean() + 0.05


def test_the_mp4_has_the_avatar_frames_and_its_voice(replayed):
    import subprocess

    res = replayed[0]
    cap = cv2.VideoCapture(res.mp4)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert abs(n - res.frames) <= 1
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                              res.mp4], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(streams) == ["audio", "video"]


def test_replay_is_deterministic_for_a_seed(session_bag, replayed, tmp_path):
    replay(session_bag[0], tmp_path / "again", overrides=OVERRIDES, images="none")
    a = np.array([m.msg.values for m in by_topic(replayed[1], "avatar_motion")])
    msgs, _ = read_all(tmp_path / "again")
    b = np.array([m.msg.values for m in by_topic(msgs, "avatar_motion")])
    np.testing.assert_array_equal(a, b)


def test_perception_in_a_second_process_gives_the_same_output(session_bag, replayed, tmp_path):
    res = replay(session_bag[0], tmp_path / "par", overrides=OVERRIDES, images="none", parallel=True)
    assert dict(res.account.used) == session_bag[1]
    msgs, _ = read_all(tmp_path / "par")
    for key in ("user_motion", "avatar_motion"):
        a = np.array([m.msg.values for m in by_topic(replayed[1], key)])
        b = np.array([m.msg.values for m in by_topic(msgs, key)])
        np.testing.assert_array_equal(a, b)


def test_compressed_camera_bags_replay_too(tmp_path):
    write_session_bag(tmp_path / "in", compressed=True)
    res = replay(tmp_path / "in", tmp_path / "out", overrides=OVERRIDES + ["perception.image_transport=compressed"],
                 images="none")
    assert res.account.used[bags.topic("camera_compressed")] == int(DURATION_S * CAMERA_FPS)
    assert res.user_motion_frames == int(DURATION_S * CAMERA_FPS)


def test_bad_frames_unknown_topics_and_stamps_going_back_are_counted(tmp_path):
    broken = bags.compressed_image_msg(np.zeros((8, 8, 3), np.uint8), T0 + 1.01)
    broken.data = np.frombuffer(b"not a jpeg", np.uint8)
    odd = bags.image_msg(np.zeros((8, 8, 3), np.uint8), T0 + 2.01)
    odd.encoding = "32FC1"
    odd.step = 32
    back = bags.image_msg(np.zeros((8, 8, 3), np.uint8), T0 + 2.9)  # captured before the previous frame
    extra = [(T0 + 1.01, bags.topic("camera"), _as_raw_broken(broken)),
             (T0 + 2.01, bags.topic("camera"), odd),
             (T0 + 3.01, bags.topic("camera"), back),
             (T0 + 1.5, "/tf_static_like", bags.audio_info_msg()),
             (T0 + 1.6, bags.topic("avatar_motion"), bags.face_motion_msg(AF_MOTION_V1, AF_MOTION_V1.neutral(), 1, True, 0))]
    counts = write_session_bag(tmp_path / "in", extra=extra)
    res = replay(tmp_path / "in", tmp_path / "out", overrides=OVERRIDES, images="none")
    cam = res.account.skipped[bags.topic("camera")]
    assert cam["capture stamp went backwards"] == 1
    assert sum(n for r, n in cam.items() if r.startswith("bad image")) == 2
    assert res.account.skipped["/tf_static_like"] == {"not a pipeline input": 1}
    assert res.account.skipped[bags.topic("avatar_motion")] == {"pipeline output (made anew by the replay)": 1}
    assert res.account.unaccounted() == {}
    assert sum(res.account.read.values()) == sum(counts.values())
    assert "capture stamp went backwards" in res.summary()


def _as_raw_broken(compressed):
    """A raw Image whose data is shorter than its rows: not decodable."""
    msg = bags.image_msg(np.zeros((8, 8, 3), np.uint8), stamp_to_s(compressed.header.stamp))
    msg.data = np.zeros(5, np.uint8)
    return msg


def test_a_bag_without_camera_still_drives_the_avatar_and_says_so(tmp_path):
    mic, speech = speech_tracks()
    with bags.BagWriter(tmp_path / "in") as w:
        for k in range(0, 2 * 16000, 320):
            t = T0 + k / 16000
            w.write(bags.topic("speech"), bags.t_to_ns(t), bags.audio_msg(encode_s16le(speech[32000 + k:32320 + k]), t))
    res = replay(tmp_path / "in", tmp_path / "out", overrides=OVERRIDES, images="none")
    assert res.frames > 40 and res.user_motion_frames == 0
    assert bags.topic("camera") not in res.account.used


def test_audio_info_switches_the_speech_format_and_a_non_pcm_one_is_counted(tmp_path):
    from avatar_forcing_ros.core.audio import resample

    voice, _ = speech_tracks()
    voice = voice[:32000]
    stereo = np.repeat(resample(voice, 16000, 48000)[:, None], 2, axis=1)
    with bags.BagWriter(tmp_path / "in") as w:
        w.write(bags.topic("speech_info"), bags.t_to_ns(T0), bags.audio_info_msg(48000, 2, "S16LE"))
        mp3 = bags.audio_info_msg()
        mp3.coding_format = "mp3"
        w.write(bags.topic("user_audio_info"), bags.t_to_ns(T0), mp3)
        for k in range(0, stereo.shape[0], 960):
            t = T0 + k / 48000
            w.write(bags.topic("speech"), bags.t_to_ns(t), bags.audio_msg(encode_s16le(stereo[k:k + 960].ravel()), t))
    res = replay(tmp_path / "in", tmp_path / "out", overrides=OVERRIDES, images="none")
    assert res.account.used[bags.topic("speech_info")] == 1
    assert res.account.skipped[bags.topic("user_audio_info")] == {"user audio info not PCM": 1}
    assert res.account.unaccounted() == {}
    msgs, _ = read_all(tmp_path / "out")
    played = np.concatenate([np.frombuffer(audio_payload(m.msg), "<i2") for m in by_topic(msgs, "avatar_audio")])
    played = played.astype(np.float32) / 32767
    n = 24000  # the avatar replays the 48 kHz stereo voice as the same voice at 16 kHz
    assert np.corrcoef(played[:n], voice[:n])[0, 1] > 0.9


def test_streams_recorded_under_other_names_are_found_with_topics(tmp_path):
    with bags.BagWriter(tmp_path / "in") as w:
        for i, rgb in enumerate(face_frames(10, 96)):
            t = T0 + i / 10
            w.write("/camera/color/image_raw", bags.t_to_ns(t), bags.image_msg(rgb, t))
    res = replay(tmp_path / "in", tmp_path / "out", overrides=OVERRIDES, images="none",
                 topics={"camera": "/camera/color/image_raw"})
    assert res.user_motion_frames == 10 and res.account.unaccounted() == {}
    with pytest.raises(ValueError, match="unknown stream"):
        replay(tmp_path / "in", tmp_path / "out2", overrides=OVERRIDES, topics={"cam": "/x"})


def test_overrides_must_name_a_node_and_parameter():
    with pytest.raises(ValueError, match="NODE.PARAM=VALUE"):
        apply_overrides({"generator": {}}, ["model=procedural"])
    assert apply_overrides({"renderer": {}}, ["renderer.width=64"]) == {"renderer": {"width": 64}}


def test_replay_command_reports_a_missing_bag(tmp_path, capsys):
    assert main_replay([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    assert "does not exist" in capsys.readouterr().out
