"""Diffusion-DPO with dropped-user-condition losers."""
import copy
import math

import torch

from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.dpo import dpo_loss, dpo_train, generate_losers, normalised_batch
from avatar_forcing_ros.generation.forcing.flow import block_noise_levels, flow_matching_loss
from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet, block_causal_mask
from avatar_forcing_ros.generation.forcing.synthetic import toy_sessions
from avatar_forcing_ros.generation.forcing.train import WindowSampler, compute_stats, set_stats

TINY = dict(n_layer=2, n_embd=32, n_head=2, block_frames=2, window_frames=16, max_cache_frames=14)


def setup(seed=0):
    torch.manual_seed(seed)
    sessions = toy_sessions(2, 120)
    net = AvatarForcingNet(ForcingConfig(**TINY))
    set_stats(net, compute_stats(sessions))
    cond, winners = normalised_batch(net, WindowSampler(sessions, 16, seed).batch(8))
    losers = torch.randn_like(winners)
    return net, cond, winners, losers


def fit(net, cond, target, steps=40):
    """A few plain flow-matching steps towards ``target`` on these windows."""
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(5)
    mask = block_causal_mask(16, 2)
    for _ in range(steps):
        c, _ = net.encode(*cond, torch.zeros(target.shape[0], dtype=torch.bool))
        t = block_noise_levels(target.shape[0], 16, 2, 0.0, g)
        loss = flow_matching_loss(net, target, torch.randn(target.shape, generator=g), t, c, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def test_dpo_loss_is_log2_when_model_equals_reference():
    net, cond, w, l = setup()
    loss, margin = dpo_loss(net, copy.deepcopy(net), w, l, cond, beta=100.0)
    assert abs(loss.item() - math.log(2)) < 1e-6
    assert margin.item() == 0.0


def test_dpo_loss_prefers_a_model_that_fits_winners_over_one_that_fits_losers():
    net, cond, w, l = setup()
    ref = copy.deepcopy(net)
    fits_winners = fit(copy.deepcopy(net), cond, w)
    fits_losers = fit(copy.deepcopy(net), cond, l)
    g = torch.Generator().manual_seed(0)
    good, m_good = dpo_loss(fits_winners, ref, w, l, cond, beta=10.0, generator=g)
    g = torch.Generator().manual_seed(0)
    bad, m_bad = dpo_loss(fits_losers, ref, w, l, cond, beta=10.0, generator=g)
    assert good.item() < math.log(2) < bad.item()
    assert m_good.item() > 0 > m_bad.item()


def test_dpo_training_raises_the_winner_margin():
    sessions = toy_sessions(2, 120)
    net = AvatarForcingNet(ForcingConfig(**TINY))
    set_stats(net, compute_stats(sessions))
    _, hist = dpo_train(net, WindowSampler(sessions, 16, 0), steps=30, batch_size=8, pool=16, lr=1e-3,
                        beta=10.0, log_every=5)
    assert hist[-1]["margin"] > 0 and hist[-1]["dpo_loss"] < math.log(2)


def test_losers_ignore_the_user_conditions():
    net, cond, _, _ = setup()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    a = generate_losers(net, cond, torch.Generator().manual_seed(1))
    other = (cond[0], cond[1] + 2.0, cond[2] - 1.0, cond[3] * 0)
    b = generate_losers(net, other, torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-5)


def test_losers_are_sampled_at_the_models_own_mouth_temperature():
    """A loser differs from the model's run-time output only by the dropped user: drawn with the
    run-time sampler's noise (mouth temperature on the articulation channels), not at 1."""
    from avatar_forcing_ros.generation.forcing.sampler import sample_streaming
    net, cond, _, _ = setup()
    net.cfg.mouth_temperature = 0.25
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.1)
    losers = generate_losers(net, cond, torch.Generator().manual_seed(3))
    noise = torch.randn(losers.shape, generator=torch.Generator().manual_seed(3))
    scaled = sample_streaming(net, *cond, noise * torch.from_numpy(net.cfg.noise_scale()), guidance=0.0)
    assert torch.allclose(losers, scaled, atol=1e-6)
    assert not torch.allclose(losers, sample_streaming(net, *cond, noise, guidance=0.0), atol=1e-3)
