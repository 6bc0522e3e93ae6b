"""Behaviour of the Avatar Forcing network and its samplers (tiny random networks)."""
import pytest
import torch

from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet, block_causal_mask
from avatar_forcing_ros.generation.forcing.sampler import (StreamingSampler, sample_offline, sample_streaming,
                                                sample_window)
from forcing_helpers import random_inputs as inputs, tiny_net


def test_block_mask_sees_own_block_and_past_only():
    m = block_causal_mask(6, 2)
    assert m[0, 1] and m[1, 0]            # both frames of block 0 see each other
    assert m[4, 0] and m[5, 3]            # later blocks see the past
    assert not m[1, 2] and not m[3, 4]    # never the next block


def test_block_mask_rolling_context_drops_old_blocks():
    m = block_causal_mask(8, 2, context_blocks=1)
    assert m[5, 2] and not m[5, 1]        # block 2 sees block 1, not block 0


def _perturbed(tensors, frames: slice, by: float = 5.0):
    out = [x.clone() for x in tensors]
    for x in out:
        x[:, frames] += by
    return out


# Each sampler gets the WHOLE sequence at once, so one that read ahead (a non-causal encoder,
# a wrong mask, a cache written from the future) would let the perturbed future leak back.
CAUSAL_SAMPLERS = {
    "streaming": lambda net, aa, ua, um, up, noise: sample_streaming(net, aa, ua, um, up, noise, guidance=2.0),
    "offline": lambda net, aa, ua, um, up, noise: sample_offline(net, aa, ua, um, up, noise, guidance=2.0),
}


ENCODERS = ["conv", "attention"]  # ForcingConfig.cond_encoder


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("name", sorted(CAUSAL_SAMPLERS))
def test_changing_future_inputs_leaves_past_outputs_bit_identical(name, encoder):
    sample = CAUSAL_SAMPLERS[name]
    net = tiny_net(cond_encoder=encoder)
    aa, ua, um, up, noise = inputs(12)
    before = sample(net, aa, ua, um, up, noise)
    aa2, ua2, um2, up2, noise2 = _perturbed((aa, ua, um, up, noise), slice(6, None))  # blocks 3.. only
    after = sample(net, aa2, ua2, um2, up2, noise2)
    assert torch.equal(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:], atol=1e-3)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("name", sorted(CAUSAL_SAMPLERS))
def test_changing_past_conditions_changes_later_outputs(name, encoder):
    """The past is really used: conditions of blocks 0-1 alone (same noise everywhere) move
    the motion of blocks 3.. through the KV cache / the causal attention."""
    sample = CAUSAL_SAMPLERS[name]
    net = tiny_net(cond_encoder=encoder)
    aa, ua, um, up, noise = inputs(12)
    before = sample(net, aa, ua, um, up, noise)
    aa2, ua2, um2, up2 = _perturbed((aa, ua, um, up), slice(0, 4))
    after = sample(net, aa2, ua2, um2, up2, noise)
    assert not torch.allclose(before[:, 6:], after[:, 6:], atol=1e-3)


def test_the_causality_check_catches_an_encoder_that_reads_ahead():
    """The check above can fail: an encoder whose condition at frame t holds frame t+2's
    inputs, given the whole sequence by the offline sampler, changes frames before 6."""
    net = tiny_net()
    encode = net.encode
    net.encode = lambda *a, **k: (torch.roll(encode(*a, **k)[0], -2, dims=1), None)
    aa, ua, um, up, noise = inputs(12)
    before = sample_offline(net, aa, ua, um, up, noise, guidance=2.0)
    aa2, ua2, um2, up2, noise2 = _perturbed((aa, ua, um, up, noise), slice(6, None))
    after = sample_offline(net, aa2, ua2, um2, up2, noise2, guidance=2.0)
    assert not torch.allclose(before[:, :6], after[:, :6], atol=1e-3)


def test_network_forward_is_block_causal():
    net = tiny_net()
    aa, ua, um, up, x = inputs(8)
    drop = torch.zeros(1, dtype=torch.bool)
    mask = block_causal_mask(8, 2)
    cond, _ = net.encode(aa, ua, um, up, drop)
    x2 = x.clone()
    x2[:, 4:] = 0.0  # change blocks 2 and 3 only
    t = torch.rand(1, 8)
    v1, _ = net(x, t, cond, mask)
    v2, _ = net(x2, t, cond, mask)
    assert torch.allclose(v1[:, :4], v2[:, :4], atol=1e-6)
    assert not torch.allclose(v1[:, 4:], v2[:, 4:], atol=1e-3)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_kv_cache_streaming_equals_full_recomputation(guidance, encoder):
    net = tiny_net(cache=6, cond_encoder=encoder)
    aa, ua, um, up, noise = inputs(20)  # longer than the cache: the rolling window is exercised
    streamed = sample_streaming(net, aa, ua, um, up, noise, guidance)
    offline = sample_offline(net, aa, ua, um, up, noise, guidance)
    assert torch.allclose(streamed, offline, rtol=1e-4, atol=1e-3)  # outputs reach ~60: float32 rounding


@pytest.mark.parametrize("encoder", ENCODERS)
def test_streaming_with_block_of_one_frame_equals_recomputation(encoder):
    net = tiny_net(block=1, cache=4, cond_encoder=encoder)
    aa, ua, um, up, noise = inputs(9)
    assert torch.allclose(sample_streaming(net, aa, ua, um, up, noise), sample_offline(net, aa, ua, um, up, noise),
                          rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_dropped_user_stream_ignores_user_inputs(encoder):
    net = tiny_net(cond_encoder=encoder)
    aa, ua, um, up, noise = inputs(6)
    drop = torch.ones(1, dtype=torch.bool)
    c1, _ = net.encode(aa, ua, um, up, drop)
    c2, _ = net.encode(aa, ua + 3.0, um - 1.0, up * 0, drop)
    c3, _ = net.encode(aa, ua + 3.0, um - 1.0, up * 0, ~drop)
    assert torch.allclose(c1, c2)
    assert not torch.allclose(c1, c3)


def test_guidance_scale_changes_the_sample():
    net = tiny_net()
    aa, ua, um, up, noise = inputs(6)
    a = sample_streaming(net, aa, ua, um, up, noise, guidance=1.0)
    b = sample_streaming(net, aa, ua, um, up, noise, guidance=3.0)
    assert not torch.allclose(a, b, atol=1e-3)


def test_streaming_sampler_reset_forgets_history():
    net = tiny_net()
    aa, ua, um, up, noise = inputs(4)
    s = StreamingSampler(net)
    first = s.step(aa[:, :2], ua[:, :2], um[:, :2], up[:, :2], noise[:, :2])
    s.step(aa[:, 2:], ua[:, 2:], um[:, 2:], up[:, 2:], noise[:, 2:])
    s.reset()
    again = s.step(aa[:, :2], ua[:, :2], um[:, :2], up[:, :2], noise[:, :2])
    assert torch.allclose(first, again)


def test_window_sampler_output_has_requested_length():
    net = tiny_net()
    aa, ua, um, up, _ = inputs(10)
    out = sample_window(net, aa, ua, um, up, torch.Generator().manual_seed(0), window=8)
    assert out.shape == (1, 10, 28) and torch.isfinite(out).all()


def test_config_rejects_block_outside_range():
    with pytest.raises(ValueError, match="block_frames"):
        ForcingConfig(block_frames=11)


def test_the_attention_encoder_hears_the_user_through_the_users_audio_within_its_window():
    """User motion attends to user audio over the current and K-1 past frames, and the avatar's
    audio attends to that result over its own window: the user's audio at frame 4 moves the
    condition of frames 4..4+2(K-1) and of no other frame; the avatar's audio at frame 7 (a
    query only) moves frame 7 alone."""
    net = tiny_net(cond_encoder="attention")
    K, T = net.cfg.cond_kernel, 16
    aa, ua, um, up, _ = inputs(T)
    keep = torch.zeros(1, dtype=torch.bool)
    base, _ = net.encode(aa, ua, um, up, keep)

    def changed(cond):
        return ((cond - base).abs().amax(dim=-1)[0] > 1e-6).tolist()
    ua2 = ua.clone()
    ua2[:, 4] += 3.0
    assert changed(net.encode(aa, ua2, um, up, keep)[0]) == [4 <= t <= 4 + 2 * (K - 1) for t in range(T)]
    aa2 = aa.clone()
    aa2[:, 7] += 3.0
    assert changed(net.encode(aa2, ua, um, up, keep)[0]) == [t == 7 for t in range(T)]


def test_the_config_refuses_an_unknown_encoder():
    with pytest.raises(ValueError, match="cond_encoder"):
        ForcingConfig(cond_encoder="lstm")
