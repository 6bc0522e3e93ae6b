"""The user as the robot sees them: the perceived corpus copy (real portrait renderer and real
mediapipe), the TrackerNoise training augmentation, and the avatar-nods-after-user-nods metric."""
import json

import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.generation.forcing.tracker_noise import TrackerNoise

FRAMES = 100  # 4 s at 25 fps
GONE = slice(50, 60)  # frames where the user leaves the picture


@pytest.fixture(scope="module")
def perceived(tmp_path_factory):
    """A 4 s corpus made by the corpus command, the user away for frames 50..59, and its copy."""
    from avatar_forcing_ros.corpus.dataset import generate_corpus
    from avatar_forcing_ros.corpus.perceived import perceive_corpus
    root = tmp_path_factory.mktemp("perceived")
    generate_corpus(root / "src", 1, FRAMES / 25, seed=4, split="test", workers=1)
    present = root / "src" / "test_00000" / "user_present.npy"
    p = np.load(present)
    p[GONE] = 0.0
    np.save(present, p)
    report = perceive_corpus(root / "src", root / "copy", log=None)
    return root, report


def test_perceived_user_motion_follows_the_true_one_without_lag(perceived):
    from avatar_forcing_ros.corpus.dataset import load_dataset
    root, report = perceived
    true = load_dataset(root / "src")[0]
    seen = load_dataset(root / "copy")[0]  # loads like any corpus
    assert seen.frames == true.frames == FRAMES
    np.testing.assert_array_equal(seen.avatar_motion, true.avatar_motion)  # only the user changed
    np.testing.assert_array_equal(seen.avatar_audio, true.avatar_audio)
    here = np.ones(FRAMES, bool)
    here[GONE] = False
    # measured on sessions of this kind: r 0.92-0.96 (yaw, jaw, blink), lag 0; a broken
    # renderer, estimator or frame order drops these far below. Only channels that move in
    # this session's 4 s count (a user who never blinks gives no correlation).
    moving = [n for n in ("head_yaw", "jawOpen", "eyeBlinkLeft") if true.user_motion[here, M.index(n)].std() > 0.02]
    assert len(moving) >= 2, moving
    for name in moving:
        c = M.index(name)
        r = np.corrcoef(true.user_motion[here, c], seen.user_motion[here, c])[0, 1]
        assert r > 0.8, (name, r)
    stats = report["stats"]
    assert abs(stats["lag"]) <= 1 and stats["lag_channels"] >= 3
    assert abs(stats["channels"]["jawOpen"]["lag"]) <= 1
    assert json.loads((root / "copy" / "tracker_stats.json").read_text())["lag"] == stats["lag"]
    assert report["fps"] > 0
    info = json.loads((root / "copy" / "dataset.json").read_text())["generator"]
    assert info["source"] == "perceived" and info["perception"]["renderer"] == "portrait"
    assert info["perception"]["node_parameters"]["calibration_frames"] == 30


def test_no_face_gives_presence_zero_and_the_last_values_decaying_as_the_node_sends_them(perceived):
    from avatar_forcing_ros.corpus.dataset import load_dataset
    root, report = perceived
    seen = load_dataset(root / "copy")[0]
    assert np.all(seen.user_present[GONE] == 0.0)
    assert seen.user_present[GONE.start - 1] > 0.5 and seen.user_present[GONE.stop] > 0.5
    keep = np.exp(-(1 / 25) / 0.5)  # no_face_decay_s 0.5 toward neutral (0 in af-motion-v1)
    last = seen.user_motion[GONE.start - 1]
    for k, t in enumerate(range(GONE.start, GONE.stop), start=1):
        np.testing.assert_allclose(seen.user_motion[t], last * keep ** k, atol=1e-5)
    assert report["stats"]["dropout_fraction"] == 0.0  # the user's absence is no tracker dropout


def test_a_perceived_copy_is_evaluated_with_the_true_user_pitch(perceived):
    from avatar_forcing_ros.corpus.dataset import load_dataset
    from avatar_forcing_ros.generation.evaluation import PITCH, load_eval_sessions
    root, _ = perceived
    s = load_eval_sessions(root / "copy")[0]
    np.testing.assert_array_equal(s.true_user_pitch, load_dataset(root / "src")[0].user_motion[:, PITCH])
    assert not np.array_equal(s.true_user_pitch, s.arrays.user_motion[:, PITCH])
    plain = load_eval_sessions(root / "src")[0]
    np.testing.assert_array_equal(plain.true_user_pitch, plain.arrays.user_motion[:, PITCH])


def test_a_perceived_copy_measures_the_avatar_against_what_the_user_did(perceived):
    """The model is given the tracker's reading; its reactions are measured against the true
    user: an avatar that mirrors the true user's smile 5 frames later scores as a mirror, one
    that mirrors the tracker's reading does not score better for following the tracker."""
    from dataclasses import replace
    from avatar_forcing_ros.corpus.dataset import load_dataset
    from avatar_forcing_ros.generation.evaluation import (EXPRESSION, SMILE, load_eval_sessions, mean_channel_pcc,
                                                          session_metrics, session_stats)
    root, _ = perceived
    s = load_eval_sessions(root / "copy")[0]
    true = load_dataset(root / "src")[0].user_motion
    np.testing.assert_array_equal(s.true_user_motion, true)
    assert not np.array_equal(s.true_user_motion, s.arrays.user_motion)
    t = np.arange(FRAMES)
    true = true.copy()
    true[:, SMILE] = (0.4 + 0.3 * np.sin(2 * np.pi * t / 40))[:, None]  # a user who smiles and stops
    seen = s.arrays.user_motion.copy()
    seen[:, SMILE] = (0.4 + 0.3 * np.sin(2 * np.pi * t / 40 + 1.5))[:, None]  # read late and wrong
    s = replace(s, arrays=replace(s.arrays, user_motion=seen), user_motion_true=true)

    def mirror(user):
        m = np.array(s.arrays.avatar_motion, copy=True)
        m[5:, SMILE] = user[:-5, SMILE]
        return m
    of_true, of_seen = session_metrics(mirror(true), s), session_metrics(mirror(seen), s)
    assert of_true["smile_react_corr"] > 0.95 and of_true["smile_react_lag"] == 5
    assert of_seen["smile_react_corr"] < of_true["smile_react_corr"]
    # rPCC's user side is the true user too: the real listener against itself scores 0, and its
    # PCC with the user is the one with the true user's motion
    real = np.asarray(s.arrays.avatar_motion)
    assert session_stats(real, s, None, 2).scalars["rpcc_exp_session"] == pytest.approx(0.0, abs=1e-9)
    pcc = session_metrics(real, s)["pcc_exp"]
    assert pcc == pytest.approx(mean_channel_pcc(true[:, EXPRESSION], real[:, EXPRESSION]), abs=1e-9)
    assert pcc != pytest.approx(mean_channel_pcc(seen[:, EXPRESSION], real[:, EXPRESSION]), abs=1e-3)


# --- TrackerNoise ----------------------------------------------------------------------------
def _walk(T=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.3, (T, M.dim)), axis=0).astype(np.float32)  # far out of range too


def test_tracker_noise_keeps_shape_dtype_and_range_and_is_deterministic_per_seed():
    x, p = _walk(), np.ones(200, np.float32)
    noise = TrackerNoise(dropout_fraction=0.05)
    y, q = noise.apply(x, p, np.random.default_rng(3))
    assert y.shape == x.shape and y.dtype == np.float32 and q.shape == p.shape and q.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.all(y >= M.low) and np.all(y <= M.high)
    assert np.all((q >= 0) & (q <= 1))
    y2, q2 = noise.apply(x, p, np.random.default_rng(3))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(q, q2)
    y3, _ = noise.apply(x, p, np.random.default_rng(4))
    assert not np.array_equal(y, y3)


def test_tracker_noise_delays_a_step_by_the_lag():
    T, yaw = 60, M.index("head_yaw")
    x = np.zeros((T, M.dim), np.float32)
    x[20:, yaw] = 0.4
    exact = dict(gain=(1.0,) * 4, gain_sd=(0.0,) * 4, bias=(0.0,) * 4, bias_sd=(0.0,) * 4, noise_std=(0.0,) * 4)
    y, _ = TrackerNoise(**exact, lag_frames=3, extra_lag=0).apply(x, np.ones(T), np.random.default_rng(0))
    assert np.flatnonzero(y[:, yaw] > 0.2)[0] == 23
    # with the measured defaults (gain, noise and 0..2 extra frames) the step still lands 0..2 late
    for seed in range(5):
        y, _ = TrackerNoise().apply(x, np.ones(T), np.random.default_rng(seed))
        assert np.abs(y[:15, yaw]).max() < 0.15 and 20 <= np.flatnonzero(y[:, yaw] > 0.15)[0] <= 24


def test_tracker_noise_drops_the_face_at_about_the_configured_rate_and_holds_values():
    T = 250
    x = np.full((T, M.dim), 0.3, np.float32)
    quiet = dict(gain=(1.0,) * 4, gain_sd=(0.0,) * 4, bias=(0.0,) * 4, bias_sd=(0.0,) * 4,
                 noise_std=(0.0,) * 4, extra_lag=0)
    noise = TrackerNoise(**quiet, dropout_fraction=0.1, dropout_mean_frames=5.0)
    rng = np.random.default_rng(0)
    lost, runs = [], []
    for _ in range(200):
        y, q = noise.apply(x, np.ones(T), rng)
        gone = q == 0
        lost.append(gone.mean())
        edges = np.diff(np.concatenate([[0], gone.astype(int), [0]]))
        runs += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
        if gone.any() and not gone[0]:  # a lost frame shows the last values, decaying by the node's rate
            t = int(np.flatnonzero(gone)[0])
            np.testing.assert_allclose(y[t], y[t - 1] * np.exp(-0.04 / 0.5), rtol=1e-5)
    assert 0.08 < np.mean(lost) < 0.12
    assert 4.0 < np.mean(runs) < 6.0
    y, q = TrackerNoise(**quiet).apply(x, np.ones(T), rng)  # the measured default: no dropouts
    assert np.all(q > 0)


def _channel_stats(**changed):
    """tracker_stats-shaped figures of an exact tracker, with some channels changed."""
    exact = {"lag": 0, "corr": 1.0, "gain": 1.0, "gain_sd": 0.0, "bias": 0.0, "bias_sd": 0.0,
             "noise_std": 0.0, "noise_ac1": 0.0}
    return {"lag": -1, "dropout_fraction": 0.0, "dropout_mean_frames": 0.0, "confidence_when_found": 1.0,
            "channels": {n: {**exact, **changed.get(n, {})} for n in M.names}}


def test_tracker_noise_from_stats_applies_each_channels_own_figures():
    T = 80
    rng = np.random.default_rng(0)
    x = (M.neutral() + rng.uniform(-0.1, 0.1, (T, M.dim))).astype(np.float32)
    x = M.clip(x).astype(np.float32)
    pitch, frown, jaw = M.index("head_pitch"), M.index("mouthFrownLeft"), M.index("jawOpen")
    stats = _channel_stats(head_pitch={"gain": 0.25},            # the portrait's flattened nod
                           mouthFrownLeft={"gain": None, "bias": 0.1})  # hardly moved: no gain measured
    noise = TrackerNoise.from_stats(stats, extra_lag=0)
    assert noise.lag_frames == 0  # a peak before the motion is no lag
    y, q = noise.apply(x, np.ones(T, np.float32), np.random.default_rng(1))
    neutral = M.neutral()
    np.testing.assert_allclose(y[:, pitch], neutral[pitch] + 0.25 * (x[:, pitch] - neutral[pitch]), atol=1e-6)
    np.testing.assert_allclose(y[:, frown], np.clip(x[:, frown] + 0.1, M.low[frown], M.high[frown]), atol=1e-6)
    np.testing.assert_allclose(y[:, jaw], x[:, jaw], atol=1e-6)  # every other channel exact
    assert np.all(q == 1.0)
    # the group defaults would have read the pitch at the pose group's median gain instead
    quiet = dict(gain_sd=(0.0,) * 4, bias=(0.0,) * 4, bias_sd=(0.0,) * 4, noise_std=(0.0,) * 4, extra_lag=0)
    g, _ = TrackerNoise(**quiet).apply(x, np.ones(T, np.float32), np.random.default_rng(1))
    assert not np.allclose(g[:, pitch], y[:, pitch], atol=1e-3)


def test_tracker_noise_from_the_measured_file_of_a_perceived_copy(perceived):
    root, _ = perceived
    noise = TrackerNoise.from_file(root / "copy" / "tracker_stats.json")  # what perceive-corpus wrote
    stats = json.loads((root / "copy" / "tracker_stats.json").read_text())
    assert noise.gain[M.index("jawOpen")] == pytest.approx(stats["channels"]["jawOpen"]["gain"])
    x, p = _walk(), np.ones(200, np.float32)
    y, q = noise.apply(x, p, np.random.default_rng(2))
    assert np.all(np.isfinite(y)) and np.all(y >= M.low) and np.all(y <= M.high) and np.all((q >= 0) & (q <= 1))


def test_tracker_figures_that_do_not_fit_are_refused(tmp_path):
    stats = _channel_stats()
    del stats["channels"]["browInnerUp"]
    with pytest.raises(ValueError, match="browInnerUp"):
        TrackerNoise.from_stats(stats)
    with pytest.raises(ValueError, match="not finite"):
        TrackerNoise.from_stats(_channel_stats(jawOpen={"noise_std": float("nan")}))
    with pytest.raises(ValueError, match="per channel"):
        TrackerNoise(gain=(1.0,) * 5).apply(_walk(10), np.ones(10), np.random.default_rng(0))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        TrackerNoise.from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="missing.json"):
        TrackerNoise.from_file(tmp_path / "missing.json")


def test_crosstalk_is_fitted_and_read_back():
    """A tracker that reads mouthFrownLeft from the jaw (as the portrait's does): the fit finds
    the weight, and TrackerNoise with that table reads the jaw into the frown again."""
    from avatar_forcing_ros.corpus.perceived import fit_crosstalk, tracker_stats
    jaw, frown = M.index("jawOpen"), M.index("mouthFrownLeft")
    neutral = M.neutral()
    trues, seen = [], []
    for k in range(3):
        rng = np.random.default_rng(k)
        x = M.clip(neutral + np.cumsum(rng.normal(0, 0.02, (300, M.dim)), 0)).astype(np.float32)
        y = x.copy()
        y[:, frown] = 0.05 + 0.6 * (x[:, jaw] - neutral[jaw]) + rng.normal(0, 0.005, 300)
        trues.append((x, np.ones(300, np.float32)))
        seen.append((y, np.ones(300, np.float32)))
    fit = fit_crosstalk(trues, seen)
    W = np.array(fit["weights"])
    assert W[frown, jaw] == pytest.approx(0.6, abs=0.05) and abs(W[frown, frown]) < 0.05
    own_gain_corr = tracker_stats(trues, seen)["channels"]["mouthFrownLeft"]["corr"]
    assert fit["r2"][frown] > 0.95 and fit["r2"][frown] > own_gain_corr ** 2
    assert W[jaw, jaw] == pytest.approx(1.0, abs=0.05)
    # read back: the window's frown follows its jaw, exactly when spreads and noise are 0
    exact = {"gain": 1.0, "gain_sd": 0.0, "bias": 0.0, "bias_sd": 0.0, "noise_std": 0.0, "noise_ac1": 0.0}
    stats = {"lag": 0, "channels": {n: dict(exact) for n in M.names},
             "crosstalk": {"weights": np.eye(M.dim).tolist(), "bias": neutral.tolist(),
                           "noise_std": [0.0] * M.dim, "noise_ac1": [0.0] * M.dim}}
    stats["crosstalk"]["weights"][frown] = [0.6 if j == jaw else 0.0 for j in range(M.dim)]
    stats["crosstalk"]["bias"][frown] = 0.05
    noise = TrackerNoise.from_stats(stats, extra_lag=0)
    x = trues[0][0]
    y, _ = noise.apply(x, np.ones(300, np.float32), np.random.default_rng(0))
    np.testing.assert_allclose(y[:, frown], np.clip(0.05 + 0.6 * (x[:, jaw] - neutral[jaw]), 0, 1), atol=1e-6)
    np.testing.assert_allclose(y[:, jaw], x[:, jaw], atol=1e-6)
    own, _ = TrackerNoise.from_stats(stats, extra_lag=0, crosstalk=False).apply(x, np.ones(300, np.float32),
                                                                                 np.random.default_rng(0))
    np.testing.assert_allclose(own[:, frown], x[:, frown], atol=1e-6)  # the own gain (1) alone
    # a broken table is refused when the figures are read, not mid-training
    broken = json.loads(json.dumps(stats))
    broken["crosstalk"]["weights"] = broken["crosstalk"]["weights"][:5]
    with pytest.raises(ValueError, match="28x28"):
        TrackerNoise.from_stats(broken)
    del broken["crosstalk"]["weights"]
    with pytest.raises(ValueError, match="crosstalk table"):
        TrackerNoise.from_stats(broken)


def test_train_takes_the_tracker_figures_from_a_file(tmp_path):
    from test_forcing_commands import TINY_FLAGS, tiny_dataset
    from avatar_forcing_ros.generation.forcing.synthetic import toy_sessions
    from avatar_forcing_ros.generation.forcing.train import WindowSampler, main_train
    stats = _channel_stats(head_pitch={"gain": 0.25}, jawOpen={"noise_std": 0.05, "noise_ac1": 0.7})
    figures = tmp_path / "tracker_stats.json"
    figures.write_text(json.dumps(stats))
    sessions = toy_sessions(2, 120)
    built_in = WindowSampler(sessions, 48, 1, user_noise=1.0).batch(4)
    measured = WindowSampler(sessions, 48, 1, user_noise=1.0, tracker=TrackerNoise.from_file(figures)).batch(4)
    assert not np.array_equal(built_in["user_motion"].numpy(), measured["user_motion"].numpy())
    np.testing.assert_array_equal(built_in["avatar_motion"].numpy(), measured["avatar_motion"].numpy())
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "ck"
    assert main_train(["--data", str(data), "--out", str(out), "--steps", "1", "--batch", "2", *TINY_FLAGS,
                       "--user-noise", "0.5", "--tracker-stats", str(figures)]) == 0
    meta = json.loads((out / "config.json").read_text())
    recorded = meta["user_noise"]
    assert recorded["figures"] == str(figures) and recorded["gain"][M.index("head_pitch")] == 0.25
    # the figures without the probability that uses them, or a file that is not figures: refused, nothing trained
    assert main_train(["--data", str(data), "--out", str(tmp_path / "no"), "--tracker-stats", str(figures)]) == 2
    assert main_train(["--data", str(data), "--out", str(tmp_path / "no"), "--user-noise", "0.5",
                       "--tracker-stats", str(tmp_path / "nowhere.json")]) == 2
    assert not (tmp_path / "no").exists()


def test_train_windows_get_tracker_noise_only_when_asked():
    from avatar_forcing_ros.generation.forcing.synthetic import toy_sessions
    from avatar_forcing_ros.generation.forcing.train import WindowSampler, build_arg_parser
    sessions = toy_sessions(2, 120)
    plain, off = WindowSampler(sessions, 48, seed=1).batch(4), WindowSampler(sessions, 48, 1, 0.0).batch(4)
    for k in plain:
        np.testing.assert_array_equal(plain[k].numpy(), off[k].numpy())  # default: unchanged
    noisy = WindowSampler(sessions, 48, 1, user_noise=1.0).batch(4)
    np.testing.assert_array_equal(noisy["avatar_motion"].numpy(), plain["avatar_motion"].numpy())
    assert not np.array_equal(noisy["user_motion"].numpy(), plain["user_motion"].numpy())
    assert build_arg_parser().parse_args(["--data", "d", "--out", "o"]).user_noise == 0.0


# --- the avatar's nods after the user's nods -------------------------------------------------
def _nod(T, at, depth=0.1, width=10):
    x = np.zeros(T)
    t = np.arange(width)
    x[at:at + width] = -depth * 0.5 * (1 - np.cos(2 * np.pi * t / width))
    return x


def _nod_session(avatar_dips: bool):
    from avatar_forcing_ros.generation.evaluation import PITCH, EvalSession
    from avatar_forcing_ros.generation.forcing.train import SessionArrays
    T = 600
    user_nods = [60, 200, 340, 480]
    user = np.zeros((T, M.dim), np.float32)
    avatar = np.zeros((T, M.dim), np.float32)
    for f in user_nods:
        user[:, PITCH] += _nod(T, f - 5)  # bottom at f
        if avatar_dips:
            avatar[:, PITCH] += _nod(T, f + 5)  # the avatar nods a fifth of a second later
    arrays = SessionArrays(np.zeros((T, 41)), np.zeros((T, 41)), user, np.ones(T), avatar, "nods")
    return EvalSession(arrays, np.zeros((T, 3), np.float32)), user_nods


def test_user_nods_are_found_in_the_true_pitch():
    from avatar_forcing_ros.generation.evaluation import nod_events
    s, user_nods = _nod_session(True)
    assert nod_events(s.true_user_pitch) == user_nods
    assert nod_events(np.linspace(0, -0.5, 400)) == []  # drift is no nod


def test_avatar_nodding_after_the_user_scores_above_chance_and_a_still_avatar_zero():
    from avatar_forcing_ros.generation.evaluation import aggregate, session_stats
    s, user_nods = _nod_session(True)
    m = aggregate([session_stats(s.arrays.avatar_motion, s, None, 2)])
    assert m["user_nods"] == len(user_nods) and m["user_nod_rate"] == 1.0
    assert m["user_nod_chance"] < 0.6
    still, _ = _nod_session(False)
    m = aggregate([session_stats(still.arrays.avatar_motion, still, None, 2)])
    assert m["user_nod_rate"] == 0.0 and m["user_nod_chance"] == 0.0


def test_only_the_nods_of_a_listening_user_count():
    """A talking head dips with its own speech: those dips are not nods for the avatar to answer."""
    from avatar_forcing_ros.generation.evaluation import aggregate, listening_nods, session_stats
    s, user_nods = _nod_session(True)
    s.user_speaking = [[190, 210], [470, 500]]  # the user talks through the 2nd and 4th nod
    assert listening_nods(s.true_user_pitch, s.user_speaking) == [60, 340]
    assert listening_nods(s.true_user_pitch, None) == user_nods  # speech unknown: every nod
    m = aggregate([session_stats(s.arrays.avatar_motion, s, None, 2)])
    assert m["user_nods"] == 2 and m["user_nod_rate"] == 1.0
