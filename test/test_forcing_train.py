"""Diffusion-forcing training: noise levels, loss, checkpoints, resume."""
import json

import numpy as np
import pytest
import torch

from avatar_forcing_ros.generation.forcing.checkpoint import load_checkpoint
from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.flow import block_noise_levels
from avatar_forcing_ros.generation.forcing.synthetic import toy_sessions
from avatar_forcing_ros.generation.forcing.train import (SessionArrays, WindowSampler, compute_stats, main_train,
                                              train, training_loss)

TINY = dict(n_layer=2, n_embd=32, n_head=2, block_frames=2, window_frames=16, max_cache_frames=14)


def test_noise_level_is_shared_within_a_block():
    t = block_noise_levels(64, 12, 3, generator=torch.Generator().manual_seed(0))
    blocks = t.view(64, 4, 3)
    assert torch.equal(blocks, blocks[..., :1].expand_as(blocks))


def test_noise_levels_of_blocks_are_independent_and_uniform():
    t = block_noise_levels(4000, 8, 2, generator=torch.Generator().manual_seed(0))[:, ::2]  # (N, blocks)
    corr = np.corrcoef(t.numpy().T)
    off_diag = corr[~np.eye(4, dtype=bool)]
    assert np.abs(off_diag).max() < 0.06
    assert abs(float(t.mean()) - 0.5) < 0.02 and float(t.std()) > 0.25


def test_clean_context_prefix_is_zero_noise_before_noisy_blocks():
    t = block_noise_levels(2000, 16, 2, clean_context_prob=1.0, generator=torch.Generator().manual_seed(1))
    for row in t[:50]:
        nz = torch.nonzero(row > 0)
        assert torch.all(row[nz[0, 0]:] > 0)  # zeros only as a prefix


@pytest.mark.parametrize("encoder", ["conv", "attention"])
def test_short_training_run_lowers_the_loss(encoder):
    sessions = toy_sessions(2, 200)
    cfg = ForcingConfig(**TINY, cond_encoder=encoder)
    net, hist = train(cfg, sessions, steps=120, batch_size=16, lr=3e-3, warmup=10, log_every=10, progress=False)
    first, last = hist[0]["loss_smooth"], hist[-1]["loss_smooth"]
    assert last < 0.7 * first


def test_normalisation_statistics_come_from_training_set():
    sessions = toy_sessions(2, 100)
    stats = compute_stats(sessions)
    all_motion = np.concatenate([s.avatar_motion for s in sessions])
    assert np.allclose(stats["motion_mean"], all_motion.mean(axis=0), atol=1e-5)
    assert np.all(stats["motion_std"] >= 1e-2)


def test_checkpoint_holds_stats_config_and_resumes(tmp_path):
    sessions = toy_sessions(2, 100)
    cfg = ForcingConfig(**TINY)
    train(cfg, sessions, tmp_path, steps=4, batch_size=4, ckpt_every=4, progress=False)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["step"] == 4 and meta["config"]["block_frames"] == 2
    net, _ = load_checkpoint(tmp_path)
    assert np.allclose(net.motion_mean.numpy(), compute_stats(sessions)["motion_mean"])
    _, hist = train(cfg, sessions, tmp_path, steps=6, batch_size=4, resume=True, log_every=1, progress=False)
    assert [h["step"] for h in hist] == [5, 6]  # continued from step 4
    assert json.loads((tmp_path / "config.json").read_text())["step"] == 6


def test_windows_come_from_sessions_long_enough():
    sampler = WindowSampler(toy_sessions(1, 30) + toy_sessions(1, 10, seed=3), window=16)
    batch = sampler.batch(5)
    assert batch["avatar_motion"].shape == (5, 16, 28)
    with pytest.raises(ValueError, match="at least 16 frames"):
        WindowSampler(toy_sessions(1, 10), window=16)


def test_session_with_misaligned_arrays_is_rejected():
    s = toy_sessions(1, 20)[0]
    with pytest.raises(ValueError, match="user_motion has 19 frames"):
        SessionArrays(s.avatar_audio, s.user_audio, s.user_motion[:19], s.user_present, s.avatar_motion, "x")


def test_training_loss_is_finite_with_user_stream_dropped():
    sessions = toy_sessions(1, 40)
    cfg = ForcingConfig(**{**TINY, "cond_drop": 1.0})
    from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet
    loss = training_loss(AvatarForcingNet(cfg), WindowSampler(sessions, 16).batch(3))
    assert torch.isfinite(loss)


def test_train_command_reports_missing_dataset(tmp_path):
    with pytest.raises(Exception, match="nowhere"):
        main_train(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "ck"), "--steps", "1"])


def test_audio_augmentation_changes_level_within_its_range_and_is_reproducible():
    from avatar_forcing_ros.generation.forcing.train import AudioAugmentation
    t = np.arange(16000) / 16000.0
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    aug = AudioAugmentation(noise_prob=0.0, tilt=(0.0, 0.0))
    gains = [20 * np.log10(np.std(aug.apply(x, np.random.default_rng(i))) / np.std(x)) for i in range(30)]
    assert min(gains) >= aug.gain_db[0] - 0.1 and max(gains) <= aug.gain_db[1] + 0.1
    assert max(gains) - min(gains) > 10  # really spread over the range
    noisy = AudioAugmentation(noise_prob=1.0, gain_db=(0.0, 0.0), tilt=(0.0, 0.0))
    y = noisy.apply(np.zeros(16000, np.float32), np.random.default_rng(0))
    assert 10 ** (-76 / 20) < np.std(y) < 10 ** (-39 / 20)  # the noise floor lies in its dBFS range
    assert np.array_equal(aug.apply(x, np.random.default_rng(5)), aug.apply(x, np.random.default_rng(5)))


def test_augmented_copies_share_the_motion_and_differ_in_audio_features():
    from avatar_forcing_ros.corpus.dataset import DyadicSession
    from avatar_forcing_ros.generation.forcing.train import augmented_arrays, session_arrays
    s = toy_sessions(1, 50)[0]
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.normal(size=50 * 640)).astype(np.float32)
    d = DyadicSession("d", audio, audio.copy(), s.avatar_motion, s.user_motion, s.user_present,
                      np.zeros((50, 3), np.float32), {})
    clean = session_arrays(d)
    copies = augmented_arrays(d, 2, seed=0)
    assert len(copies) == 2 and all(np.array_equal(c.avatar_motion, clean.avatar_motion) for c in copies)
    level = [float(c.avatar_audio[:, 40].mean()) for c in copies]  # log RMS
    assert all(abs(v - clean.avatar_audio[:, 40].mean()) > 0.05 for v in level) and level[0] != level[1]
    again = augmented_arrays(d, 2, seed=0)
    assert np.array_equal(again[1].user_audio, copies[1].user_audio)


def test_feature_timbre_is_a_gain_and_eq_under_the_log_leaving_silence_at_the_floor():
    from avatar_forcing_ros.core.audio import LogMelFeatures
    from avatar_forcing_ros.generation.forcing.train import FeatureTimbre

    class Fixed:  # every draw at one standard deviation: a known level, no curve
        def normal(self, mean, sd):
            return sd

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    x[:4000] = 0.0  # a quarter second of silence
    feats = LogMelFeatures()
    a, louder = feats.frames(x), feats.frames(2.0 * x)
    twice = FeatureTimbre(level=np.log(4.0), curve=0.0).apply(a, Fixed())  # power x4 = amplitude x2
    np.testing.assert_allclose(twice[12:], louder[12:], atol=1e-4)  # the same as the louder sound
    np.testing.assert_array_equal(twice[:5], a[:5])                  # silence stays silence
    varied = [FeatureTimbre().apply(a, np.random.default_rng(s))[12:, :40] for s in range(2)]
    tilt = [np.polyfit(np.arange(40), (v - a[12:, :40]).mean(0), 1)[0] for v in varied]
    assert tilt[0] != pytest.approx(tilt[1], abs=1e-3)  # another spectral curve per draw


def test_timbre_is_off_by_default_and_leaves_the_windows_drawn_unchanged():
    sessions = toy_sessions(2, 200, seed=0)
    plain = WindowSampler(sessions, 24, seed=3).batch(4)
    same = WindowSampler(sessions, 24, seed=3, timbre=0.0).batch(4)
    varied = WindowSampler(sessions, 24, seed=3, timbre=1.0).batch(4)
    assert torch.equal(plain["avatar_audio"], same["avatar_audio"])
    assert torch.equal(plain["avatar_motion"], varied["avatar_motion"])  # the same windows
    assert not torch.allclose(plain["avatar_audio"], varied["avatar_audio"])
