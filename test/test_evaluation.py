"""Each evaluation metric on a case with a known answer."""
import numpy as np
import pytest

from avatar_forcing_ros.generation.evaluation import (JAW, EvalSession, best_lag, evaluate_motions,
                                           frechet_distance, generate, lagged_correlation, nod_detected,
                                           pearson, response_rate, session_metrics, window_features)
from avatar_forcing_ros.generation.forcing.synthetic import toy_session
from avatar_forcing_ros.generation.procedural import ProceduralMotionModel


def smooth_noise(T, seed):
    x = np.random.default_rng(seed).normal(size=T + 10)
    return np.convolve(x, np.ones(5) / 5, mode="same")[5:T + 5]


def test_pearson_of_affine_copy_is_one_and_of_negation_minus_one():
    x = smooth_noise(200, 0)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)


def test_best_lag_finds_a_known_delay():
    x = smooth_noise(300, 1)
    y = np.concatenate([np.zeros(4), x[:-4]])  # y responds 4 frames after x
    lag, corr = best_lag(x, y, 10)
    assert lag == 4 and corr > 0.99


def test_lagged_correlation_of_negative_lag_means_leading():
    x = smooth_noise(300, 2)
    y = np.concatenate([x[3:], np.zeros(3)])  # y leads x by 3 frames
    assert best_lag(x, y, 10)[0] == -3
    assert lagged_correlation(x, x, [0])[0] == pytest.approx(1.0)


def test_nod_is_a_pitch_dip_that_comes_back():
    pitch = np.zeros(60)
    pitch[10:20] = -0.1 * np.sin(np.pi * np.arange(10) / 10)
    assert nod_detected(pitch, 8, 25, 0.05)
    assert not nod_detected(pitch, 30, 25, 0.05)
    assert not nod_detected(-pitch, 8, 25, 0.05)  # looking up and back is not a nod


def test_slow_downward_drift_is_not_a_nod():
    assert not nod_detected(-0.01 * np.arange(60), 0, 25, 0.05)


def test_response_rate_counts_nods_after_moments():
    pitch = np.zeros(200)
    for m in (20, 80):
        pitch[m + 2:m + 12] = -0.1 * np.sin(np.pi * np.arange(10) / 10)
    assert response_rate(pitch, [20, 80, 140, 170]) == pytest.approx(0.5)
    assert np.isnan(response_rate(pitch, []))


def test_frechet_distance_is_zero_for_same_set_and_squared_shift_for_moved_mean():
    f = np.random.default_rng(0).normal(size=(500, 4))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(f, f + np.array([1.0, 0, 0, 2.0])) == pytest.approx(5.0, rel=1e-3)


def test_window_features_measure_mean_std_and_speed():
    motion = np.zeros((50, 28))
    motion[:, 0] = np.arange(50) * 0.1  # constant velocity 0.1 per frame
    f = window_features(motion, window=25, stride=25)
    assert f.shape == (2, 84)
    assert f[0, 56] == pytest.approx(0.1) and f[0, 57] == 0.0


def make_eval_session(T=400, delay=5):
    s = toy_session(T, seed=11, smile_delay=delay)
    vis = np.zeros((T, 3), np.float32)
    vis[:, 0] = s.avatar_motion[:, JAW]
    vis[:, 1] = smooth_noise(T, 3)
    vis[:, 2] = smooth_noise(T, 4)
    return EvalSession(s, vis, backchannel=[], avatar_speaking=[])


def test_session_metrics_on_real_motion_recover_the_known_relations():
    es = make_eval_session(delay=5)
    m = session_metrics(es.arrays.avatar_motion, es)
    assert m["jaw_corr"] == pytest.approx(1.0)
    assert m["av_offset_frames"] == 0
    assert m["smile_react_lag"] == 5 and m["smile_react_corr"] > 0.95


def test_late_mouth_gives_positive_av_offset():
    es = make_eval_session()
    late = np.roll(es.arrays.avatar_motion, 3, axis=0)
    assert session_metrics(late, es)["av_offset_frames"] == 3


def test_diversity_is_zero_for_identical_seeds_and_grows_with_noise():
    es = make_eval_session(T=200)
    real = es.arrays.avatar_motion
    same = evaluate_motions({0: [real], 1: [real]}, [es])
    assert same["diversity_across_seeds"] == 0.0 and same["frechet_distance"] == pytest.approx(0.0, abs=1e-4)
    noisy = real + np.random.default_rng(0).normal(0, 0.1, real.shape).astype(np.float32)
    assert evaluate_motions({0: [real], 1: [noisy]}, [es])["diversity_across_seeds"] > 0.01


def test_generate_runs_a_motion_model_block_by_block():
    es = make_eval_session(T=41)
    out = generate(ProceduralMotionModel(fps=25, block_frames=2, seed=0), es.arrays, seed=0)
    assert out.shape == (40, 28)  # the last odd frame does not fill a block


# --- the listening-head protocol's metrics ---------------------------------------------------
from avatar_forcing_ros.generation.evaluation import (  # noqa: E402
    EXPRESSION, PAIRED_METRICS, POSE, Clusters, bootstrap_intervals, frechet_from_sums, gaussian_sums,
    jerk_at_boundaries, paired_differences, paired_table, paired_verdict, select_guidance, session_stats,
    aggregate, shannon_index, speech_envelope, ensure_corpus, mean_channel_pcc, pcc_sums, pooled_rpcc)


def test_speech_envelope_is_the_rms_of_each_40ms_frame():
    t = np.arange(640 * 4) / 16000.0
    audio = np.sin(2 * np.pi * 200 * t) * np.repeat([0.0, 0.5, 1.0, 0.25], 640)
    assert speech_envelope(audio, 4) == pytest.approx([0.0, 0.5 / np.sqrt(2), 1 / np.sqrt(2), 0.25 / np.sqrt(2)],
                                                      rel=1e-2, abs=1e-6)


def test_frechet_from_added_sums_equals_the_direct_frechet_distance():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(0.5, 2.0, size=(400, 3))
    sums = [gaussian_sums(a[:100]), gaussian_sums(a[100:])]
    total = tuple(x + y for x, y in zip(*sums))
    assert frechet_from_sums(total, gaussian_sums(b)) == pytest.approx(frechet_distance(a, b), rel=1e-6)


def test_jerk_ratio_sees_a_seam_at_block_boundaries_only():
    t = np.arange(200)
    smooth = np.zeros((200, 28))
    smooth[:, POSE[0]] = np.sin(t / 10.0)
    b, nb, i, ni = jerk_at_boundaries(smooth, 4)
    assert b / nb == pytest.approx(i / ni, rel=0.05)  # a smooth curve: no seam
    seamed = smooth.copy()
    seamed[:, EXPRESSION[1]] = np.cumsum(t % 4 == 0) * 0.01  # a small step at every block start
    b, nb, i, ni = jerk_at_boundaries(seamed, 4)
    assert b / nb > 2 * (i / ni)  # the step hits the centred stencil twice as hard as its neighbours


def test_shannon_index_is_zero_for_one_cluster_and_log_k_for_uniform():
    assert shannon_index(np.array([10.0, 0, 0])) == 0.0
    assert shannon_index(np.ones(40)) == pytest.approx(np.log(40))


def _protocol_session(T=300, seed=11):
    es = make_eval_session(T=T)
    es.avatar_speaking = [[20, 120], [180, 280]]
    rng = np.random.default_rng(seed)
    es.avatar_audio = (np.repeat(es.arrays.avatar_motion[:, JAW], 640) * rng.normal(size=T * 640)).astype(np.float32)
    return es


def test_real_motion_has_zero_rpcc_and_fd_and_a_copy_of_the_user_does_not():
    sessions = [_protocol_session(seed=i) for i in range(3)]
    clusters = Clusters.fit([s.arrays.avatar_motion for s in sessions])
    real = aggregate([session_stats(s.arrays.avatar_motion, s, clusters, 2) for s in sessions])
    assert real["rpcc_exp"] == pytest.approx(0.0, abs=1e-9) and real["fd_exp"] == pytest.approx(0.0, abs=1e-4)
    copy = aggregate([session_stats(s.arrays.user_motion, s, clusters, 2) for s in sessions])
    assert copy["rpcc_exp"] > 0.02 and copy["fd_exp"] > 0.01  # 2 of 20 channels move in the toy user
    assert real["lip_env_corr"] > 0.5 and real["sid_exp"] > copy["sid_exp"]


def _direct_rpcc(users, gens, reals):
    u, g, r = (np.concatenate(x) for x in (users, gens, reals))
    return np.mean([abs(pearson(r[:, c], u[:, c]) - pearson(g[:, c], u[:, c])) for c in range(u.shape[1])])


def test_pooled_rpcc_from_added_sums_equals_the_direct_pcc_over_all_frames():
    rng = np.random.default_rng(0)
    users = [rng.normal(size=(T, 3)) for T in (50, 80, 120)]
    reals = [0.6 * u + rng.normal(size=u.shape) for u in users]
    gens = [0.2 * u + rng.normal(size=u.shape) + 3.0 for u in users]  # an offset changes no PCC
    sums = sum(pcc_sums(u, g, r) for u, g, r in zip(users, gens, reals))
    assert pooled_rpcc(sums) == pytest.approx(_direct_rpcc(users, gens, reals), abs=1e-9)
    assert pooled_rpcc(sum(pcc_sums(u, r, r) for u, r in zip(users, reals))) == pytest.approx(0.0, abs=1e-12)
    still = [np.zeros_like(u) for u in users]  # a channel that never moves has PCC 0, not NaN
    direct = np.mean([abs(pearson(np.concatenate(reals)[:, c], np.concatenate(users)[:, c])) for c in range(3)])
    assert pooled_rpcc(sum(pcc_sums(u, z, r) for u, z, r in zip(users, still, reals))) == pytest.approx(direct)


def test_rpcc_errors_of_opposite_sign_do_not_cancel_across_channels():
    """A model that mirrors one channel more than the listener and the other less: the
    af-eval-v4 form (channels averaged before the difference) calls it perfect, the pooled
    channel-wise rPCC does not."""
    rng = np.random.default_rng(1)
    u = rng.normal(size=(2000, 2))
    e = rng.normal(size=(2000, 2))
    real = 0.5 * u + e          # PCC about 0.45 in both channels
    gen = np.stack([2.0 * u[:, 0] + e[:, 0], e[:, 1]], 1)  # about 0.89 and 0: the same mean
    old = abs(mean_channel_pcc(u, real) - mean_channel_pcc(u, gen))
    new = pooled_rpcc(pcc_sums(u, gen, real))
    assert old < 0.05 and new > 0.35


def test_a_listener_redrawn_by_its_own_rules_is_near_zero_pooled_but_not_per_session():
    """Sessions in which the listener mirrors the user or not by a coin flip: the same listener
    with its coin flips drawn again (what a perfect model of its rules produces) is charged
    per session for every flip it could not know; pooled over the set it matches the listener."""
    rng = np.random.default_rng(2)
    users, reals, redrawn = [], [], []
    for _ in range(200):
        u = rng.normal(size=(100, 1))
        users.append(u)
        reals.append(rng.integers(2) * u + 0.5 * rng.normal(size=u.shape))
        redrawn.append(rng.integers(2) * u + 0.5 * rng.normal(size=u.shape))
    per_session = np.mean([abs(mean_channel_pcc(u, r) - mean_channel_pcc(u, g))
                           for u, r, g in zip(users, reals, redrawn)])
    pooled = pooled_rpcc(sum(pcc_sums(u, g, r) for u, g, r in zip(users, redrawn, reals)))
    assert per_session > 0.3 and pooled < 0.1


def test_session_stats_carry_the_sums_of_the_pooled_rpcc():
    sessions = [_protocol_session(seed=i) for i in range(3)]
    clusters = Clusters.fit([s.arrays.avatar_motion for s in sessions])
    gens = [s.arrays.avatar_motion + np.random.default_rng(i).normal(0, 0.2, s.arrays.avatar_motion.shape)
            for i, s in enumerate(sessions)]
    agg = aggregate([session_stats(g.astype(np.float32), s, clusters, 2) for g, s in zip(gens, sessions)])
    for key, idx in (("rpcc_exp", EXPRESSION), ("rpcc_pose", POSE)):
        want = _direct_rpcc([s.arrays.user_motion[:, idx] for s in sessions],
                            [g.astype(np.float32)[:, idx] for g in gens],
                            [s.arrays.avatar_motion[:, idx] for s in sessions])
        assert agg[key] == pytest.approx(want, abs=1e-6)
    assert agg["rpcc_exp_session"] > 0 and "rpcc_exp_session" in PAIRED_METRICS


def test_bootstrap_interval_holds_the_estimate_and_is_zero_width_for_identical_sessions():
    sessions = [_protocol_session(seed=i) for i in range(4)]
    clusters = Clusters.fit([s.arrays.avatar_motion for s in sessions])
    noisy = [s.arrays.avatar_motion + np.random.default_rng(i).normal(0, 0.05 * (i + 1), s.arrays.avatar_motion.shape)
             for i, s in enumerate(sessions)]
    stats = [session_stats(m.astype(np.float32), s, clusters, 2) for m, s in zip(noisy, sessions)]
    ci = bootstrap_intervals(stats, 200)
    est = aggregate(stats)
    assert ci["rpcc_exp"][0] <= est["rpcc_exp"] <= ci["rpcc_exp"][1] and ci["rpcc_exp"][1] > ci["rpcc_exp"][0]
    same = bootstrap_intervals([stats[0]] * 4, 50)
    assert same["rpcc_exp"][0] == pytest.approx(same["rpcc_exp"][1])


def _stats_with_noise(sessions, clusters, scales, seed=0):
    """Each session's real motion with noise of its own scale, the same noise draw for every call."""
    out = []
    for i, (s, k) in enumerate(zip(sessions, scales)):
        z = np.random.default_rng(seed + i).normal(0, 1, s.arrays.avatar_motion.shape)
        out.append(session_stats((s.arrays.avatar_motion + k * z).astype(np.float32), s, clusters, 2))
    return out


def test_paired_differences_see_a_small_consistent_gap_that_separate_intervals_hide():
    """Sessions of very different difficulty (noise 0.02 to 0.4), and a second model with 15 %
    more of the same noise in each: the two models' own intervals overlap, the paired interval
    of the difference leaves 0 out, and says which is better."""
    sessions = [_protocol_session(seed=i) for i in range(8)]
    clusters = Clusters.fit([s.arrays.avatar_motion for s in sessions])
    scales = np.geomspace(0.02, 0.4, len(sessions))
    good, worse = _stats_with_noise(sessions, clusters, scales), _stats_with_noise(sessions, clusters, 1.15 * scales)
    ci_good, ci_worse = bootstrap_intervals(good, 300), bootstrap_intervals(worse, 300)
    assert ci_good["lip_env_corr"][0] < ci_worse["lip_env_corr"][1]  # the separate intervals overlap
    d = paired_differences(good, worse, PAIRED_METRICS, 300)
    assert d["lip_env_corr"]["diff"] > 0 and d["lip_env_corr"]["ci"][0] > 0
    assert d["fd_exp"]["diff"] < 0 and paired_verdict("fd_exp", d["fd_exp"]) == "better"
    back = paired_differences(worse, good, PAIRED_METRICS, 300)
    assert back["fd_exp"]["ci"][0] > 0 and paired_verdict("fd_exp", back["fd_exp"]) == "worse"
    # the real listener's value is the target of lip sync and jaw opening: no direction
    assert paired_verdict("lip_env_corr", back["lip_env_corr"]) == ""
    assert paired_verdict("jaw_speaking", back["jaw_speaking"]) == ""


def test_paired_difference_of_a_model_with_itself_is_zero_and_level():
    sessions = [_protocol_session(seed=i) for i in range(4)]
    clusters = Clusters.fit([s.arrays.avatar_motion for s in sessions])
    stats = _stats_with_noise(sessions, clusters, [0.05, 0.1, 0.2, 0.3])
    d = paired_differences(stats, stats, PAIRED_METRICS, 50)
    for k in PAIRED_METRICS:
        assert d[k]["diff"] == 0 and d[k]["ci"] == [0, 0]
    assert paired_verdict("rpcc_exp", d["rpcc_exp"]) == "level"
    with pytest.raises(ValueError, match="same sessions"):
        paired_differences(stats, stats[:3], PAIRED_METRICS)
    table = "\n".join(paired_table({"procedural": {}, "learned_streaming": {"vs_procedural": d}}))
    assert "| rPCC expression ↓ | +0 [+0, +0] level |" in table


def test_guidance_is_selected_by_mean_rank_on_validation():
    sweep = {1.5: {"rpcc_exp": 0.3, "rpcc_pose": 0.3, "fd_exp": 0.3, "fd_pose": 0.3, "lip_env_corr": 0.6},
             3.0: {"rpcc_exp": 0.1, "rpcc_pose": 0.2, "fd_exp": 0.1, "fd_pose": 0.4, "lip_env_corr": 0.5},
             5.0: {"rpcc_exp": 0.2, "rpcc_pose": 0.1, "fd_exp": 0.5, "fd_pose": 0.5, "lip_env_corr": 0.4}}
    assert select_guidance(sweep) == 3.0
    assert sweep[3.0]["mean_rank"] < sweep[1.5]["mean_rank"]


def test_a_protocol_corpus_made_with_other_settings_is_refused(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "dataset.json").write_text(
        '{"generator": {"split": "test", "seed": 9, "n_sessions": 3, "seconds_per_session": 4.0}}')
    with pytest.raises(ValueError, match="protocol needs"):
        ensure_corpus(tmp_path, "test", {"split": "test", "seed": 2, "sessions": 3, "seconds": 4.0})
