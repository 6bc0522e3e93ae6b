"""The nod axis's own guidance scale (nod_guidance_scale, head pitch): the formula, the
samplers, the live model on torch and ONNX, graphs exported before it, and its calibration on
validation."""
import numpy as np
import pytest
import torch

from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.core.paths import find_share
from avatar_forcing_ros.generation.evaluation import select_nod_guidance
from avatar_forcing_ros.generation.forcing.config import CheckpointError, ForcingConfig
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.sampler import Guidance, sample_offline, sample_streaming
from forcing_helpers import random_inputs, stream_random_blocks, tiny_net, write_checkpoint


def test_nod_mask_is_the_head_pitch():
    mask = ForcingConfig().nod_mask()
    assert [n for n, m in zip(AF_MOTION_V1.names, mask) if m] == ["head_pitch"]


def test_config_and_plan_refuse_bad_nod_scales():
    for bad in (-1.0, float("nan"), 51.0):
        with pytest.raises(ValueError, match="nod_guidance_scale"):
            ForcingConfig(nod_guidance_scale=bad)
        with pytest.raises(ValueError, match="nod guidance"):
            Guidance.plan(ForcingConfig(), 2.0, nod=bad)


def test_combine_gives_the_nod_axis_its_own_scale():
    cfg = ForcingConfig()
    v = torch.cat([torch.full((1, 1, 28), 3.0), torch.full((1, 1, 28), 1.0)])  # rows (a, u), (a, -)
    g = Guidance.plan(cfg, 2.0, nod=5.0)
    out = g.combine(v)[0, 0]
    mask = torch.from_numpy(cfg.nod_mask()).bool()
    assert torch.all(out[mask] == 1.0 + 5.0 * 2.0) and torch.all(out[~mask] == 1.0 + 2.0 * 2.0)
    # a nod scale equal to the user's is plain guidance (the same numbers, no per-channel path)
    assert Guidance.plan(cfg, 2.0, nod=2.0).nod is None
    # guidance 1 with a nod scale still needs the user-dropped row
    assert Guidance.plan(cfg, 1.0, nod=4.0).rows == 2 and Guidance.plan(cfg, 1.0).rows == 1


def test_nod_guidance_changes_the_sample_and_streaming_equals_recomputation():
    net = tiny_net(seed=2)
    aa, ua, um, up, noise = random_inputs(16, seed=4)
    plain = sample_streaming(net, aa, ua, um, up, noise, 2.0)
    same = sample_streaming(net, aa, ua, um, up, noise, 2.0, nod_guidance=2.0)
    nodding = sample_streaming(net, aa, ua, um, up, noise, 2.0, nod_guidance=6.0)
    offline = sample_offline(net, aa, ua, um, up, noise, 2.0, nod_guidance=6.0)
    assert torch.equal(plain, same)
    pitch = AF_MOTION_V1.index("head_pitch")
    assert not torch.allclose(plain[..., pitch], nodding[..., pitch], atol=1e-3)
    torch.testing.assert_close(nodding, offline, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def nodding_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("nodding"), tiny_net(seed=5, motion_std=0.1, guidance_scale=2.0,
                                                                         nod_guidance_scale=4.0))


def test_torch_and_onnx_agree_with_nod_guidance_also_after_a_live_change(nodding_ckpt):
    models = [LearnedMotionModel(nodding_ckpt, seed=3, threads=1),
              LearnedMotionModel(nodding_ckpt / "model.onnx", seed=3, threads=1)]
    assert [m.nod_guidance_scale for m in models] == [4.0, 4.0]  # the model's own
    first = [stream_random_blocks(m) for m in models]
    np.testing.assert_allclose(first[0], first[1], atol=2e-4)
    for m in models:  # live: a new nod scale on the same cache
        m.set_guidance(None, None, 9.0)
    later = [stream_random_blocks(m, start=8) for m in models]
    np.testing.assert_allclose(later[0], later[1], atol=2e-4)
    fresh = LearnedMotionModel(nodding_ckpt, seed=3, threads=1)
    stream_random_blocks(fresh)
    pitch = AF_MOTION_V1.index("head_pitch")
    assert not np.allclose(stream_random_blocks(fresh, start=8)[:, pitch], later[0][:, pitch], atol=1e-3)
    for m in models:  # -1: back to the model's own
        m.set_guidance(None, None, -1.0)
        assert m.nod_guidance_scale == 4.0


def test_a_graph_exported_before_nod_guidance_runs_but_refuses_a_nod_scale():
    old = find_share("models", "af_forcing_v2", "model.onnx")  # exported 2026-12-07, before nod guidance
    model = LearnedMotionModel(old, threads=1)
    assert model.nod_guidance_scale is None and "nod" not in model.runner.guidance_names
    assert np.isfinite(stream_random_blocks(model, blocks=2)).all()
    with pytest.raises(ValueError, match="re-export"):
        model.set_guidance(None, None, 5.0)
    assert model.nod_guidance_scale is None  # refused: unchanged
    with pytest.raises(CheckpointError, match="re-export"):
        LearnedMotionModel(old, threads=1, nod_guidance_scale=5.0)


def test_calibration_picks_the_nods_nearest_the_real_listeners():
    real = {"nod_rate": 0.5, "nod_chance": 0.2}  # the real listener nods 0.3 more after cues
    sweep = {2.0: {"nod_rate": 0.03, "nod_chance": 0.18}, 5.0: {"nod_rate": 0.26, "nod_chance": 0.24},
             7.0: {"nod_rate": 0.51, "nod_chance": 0.30}, 10.0: {"nod_rate": 0.79, "nod_chance": 0.35}}
    assert select_nod_guidance(sweep, real) == 7.0
    assert sweep[7.0]["nod_gap"] == pytest.approx(0.09)
    # no cue on validation: nothing to calibrate on, the user guidance (the first) stays
    nan = {2.0: {"nod_rate": float("nan"), "nod_chance": 0.2}, 7.0: {"nod_rate": float("nan"), "nod_chance": 0.3}}
    assert select_nod_guidance(nan, real) == 2.0


def test_the_shipped_model_nods_after_the_users_pauses_and_the_nod_guidance_is_why():
    """Simulated conversations (test split, 20 s each), the shipped ONNX step block by block as
    the node runs it: after a pause in the user's speech (a back-channel cue) it nods far more
    often than at random listening moments, with the user's true motion and with the user as
    the tracker reads it (the tracker's cross-talk figures shipped beside the model, which it
    was trained with), and at nod guidance = user guidance it does not (af_forcing_v2 nodded
    after 0.14 of these cues against 0.18 at random)."""
    from dataclasses import replace
    from avatar_forcing_ros.corpus.dataset import DyadicSession
    from avatar_forcing_ros.corpus.simulator import simulate_session
    from avatar_forcing_ros.generation import evaluation as E
    from avatar_forcing_ros.generation.factory import shipped_model_dir
    from avatar_forcing_ros.generation.forcing.tracker_noise import TrackerNoise
    from avatar_forcing_ros.generation.forcing.train import session_arrays

    model = LearnedMotionModel(shipped_model_dir() / "model.onnx", threads=1)
    assert model.nod_guidance_scale > model.guidance_scale
    tracker = TrackerNoise.from_file(shipped_model_dir() / "tracker_stats.json")
    assert tracker.crosstalk is not None

    def rates(tracked: bool):
        after, rand = [], []
        for seed in range(8):
            sim = simulate_session(100 + seed, 20.0, "test")
            a = session_arrays(DyadicSession("s", sim.avatar_audio, sim.user_audio, sim.avatar_motion, sim.user_motion,
                                             sim.user_present, sim.avatar_viseme_targets, sim.meta))
            if tracked:
                seen, present = tracker.apply(a.user_motion, a.user_present, np.random.default_rng(seed))
                a = replace(a, user_motion=seen, user_present=present)
            pitch = E.generate(model, a, 0)[:, E.PITCH]
            end = len(pitch) - 30
            after += [E.nod_detected(pitch, f, 25, 0.05) for f in sim.meta["backchannel"] if 25 <= f < end]
            listening = np.flatnonzero(~E.speaking_mask(len(pitch), sim.meta["avatar_speaking"])[25:end]) + 25
            rand += [E.nod_detected(pitch, int(f), 25, 0.05)
                     for f in np.random.default_rng(seed).choice(listening, 10)]
        assert len(after) >= 10 and len(rand) == 80
        return np.mean(after), np.mean(rand)

    after, rand = rates(tracked=True)
    assert after > rand + 0.3, (after, rand)          # measured (af_forcing_v4): 0.71 against 0.23
    after_true, rand_true = rates(tracked=False)
    assert after_true > rand_true + 0.2, (after_true, rand_true)  # 0.50 against 0.23 (the listener: +0.3)
    model.set_guidance(None, None, model.guidance_scale)  # the nod guidance off
    after_off, rand_off = rates(tracked=True)
    assert after_off < rand_off + 0.15 and after_off < after - 0.3, (after_off, rand_off)  # 0.14 against 0.18
