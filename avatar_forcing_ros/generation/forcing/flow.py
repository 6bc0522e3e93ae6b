"""Flow-matching maths (rectified flow): t = 0 is clean motion, t = 1 is pure noise.

x_t = (1 - t) x0 + t * eps, and the network predicts the velocity dx_t/dt = eps - x0, so
sampling integrates from t = 1 down to t = 0 with Euler steps x <- x + (t_next - t) v.
"""
from __future__ import annotations

import torch


def interpolate(x0, eps, t):
    """x0, eps (N, T, D); t (N, T) per-frame noise level."""
    return (1.0 - t[..., None]) * x0 + t[..., None] * eps


def velocity_target(x0, eps):
    return eps - x0


def euler_times(steps: int) -> list[float]:
    """Noise levels visited by the sampler, from 1 (noise) to 0 (clean)."""
    return [1.0 - i / steps for i in range(steps + 1)]


def block_noise_levels(n: int, n_frames: int, block_frames: int, clean_context_prob: float = 0.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Diffusion forcing: an independent noise level per block, shared by its frames. (N, T).

    With probability ``clean_context_prob`` a window also gets a clean (t = 0) prefix of a
    random number of blocks, the situation the streaming sampler is always in (clean past).
    """
    n_blocks = n_frames // block_frames
    t = torch.rand(n, n_blocks, generator=generator)
    if clean_context_prob > 0:
        cut = torch.randint(0, n_blocks, (n,), generator=generator)  # blocks in the clean prefix
        use = torch.rand(n, generator=generator) < clean_context_prob
        prefix = torch.arange(n_blocks)[None, :] < cut[:, None]
        t = torch.where(use[:, None] & prefix, torch.zeros_like(t), t)
    return t.repeat_interleave(block_frames, dim=1)


def per_frame_loss(net, x0, eps, t, cond, mask):
    """Squared velocity error per frame (N, T) of the network on noisy x0."""
    v, _ = net(interpolate(x0, eps, t), t, cond, mask)
    return ((v - velocity_target(x0, eps)) ** 2).mean(dim=-1)


def flow_matching_loss(net, x0, eps, t, cond, mask):
    """Mean velocity error over the noisy frames; clean (t = 0) context frames carry no
    target (their velocity would have to guess the unseen noise)."""
    err = per_frame_loss(net, x0, eps, t, cond, mask)
    w = (t > 0).float()
    return (err * w).sum() / w.sum().clamp(min=1.0)
