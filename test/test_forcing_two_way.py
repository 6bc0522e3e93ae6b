"""Two-way guidance (the paper's separate scale for the avatar's own audio): network, samplers,
training, the live model and its ONNX export (tiny random networks)."""
import numpy as np
import pytest
import torch

from avatar_forcing_ros.generation.forcing.checkpoint import save_checkpoint
from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet
from avatar_forcing_ros.generation.forcing.sampler import (Guidance, StreamingSampler, sample_offline,
                                                           sample_streaming)
from avatar_forcing_ros.generation.forcing.train import training_loss
from forcing_helpers import stream_random_blocks, tiny_net, write_checkpoint
from test_forcing_network import inputs

TINY = dict(n_layer=2, n_embd=32, n_head=2, block_frames=2, window_frames=8, max_cache_frames=6)


def two_way_net(seed=0, avatar_drop=0.2):
    return tiny_net(seed=seed, avatar_drop=avatar_drop)


def test_config_refuses_audio_guidance_without_a_null_for_the_audio():
    with pytest.raises(ValueError, match="avatar_drop"):
        ForcingConfig(audio_guidance_scale=2.0)
    with pytest.raises(ValueError, match="avatar_drop"):
        ForcingConfig(avatar_drop=1.0)
    assert ForcingConfig().guidance_rows == 2 and ForcingConfig(avatar_drop=0.1).guidance_rows == 3


def test_a_model_without_the_audio_null_has_no_extra_weight_and_refuses_audio_guidance():
    net = AvatarForcingNet(ForcingConfig(**TINY))
    assert "cond.null_avatar" not in net.state_dict()  # af_forcing_v1 checkpoints load unchanged
    with pytest.raises(ValueError, match="audio guidance"):
        Guidance.plan(net.cfg, 2.0, 1.5)


def test_dropped_audio_stream_ignores_the_avatar_audio():
    net = two_way_net()
    aa, ua, um, up, _ = inputs(6)
    keep, drop = torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
    c1, _ = net.encode(aa, ua, um, up, keep, drop_avatar=drop)
    c2, _ = net.encode(aa + 3.0, ua, um, up, keep, drop_avatar=drop)
    c3, _ = net.encode(aa + 3.0, ua, um, up, keep, drop_avatar=keep)
    assert torch.allclose(c1, c2)
    assert not torch.allclose(c1, c3)


def test_combine_is_the_two_way_formula():
    v = torch.tensor([[1.0], [3.0], [7.0]])  # rows: (a, u), (a, -), (-, -)
    g = Guidance(user=2.0, audio=1.5, rows=3)
    # v(-,-) + 1.5 (v(a,-) - v(-,-)) + 2 (v(a,u) - v(a,-)) = 7 + 1.5 * -4 + 2 * -2
    assert g.combine(v).item() == pytest.approx(-3.0)
    assert Guidance(2.0, 1.0, 2).combine(v[:2]).item() == pytest.approx(-1.0)


def test_audio_scale_one_on_three_rows_equals_user_guidance_on_two():
    net = two_way_net()
    aa, ua, um, up, noise = inputs(12)
    three = StreamingSampler(net, 2.0, rows=3)
    two = StreamingSampler(net, 2.0)
    assert three.guide.rows == 3 and two.guide.rows == 2
    for s in range(0, 12, 2):
        sl = slice(s, s + 2)
        a = three.step(aa[:, sl], ua[:, sl], um[:, sl], up[:, sl], noise[:, sl])
        b = two.step(aa[:, sl], ua[:, sl], um[:, sl], up[:, sl], noise[:, sl])
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_audio_guidance_changes_the_sample_and_streaming_equals_recomputation():
    net = two_way_net()
    aa, ua, um, up, noise = inputs(20)
    plain = sample_streaming(net, aa, ua, um, up, noise, 2.0)
    streamed = sample_streaming(net, aa, ua, um, up, noise, 2.0, audio_guidance=2.5)
    offline = sample_offline(net, aa, ua, um, up, noise, 2.0, audio_guidance=2.5)
    assert not torch.allclose(plain, streamed, atol=1e-3)
    assert torch.allclose(streamed, offline, rtol=1e-4, atol=1e-3)


def test_training_learns_the_audio_null():
    net = two_way_net(avatar_drop=0.5).train()
    g = torch.Generator().manual_seed(0)
    T = net.cfg.window_frames
    batch = {"avatar_audio": torch.randn(8, T, 41, generator=g), "user_audio": torch.randn(8, T, 41, generator=g),
             "user_motion": torch.randn(8, T, 28, generator=g), "user_present": torch.ones(8, T),
             "avatar_motion": torch.randn(8, T, 28, generator=g)}
    training_loss(net, batch, g).backward()
    assert net.cond.null_avatar.grad is not None and net.cond.null_avatar.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def two_way_ckpt(tmp_path_factory):
    net = two_way_net()
    with torch.no_grad():
        net.motion_std.fill_(0.1)
    return write_checkpoint(tmp_path_factory.mktemp("two_way"), net)


def test_torch_and_onnx_agree_with_audio_guidance_also_after_a_live_change(two_way_ckpt):
    models = [LearnedMotionModel(two_way_ckpt, seed=3, threads=1, guidance_scale=2.0, audio_guidance_scale=1.5),
              LearnedMotionModel(two_way_ckpt / "model.onnx", seed=3, threads=1, guidance_scale=2.0,
                                 audio_guidance_scale=1.5)]
    first = [stream_random_blocks(m) for m in models]
    np.testing.assert_allclose(first[0], first[1], atol=2e-4)
    for m in models:  # a live parameter change: same cache, new scales, no error
        m.set_guidance(1.0, 3.0)
    later = [stream_random_blocks(m, start=8) for m in models]
    np.testing.assert_allclose(later[0], later[1], atol=2e-4)
    fresh = LearnedMotionModel(two_way_ckpt, seed=3, threads=1, guidance_scale=2.0, audio_guidance_scale=1.5)
    stream_random_blocks(fresh)
    assert not np.allclose(stream_random_blocks(fresh, start=8), later[0], atol=1e-3)  # the change took effect


def test_a_negative_audio_scale_is_the_models_own_and_a_one_way_model_refuses_audio_guidance(two_way_ckpt, tmp_path):
    from avatar_forcing_ros.generation.forcing.config import CheckpointError
    model = LearnedMotionModel(two_way_ckpt, threads=1, audio_guidance_scale=-1.0)
    assert model.audio_guidance_scale == model.cfg.audio_guidance_scale
    model.set_guidance(None, 2.5)
    assert (model.guidance_scale, model.audio_guidance_scale) == (model.cfg.guidance_scale, 2.5)
    model.set_guidance(None, -1.0)
    assert model.audio_guidance_scale == model.cfg.audio_guidance_scale
    net = AvatarForcingNet(ForcingConfig(**TINY))
    save_checkpoint(tmp_path, net, step=1)
    one_way = LearnedMotionModel(tmp_path, threads=1, audio_guidance_scale=-1.0)  # -1: its own, 1
    assert one_way.audio_guidance_scale == 1.0
    with pytest.raises(ValueError, match="avatar_drop"):
        one_way.set_guidance(None, 2.0)
    assert one_way.audio_guidance_scale == 1.0  # refused: unchanged
    with pytest.raises(CheckpointError, match="avatar_drop"):
        LearnedMotionModel(tmp_path, threads=1, audio_guidance_scale=2.0)
