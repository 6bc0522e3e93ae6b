"""timeline.py: a figure and a metrics report for a bag, a replay, or a dataset session."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.recordings import build_dataset
from avatar_forcing_ros.offline.replay import replay
from avatar_forcing_ros.offline.timeline import from_bags, from_session, main_timeline, metrics, plot
from test_bags_dataset import avatar_face_motion
from test_bags_io import AVATAR_SPEECH_AT, DURATION_S, write_session_bag

OVERRIDES = ["generator.model=procedural", "renderer.width=64", "renderer.height=64"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    write_session_bag(root / "in")
    replay(root / "in", root / "out", overrides=OVERRIDES, images="none")
    return root


def test_a_run_merges_the_input_voices_with_the_replayed_face(run):
    tl = from_bags([run / "in", run / "out"])
    assert abs(tl.frames - DURATION_S * 25) <= 6
    assert tl.user_motion is not None and tl.avatar_motion is not None
    # the avatar's voice is the one it played with its frames (avatar/audio of the replay)
    assert any("out:/avatar/audio" in n for n in tl.notes)
    onset = np.argmax(np.abs(tl.avatar_audio) > 0.05) / 16000
    assert AVATAR_SPEECH_AT < onset < AVATAR_SPEECH_AT + 0.5


def test_metrics_of_a_run_have_reactiveness_but_no_lip_sync_without_ground_truth(run):
    report = metrics(from_bags([run / "in", run / "out"]))
    assert "backchannel_response_rate" in report and "smile_react_corr" in report
    assert "lip_sync_corr" not in report
    assert report["jaw_vs_voice_envelope_corr"] > 0.5


def test_the_figure_is_a_readable_picture(run, tmp_path):
    tl = from_bags([run / "in", run / "out"])
    path = plot(tl, tmp_path / "t.png", metrics(tl))
    img = cv2.imread(str(path))
    assert img.shape[1] >= 1200 and img.shape[0] >= 900
    assert img.std() > 20  # drawn, not blank


def test_a_dataset_session_gets_lip_sync_metrics(tmp_path):
    write_session_bag(tmp_path / "robot", extra=avatar_face_motion())
    build_dataset([tmp_path / "robot"], tmp_path / "data")
    tl = from_session(tmp_path / "data" / "robot")
    report = metrics(tl)
    # the recorded face is its own lip-sync target
    assert report["lip_sync_corr"] > 0.3 and report["av_offset_frames"] == 0


def test_timeline_command_writes_figure_and_report(run, tmp_path, capsys):
    assert main_timeline([str(run / "in"), str(run / "out"), "--out", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").is_file() and (tmp_path / "t.md").is_file()
    assert "backchannel_response_rate" in json.loads((tmp_path / "t.json").read_text())["metrics"]


def test_a_bag_without_pipeline_streams_is_a_clear_error(tmp_path, capsys):
    with bags.BagWriter(tmp_path / "bag") as w:
        w.write("/other", 1, bags.audio_info_msg())
    assert main_timeline([str(tmp_path / "bag"), "--out", str(tmp_path / "t.png")]) == 1
    assert "has audio or face motion" in capsys.readouterr().out
