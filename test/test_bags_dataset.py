"""recordings.py: session bags -> the af-dyadic-v1 training format."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf

from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.core.audio import SAMPLE_RATE
from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.offline.recordings import build_dataset, main_dataset
from test_bags_io import AVATAR_SPEECH_AT, DURATION_S, T0, USER_SPEECH_AT, face_frames, speech_tracks, write_session_bag

JAW = AF_MOTION_V1.index("jawOpen")


def avatar_face_motion():
    """A robot face recorded at 25 Hz: the jaw follows its own speech."""
    _, speech = speech_tracks()
    out = []
    for i in range(int(DURATION_S * 25)):
        t = T0 + i / 25
        v = AF_MOTION_V1.neutral()
        seg = speech[i * 640:(i + 1) * 640]
        v[JAW] = float(np.clip(np.sqrt(np.mean(seg ** 2)) * 8, 0, 0.9))
        out.append((t, bags.topic("avatar_motion"), bags.face_motion_msg(AF_MOTION_V1, v, 1.0, True, t)))
    return out


def second_camera():
    """Human-human session: a camera on the other person (the astronaut, mirrored)."""
    return [(T0 + i / 10, "/avatar/camera/image_raw", bags.image_msg(np.ascontiguousarray(f[:, ::-1]), T0 + i / 10))
            for i, f in enumerate(face_frames(int(DURATION_S * 10), 160))]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_session_bag(root / "robot", extra=avatar_face_motion())
    write_session_bag(root / "human", extra=second_camera())
    report = build_dataset([root / "robot", root / "human", root / "missing"], root / "data",
                           overrides=["perception.calibration_frames=5"])
    return root / "data", report


def test_dataset_json_lists_the_usable_sessions(dataset):
    path, report = dataset
    meta = json.loads((path / "dataset.json").read_text())
    assert meta["format"] == "af-dyadic-v1" and meta["motion_space"] == "af-motion-v1"
    assert meta["fps"] == 25 and meta["sample_rate"] == SAMPLE_RATE
    assert meta["sessions"] == ["robot", "human"]
    assert not report[str(path.parent / "missing")]["used"]
    assert "does not exist" in report[str(path.parent / "missing")]["reason"]


@pytest.mark.parametrize("session", ["robot", "human"])
def test_session_files_have_the_format_shapes(dataset, session):
    d = dataset[0] / session
    avatar_motion = np.load(d / "avatar_motion.npy", allow_pickle=False)
    t = avatar_motion.shape[0]
    assert abs(t - DURATION_S * 25) <= 2 and avatar_motion.shape == (t, 28)
    assert np.load(d / "user_motion.npy", allow_pickle=False).shape == (t, 28)
    assert np.load(d / "user_present.npy", allow_pickle=False).shape == (t,)
    assert np.load(d / "avatar_viseme_targets.npy", allow_pickle=False).shape == (t, 3)
    for name in ("avatar_audio", "user_audio"):
        audio, sr = sf.read(d / f"{name}.wav", dtype="float32")
        assert sr == SAMPLE_RATE and audio.ndim == 1 and audio.size == t * 640
    for arr in ("avatar_motion", "user_motion", "user_present"):
        assert np.load(d / f"{arr}.npy").dtype == np.float32


def test_the_user_face_is_measured_from_the_camera(dataset):
    present = np.load(dataset[0] / "robot" / "user_present.npy")
    assert present.mean() > 0.8


def test_speaking_segments_are_found_where_each_side_spoke(dataset):
    meta = json.loads((dataset[0] / "robot" / "meta.json").read_text())
    (a0, a1), = meta["avatar_speaking"][:1]
    assert abs(a0 - AVATAR_SPEECH_AT * 25) <= 3 and a1 > a0 + 15
    assert abs(meta["user_speaking"][0][0] - USER_SPEECH_AT * 25) <= 3
    assert meta["backchannel"] and meta["backchannel"][0] > meta["user_speaking"][0][0]


def test_recorded_robot_face_is_the_avatar_motion(dataset):
    motion = np.load(dataset[0] / "robot" / "avatar_motion.npy")
    meta = json.loads((dataset[0] / "robot" / "meta.json").read_text())
    s, e = meta["avatar_speaking"][0]
    assert motion[s:e, JAW].mean() > motion[:s, JAW].mean() + 0.05


def test_second_camera_sessions_measure_the_avatar_face(dataset):
    meta = json.loads((dataset[0] / "human" / "meta.json").read_text())
    assert meta["source"]["streams"]["avatar camera"] == "/avatar/camera/image_raw"
    motion = np.load(dataset[0] / "human" / "avatar_motion.npy")
    assert np.abs(motion - AF_MOTION_V1.neutral()).sum(axis=1).max() > 0  # measured, not all neutral


def test_a_bag_without_any_avatar_face_is_left_out_with_the_reason(tmp_path):
    write_session_bag(tmp_path / "bag")
    with pytest.raises(ValueError, match="no avatar face"):
        build_dataset([tmp_path / "bag"], tmp_path / "data")


def test_dataset_command_refuses_a_non_empty_output(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("")
    assert main_dataset([str(tmp_path / "bag"), "--out", str(tmp_path / "data")]) == 1
    assert "not empty" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("avatar_forcing_ros.corpus") is None,
                    reason="the dataset loader (corpus/dataset.py) has not landed")
def test_a_dataset_from_bags_trains_for_a_few_steps(dataset, tmp_path):
    from avatar_forcing_ros.corpus.dataset import load_dataset
    from avatar_forcing_ros.generation.forcing.train import main_train

    sessions = load_dataset(dataset[0])
    assert len(sessions) == 2
    rc = main_train(["--data", str(dataset[0]), "--out", str(tmp_path / "ckpt"), "--steps", "3", "--batch", "2",
                     "--layers", "1", "--width", "32", "--heads", "2", "--window", "16", "--threads", "1",
                     "--log-every", "1", "--ckpt-every", "3"])
    assert rc == 0 and any((tmp_path / "ckpt").iterdir())
