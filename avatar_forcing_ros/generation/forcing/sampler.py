"""Samplers of the network: streaming with a KV cache (the real-time path), offline full
recomputation with the block-causal mask (the reference it must equal), and a non-causal
window sampler (INFP-style baseline: bidirectional attention over a window, re-sampled for
every new block).

All take normalised conditions (N, T, .) and noise (N, T, D), return normalised motion.
Classifier-free guidance runs the conditional and the user-dropped passes as one batch:
rows [0, N) see the user, rows [N, 2N) the learned null user stream.

KV cache: a fixed buffer of C = max_cache_frames un-rotated keys/values per layer with a
validity mask; each written block shifts the oldest B frames out (a plain rolling window,
no sink frames). Cache slot j sits at rotary position j and the new block at C..C+B-1, so
only distances matter and the buffers have static shapes (what the ONNX export needs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .flow import euler_times
from .network import AvatarForcingNet, block_causal_mask, rope


def _with_null_user(x, use_cfg: bool):
    return torch.cat([x, x], dim=0) if use_cfg else x


def _drop_mask(n: int, use_cfg: bool, device=None):
    drop = [False] * n + ([True] * n if use_cfg else [])
    return torch.tensor(drop, device=device)


def _guide(v, guidance, use_cfg: bool):
    if not use_cfg:
        return v
    v_cond, v_null = v.chunk(2, dim=0)
    return v_null + guidance * (v_cond - v_null)


@dataclass
class StreamState:
    cache_k: torch.Tensor      # (L, M, H, C, hs) un-rotated keys of the last C clean frames
    cache_v: torch.Tensor      # (L, M, H, C, hs)
    cache_valid: torch.Tensor  # (C,) bool, False for slots not yet written
    conv_state: torch.Tensor   # (M, K-1, d) condition streams of the last K-1 frames
    frame: int = 0

    @classmethod
    def empty(cls, net: AvatarForcingNet, rows: int, device=None) -> "StreamState":
        cfg = net.cfg
        hs = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, rows, cfg.n_head, cfg.max_cache_frames, hs)
        return cls(torch.zeros(shape, device=device), torch.zeros(shape, device=device),
                   torch.zeros(cfg.max_cache_frames, dtype=torch.bool, device=device),
                   torch.zeros(rows, cfg.cond_kernel - 1, cfg.n_embd, device=device))


def denoise_block(net, cond, noise, guidance, cache_k, cache_v, cache_valid, steps: int, use_cfg: bool):
    """One streaming block: Euler steps from noise, then a pass at noise level 0 whose keys
    and values are written into the rolling cache (Self-Forcing style).

    cond (M, B, d) with M = 2N under guidance; noise (N, B, D). Returns x (N, B, D) and the
    new cache_k, cache_v, cache_valid."""
    n_layer, _, _, C, _ = cache_k.shape
    B = noise.shape[1]
    dev = noise.device
    past_pos = torch.arange(C, device=dev)
    pos = torch.arange(C, C + B, device=dev)
    mask = torch.cat([cache_valid[None, :].expand(B, C), torch.ones(B, B, dtype=torch.bool, device=dev)], dim=1)
    # past keys are the same for every pass of this block: rotate them once
    base = net.cfg.rope_base
    past_k = [rope(cache_k[i], past_pos, base) for i in range(n_layer)]
    past_v = [cache_v[i] for i in range(n_layer)]
    ts = euler_times(steps)
    x = noise
    M = cond.shape[0]
    for i in range(steps):
        t = torch.full((M, B), ts[i], device=dev)
        v, _ = net(_with_null_user(x, use_cfg), t, cond, mask, pos, past_k, past_v)
        x = x + (ts[i + 1] - ts[i]) * _guide(v, guidance, use_cfg)
    _, kv = net(_with_null_user(x, use_cfg), torch.zeros(M, B, device=dev), cond, mask, pos, past_k, past_v)
    new_k = torch.stack([k for k, _ in kv])  # (L, M, H, B, hs)
    new_v = torch.stack([v for _, v in kv])
    cache_k = torch.cat([cache_k[:, :, :, B:], new_k], dim=3)[:, :, :, -C:]
    cache_v = torch.cat([cache_v[:, :, :, B:], new_v], dim=3)[:, :, :, -C:]
    cache_valid = torch.cat([cache_valid[B:], torch.ones(B, dtype=torch.bool, device=dev)])[-C:]
    return x, cache_k, cache_v, cache_valid


class StreamingSampler:
    """Block-by-block causal sampling with the KV cache."""

    def __init__(self, net: AvatarForcingNet, guidance: float = 1.0, steps: int | None = None,
                 batch: int = 1, device=None):
        self.net, self.guidance, self.batch, self.device = net, float(guidance), batch, device
        self.steps = steps or net.cfg.sample_steps
        self.use_cfg = self.guidance != 1.0
        self.reset()

    def reset(self):
        self.state = StreamState.empty(self.net, self.batch * (2 if self.use_cfg else 1), self.device)

    @torch.no_grad()
    def step(self, avatar_audio, user_audio, user_motion, user_present, noise):
        """Normalised conditions of one block (N, B, .), noise (N, B, D) -> motion (N, B, D)."""
        s, net, cfg = self.state, self.net, self.use_cfg
        drop = _drop_mask(noise.shape[0], cfg, noise.device)
        cond, s.conv_state = net.encode(_with_null_user(avatar_audio, cfg), _with_null_user(user_audio, cfg),
                                        _with_null_user(user_motion, cfg), _with_null_user(user_present, cfg),
                                        drop, s.conv_state)
        x, s.cache_k, s.cache_v, s.cache_valid = denoise_block(
            net, cond, noise, self.guidance, s.cache_k, s.cache_v, s.cache_valid, self.steps, cfg)
        s.frame += noise.shape[1]
        return x


@torch.no_grad()
def sample_streaming(net, avatar_audio, user_audio, user_motion, user_present, noise,
                     guidance: float = 1.0, steps: int | None = None):
    """Whole sequences (N, T, .) through the streaming sampler, T a multiple of B."""
    B = net.cfg.block_frames
    sampler = StreamingSampler(net, guidance, steps, batch=noise.shape[0], device=noise.device)
    out = [sampler.step(avatar_audio[:, s:s + B], user_audio[:, s:s + B], user_motion[:, s:s + B],
                        user_present[:, s:s + B], noise[:, s:s + B])
           for s in range(0, noise.shape[1], B)]
    return torch.cat(out, dim=1)


@torch.no_grad()
def sample_offline(net, avatar_audio, user_audio, user_motion, user_present, noise,
                   guidance: float = 1.0, steps: int | None = None):
    """Reference sampler: for every block, recompute the whole clean past plus the noisy
    block with the block-causal mask (same rolling context as the cache). O(T^2) per block."""
    cfg = net.cfg
    steps = steps or cfg.sample_steps
    use_cfg = float(guidance) != 1.0
    N, T, _ = noise.shape
    B = cfg.block_frames
    drop = _drop_mask(N, use_cfg, noise.device)
    cond, _ = net.encode(_with_null_user(avatar_audio, use_cfg), _with_null_user(user_audio, use_cfg),
                         _with_null_user(user_motion, use_cfg), _with_null_user(user_present, use_cfg), drop)
    mask = block_causal_mask(T, B, cfg.context_blocks, noise.device)
    ts = euler_times(steps)
    clean = torch.zeros_like(noise)
    for s in range(0, T, B):
        e = s + B
        x = noise[:, s:e]
        for i in range(steps):
            seq = torch.cat([clean[:, :s], x], dim=1)
            t = torch.cat([torch.zeros(N, s), torch.full((N, B), ts[i])], dim=1).to(noise.device)
            v, _ = net(_with_null_user(seq, use_cfg), _with_null_user(t, use_cfg), cond[:, :e], mask[:e, :e])
            x = x + (ts[i + 1] - ts[i]) * _guide(v[:, s:e], guidance, use_cfg)
        clean[:, s:e] = x
    return clean


@torch.no_grad()
def sample_window(net, avatar_audio, user_audio, user_motion, user_present, generator=None,
                  guidance: float = 1.0, steps: int | None = None, window: int | None = None):
    """Non-causal baseline: for each new block, sample the last ``window`` frames (ending at
    the block) from fresh noise with full bidirectional attention; keep the block's frames."""
    cfg = net.cfg
    steps = steps or cfg.sample_steps
    W = window or cfg.window_frames
    use_cfg = float(guidance) != 1.0
    N, T, _ = avatar_audio.shape
    B = cfg.block_frames
    drop = _drop_mask(N, use_cfg, avatar_audio.device)
    cond, _ = net.encode(_with_null_user(avatar_audio, use_cfg), _with_null_user(user_audio, use_cfg),
                         _with_null_user(user_motion, use_cfg), _with_null_user(user_present, use_cfg), drop)
    ts = euler_times(steps)
    out = []
    for s in range(0, T, B):
        e = s + B
        lo = max(0, e - W)
        n = e - lo
        full = torch.ones(n, n, dtype=torch.bool, device=avatar_audio.device)
        x = torch.randn(N, n, cfg.motion_dim, generator=generator).to(avatar_audio.device)
        for i in range(steps):
            t = torch.full((x.shape[0] * (2 if use_cfg else 1), n), ts[i], device=x.device)
            v, _ = net(_with_null_user(x, use_cfg), t, cond[:, lo:e], full)
            x = x + (ts[i + 1] - ts[i]) * _guide(v, guidance, use_cfg)
        out.append(x[:, -B:])
    return torch.cat(out, dim=1)
