"""The train / dpo / evaluate commands end to end on a tiny dataset written by the test."""
import json

import numpy as np
import pytest

from avatar_forcing_ros.corpus.dataset import FRAME_KEYS, SEGMENT_KEYS, DyadicSession, load_dataset, write_dataset
from avatar_forcing_ros.generation.forcing.dpo import main_dpo
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.synthetic import toy_session
from avatar_forcing_ros.generation.forcing.train import main_train
from avatar_forcing_ros.core.motion import AF_MOTION_V1

JAW = AF_MOTION_V1.index("jawOpen")

TINY_FLAGS = ["--layers", "1", "--width", "16", "--heads", "2", "--block", "2", "--window", "16", "--threads", "1"]


def tiny_dataset(path, n=2, frames=60):
    sessions = []
    for i in range(n):
        s = toy_session(frames, seed=i)
        rng = np.random.default_rng(i)
        t = np.arange(frames * 640) / 16000.0
        envelope = np.repeat(s.avatar_motion[:, JAW], 640)  # speech loudness follows the jaw
        avatar = (0.3 * envelope * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        user = (0.05 * rng.normal(size=frames * 640)).astype(np.float32)
        meta = {k: [] for k in SEGMENT_KEYS + FRAME_KEYS}
        meta["backchannel"] = [10, 40]
        meta["avatar_speaking"] = [[0, frames]]
        sessions.append(DyadicSession(f"s{i}", avatar, user, s.avatar_motion, s.user_motion, s.user_present,
                                      s.avatar_motion[:, JAW:JAW + 3].copy(), meta))
    write_dataset(path, sessions, {"source": "test"})
    return path


def test_train_then_dpo_then_load_each_checkpoint(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    assert main_train(["--data", str(data), "--out", str(tmp_path / "ck"), "--steps", "3", "--batch", "2",
                       "--log-every", "1", *TINY_FLAGS]) == 0
    log = [json.loads(line) for line in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert main_dpo(["--checkpoint", str(tmp_path / "ck"), "--data", str(data), "--out", str(tmp_path / "dpo"),
                     "--steps", "2", "--batch", "2", "--pool", "4", "--threads", "1"]) == 0
    meta = json.loads((tmp_path / "dpo" / "config.json").read_text())
    assert meta["dpo"]["steps"] == 2
    for ck in ("ck", "dpo"):
        assert LearnedMotionModel(tmp_path / ck, threads=1).block_frames == 2


def test_evaluate_writes_markdown_and_json_reports(tmp_path):
    from avatar_forcing_ros.generation.evaluation import PAIRED_METRICS, main_evaluate
    data = tiny_dataset(tmp_path / "data", n=1, frames=80)
    main_train(["--data", str(data), "--out", str(tmp_path / "ck"), "--steps", "1", "--batch", "2", *TINY_FLAGS])
    assert main_evaluate(["--data", str(data), "--checkpoint", str(tmp_path / "ck"), "--out",
                          str(tmp_path / "report"), "--seeds", "2", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    results = report["results"]
    assert set(results) == {"ground_truth", "learned_streaming", "learned_noncausal_window", "procedural"}
    # lip sync against the speech envelope, an independent path: the avatar's WAV written and read
    # back, framed into RMS; the toy speech's loudness follows the real jaw, so the real jaw
    # correlates with it, and the procedural model (jaw from its own audio features) does too
    assert results["ground_truth"]["lip_env_corr"] > 0.9
    assert results["procedural"]["lip_env_corr"] > 0.5
    lo, hi = results["procedural"]["ci"]["lip_env_corr"]
    assert lo <= results["procedural"]["lip_env_corr"] <= hi
    # the real motion is not scored where it would be perfect by construction
    assert "fd_exp" not in results["ground_truth"] and "jaw_corr" not in results["ground_truth"]
    assert "FD expression" in (tmp_path / "report.md").read_text()
    assert set(results["learned_streaming"]["vs_procedural"]) == set(PAIRED_METRICS)
    assert "learned_noncausal_window − procedural" in (tmp_path / "report.md").read_text()


def test_evaluation_protocol_tunes_on_validation_and_reports_both_test_sets(tmp_path):
    """The whole protocol in its smallest form: corpora generated (espeak-ng, flite, festival),
    guidance chosen on validation, both test sets and the quiet-speech check reported."""
    from avatar_forcing_ros.generation.evaluation import main_evaluate
    data = tiny_dataset(tmp_path / "data", n=1, frames=80)
    # a two-way model: the sweep covers the user and the avatar-audio scale
    main_train(["--data", str(data), "--out", str(tmp_path / "ck"), "--steps", "1", "--batch", "2", *TINY_FLAGS,
                "--avatar-drop", "0.2"])
    root = tmp_path / "protocol"
    assert main_evaluate(["--protocol", str(root), "--checkpoint", str(tmp_path / "ck"), "--out",
                          str(tmp_path / "report"), "--val-sessions", "1", "--test-sessions", "2", "--seconds", "4",
                          "--bootstrap", "10", "--guidance-grid", "1.0,3.0", "--audio-guidance-grid", "1,2",
                          "--mouth-temperature-grid", "1,0.5", "--nod-guidance-grid", "2,4",
                          "--window-sessions", "1", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    sweep = report["validation_sweep"]
    assert set(sweep) == {f"{g}/{a}/{t}" for g in ("1.0", "3.0") for a in ("1.0", "2.0") for t in ("1.0", "0.5")}
    assert report["sweep_keys"] == ["user", "audio", "mouth_temperature"]
    best = min(sweep, key=lambda g: (sweep[g]["mean_rank"], tuple(map(float, g.split("/")))))
    assert (report["guidance"], report["audio_guidance"], report["mouth_temperature"]) == \
        tuple(map(float, best.split("/")))
    # then the nod axis's own scale at those settings, the user guidance among the candidates;
    # chosen by the back-channel nods' distance from the real listener's (the first if none)
    nods = report["nod_sweep"]
    assert set(nods) == {str(report["guidance"]), "2.0", "4.0"}
    gaps = {float(g): m["nod_gap"] for g, m in nods.items()}
    chosen = report["guidance"] if report["nod_guidance"] is None else report["nod_guidance"]
    assert chosen in gaps
    if any(np.isfinite(list(gaps.values()))):
        assert gaps[chosen] == min(v for v in gaps.values() if np.isfinite(v))
    else:
        assert chosen == report["guidance"]
    # the report says whether the protocol chose the nod scale or was given one (--nod-guidance)
    from avatar_forcing_ros.generation.evaluation import protocol_report
    assert report["nod_guidance_fixed"] is False and "## Nod guidance chosen on validation" in protocol_report(report)
    assert "## Nod guidance fixed by --nod-guidance" in protocol_report({**report, "nod_guidance_fixed": True})
    assert set(report["sets"]) == {"test", "test_other", "test_perceived", "test_first1", "test_other_first1"}
    # the perceived set: the test corpus's sessions, the user's motion read by perception
    perceived = json.loads((root / "test_perceived" / "dataset.json").read_text())
    assert perceived["sessions"] == json.loads((root / "test" / "dataset.json").read_text())["sessions"]
    assert perceived["generator"]["perception"]["renderer"] == "portrait"
    for name in ("test", "test_other", "test_perceived"):
        assert {"user_nod_rate", "user_nod_chance"} <= set(report["sets"][name]["ground_truth"])
    assert set(report["sets"]["test"]) == {"ground_truth", "learned_streaming", "procedural",
                                           "real_second_take", "real_redrawn", "still_face"}
    # the second take and the redrawn listener: test's conversations, the avatar drawn again;
    # they are scored, not perfect
    take, redrawn, test = (load_dataset(root / n) for n in ("test_retake", "test_redrawn", "test"))
    for st, sr, sa in zip(take, redrawn, test):
        np.testing.assert_array_equal(st.user_motion, sa.user_motion)
        np.testing.assert_array_equal(sr.user_motion, sa.user_motion)
        assert not np.array_equal(st.avatar_motion, sa.avatar_motion)
        assert sr.meta["redraw_reactions"] and not np.array_equal(sr.avatar_motion, st.avatar_motion)
    for name in ("test", "test_other", "test_perceived"):
        second, still = report["sets"][name]["real_second_take"], report["sets"][name]["still_face"]
        assert second["fd_pose"] > 0 and second["rpcc_pose"] > 0
        assert report["sets"][name]["real_redrawn"]["fd_pose"] > 0
        assert second["lip_env_corr"] == pytest.approx(report["sets"][name]["ground_truth"]["lip_env_corr"], abs=0.05)
        assert still["var_exp"] == 0 and still["var_pose"] == 0
    first = json.loads((root / "test_other" / "dataset.json").read_text())["sessions"][0]
    other_voices = json.loads((root / "test_other" / first / "meta.json").read_text())["voices"]
    assert all(v.split(":")[0] in ("flite", "festival") for v in other_voices.values())
    for name in ("validation", "test"):  # the validation and test corpora are different sessions
        assert (root / name / "dataset.json").is_file()
    assert json.loads((root / "validation" / "dataset.json").read_text())["generator"]["seed"] != \
        json.loads((root / "test" / "dataset.json").read_text())["generator"]["seed"]
    assert "learned_streaming" in report["quiet"]
    text = (tmp_path / "report.md").read_text()
    assert "Guidance chosen on validation" in text and "test_other" in text
    assert "Nod guidance chosen on validation" in text
    assert "test_perceived" in text and "nods after the user's nods" in text
    # the learned model against the procedural one on the same sessions, with paired intervals
    for name in ("test", "test_other", "test_perceived"):
        res = report["sets"][name]
        vs = res["learned_streaming"]["vs_procedural"]
        assert vs["rpcc_exp"]["diff"] == pytest.approx(res["learned_streaming"]["rpcc_exp"] - res["procedural"]["rpcc_exp"])
        assert vs["rpcc_exp"]["ci"][0] <= vs["rpcc_exp"]["ci"][1]
        assert "vs_procedural" not in res["real_second_take"]
    assert "| learned_streaming − procedural |" in text
