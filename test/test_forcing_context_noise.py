"""Context noise: finished blocks cached at a noise level (Diffusion Forcing's stabilisation),
through every path a block is sampled by (streaming, offline reference, ONNX, the runtime)."""
import numpy as np
import pytest
import torch

from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.onnx_runner import OnnxStreamingRunner
from avatar_forcing_ros.generation.forcing.sampler import (Guidance, StreamState, denoise_block, sample_offline,
                                                          sample_streaming)
from forcing_helpers import random_inputs, stream_random_blocks, tiny_net, write_checkpoint


def test_streaming_with_context_noise_equals_the_offline_reference_and_differs_from_a_clean_cache():
    net = tiny_net(cache=6)
    aa, ua, um, up, noise, ctx = random_inputs(20, context=True)  # longer than the cache: the rolling window is exercised
    streamed = sample_streaming(net, aa, ua, um, up, noise, 2.0, context_noise=ctx, context_level=0.3)
    offline = sample_offline(net, aa, ua, um, up, noise, 2.0, context_noise=ctx, context_level=0.3)
    assert torch.allclose(streamed, offline, rtol=1e-4, atol=1e-3)
    clean = sample_streaming(net, aa, ua, um, up, noise, 2.0)
    # the first block sees no past; every later block reads a cache written at level 0.3
    assert torch.allclose(streamed[:, :2], clean[:, :2])
    assert not torch.allclose(streamed[:, 2:], clean[:, 2:], atol=1e-3)


def test_a_block_written_in_place_of_the_sample_is_what_the_cache_holds():
    """write_as (teacher forcing in the probes): the block returned and cached is the one given,
    whatever the sampler drew; without it the cache holds the sample."""
    net = tiny_net(cache=6)
    guide = Guidance.plan(net.cfg, 2.0, 1.0)
    aa, ua, um, up, noise, ctx = random_inputs(4, context=True)
    state = StreamState.empty(net, guide.rows)
    cond, _ = guide.encode(net, aa[:, :2], ua[:, :2], um[:, :2], up[:, :2], state.conv_state)
    given = torch.randn(1, 2, 28, generator=torch.Generator().manual_seed(7))

    def block(start_noise, write_as=None):
        return denoise_block(net, cond, start_noise, guide, state.cache_k, state.cache_v, state.cache_valid, 4,
                             ctx[:, :2], 0.3, write_as=write_as)
    a, b = block(noise[:, :2], lambda x: given), block(noise[:, 2:4], lambda x: given)
    assert torch.equal(a[0], given) and torch.equal(b[0], given)
    assert torch.allclose(a[1], b[1]) and torch.allclose(a[2], b[2])  # the cache: the given block only
    sampled = block(noise[:, :2])
    assert not torch.allclose(sampled[1], a[1], atol=1e-4)


def test_a_context_level_without_its_noise_is_an_error():
    net = tiny_net(cache=6, context_noise=0.2)
    aa, ua, um, up, noise, _ = random_inputs(4, context=True)
    with pytest.raises(ValueError, match="context_noise"):
        sample_streaming(net, aa, ua, um, up, noise)


@pytest.mark.parametrize("level", [-0.1, 1.0])
def test_the_config_refuses_a_context_level_outside_0_1(level):
    with pytest.raises(ValueError, match="context_noise"):
        ForcingConfig(context_noise=level)


def test_torch_and_onnx_runtimes_cache_noised_blocks_the_same_way(tmp_path):
    """The level is baked into the exported graph, the noise an input the runtime draws."""
    write_checkpoint(tmp_path / "ctx", tiny_net(std=0.1, motion_std=0.1, context_noise=0.3))
    write_checkpoint(tmp_path / "clean", tiny_net(std=0.1, motion_std=0.1))
    a = stream_random_blocks(LearnedMotionModel(tmp_path / "ctx", seed=3, threads=1))
    b = stream_random_blocks(LearnedMotionModel(tmp_path / "ctx" / "model.onnx", seed=3, threads=1))
    np.testing.assert_allclose(a, b, atol=1e-3)
    clean = stream_random_blocks(LearnedMotionModel(tmp_path / "clean", seed=3, threads=1))
    assert not np.allclose(a[2:], clean[2:], atol=1e-3)
    runner = OnnxStreamingRunner(tmp_path / "ctx" / "model.onnx", threads=1)
    assert "context_noise" in {i.name for i in runner.session.get_inputs()}
    z = np.zeros((2, 41), np.float32)
    with pytest.raises(ValueError, match="context_noise"):
        runner.step(z, z, np.zeros((2, 28), np.float32), np.ones(2, np.float32), np.zeros((2, 28), np.float32), 1.0)
    # a model without it keeps the graph it had: no extra input
    old = OnnxStreamingRunner(tmp_path / "clean" / "model.onnx", threads=1)
    assert "context_noise" not in {i.name for i in old.session.get_inputs()}


def test_the_shipped_model_keeps_its_head_home_over_a_conversation():
    """af_forcing_v2 cached its blocks clean and its head slid about 0.1 sideways within 4 s and
    stayed there (the corpus's listeners: |mean head_tx| per session about 0.01); the shipped
    context noise keeps it within the corpus's range. A 20 s simulated session, test split."""
    from avatar_forcing_ros.corpus.dataset import DyadicSession
    from avatar_forcing_ros.corpus.simulator import simulate_session
    from avatar_forcing_ros.generation.evaluation import generate
    from avatar_forcing_ros.generation.factory import shipped_model_dir
    from avatar_forcing_ros.generation.forcing.train import session_arrays
    sim = simulate_session(7, 20.0, "test")
    a = session_arrays(DyadicSession("s", sim.avatar_audio, sim.user_audio, sim.avatar_motion, sim.user_motion,
                                     sim.user_present, sim.avatar_viseme_targets, sim.meta))
    tx = AF_MOTION_V1.index("head_tx")
    model = LearnedMotionModel(shipped_model_dir() / "model.onnx", threads=1)  # what the node runs
    assert model.cfg.context_noise > 0
    for seed in (0, 1, 2):
        motion = generate(model, a, seed)  # block by block, as the runtime does
        assert abs(motion[250:, tx].mean()) < 0.05, (seed, motion[250:, tx].mean())
