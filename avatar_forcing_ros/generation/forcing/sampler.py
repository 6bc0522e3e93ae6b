"""Samplers of the network: streaming with a KV cache (the real-time path), offline full
recomputation with the block-causal mask (the reference it must equal), and a non-causal
window sampler (INFP-style baseline: bidirectional attention over a window, re-sampled for
every new block).

All take normalised conditions (N, T, .) and noise (N, T, D), return normalised motion.
Classifier-free guidance runs its conditions as one batch of ``Guidance.rows`` x N rows:
rows [0, N) see everything, [N, 2N) the learned null user stream, and for a two-way model
[2N, 3N) the null user and the null avatar audio (see ``Guidance``).

KV cache: a fixed buffer of C = max_cache_frames un-rotated keys/values per layer with a
validity mask; each written block shifts the oldest B frames out (a plain rolling window,
no sink frames). Cache slot j sits at rotary position j and the new block at C..C+B-1, so
only distances matter and the buffers have static shapes (what the ONNX export needs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ForcingConfig, check_guidance
from .flow import euler_times
from .network import AvatarForcingNet, block_causal_mask, rope


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance over the user stream (scale ``user``) and, for a two-way model,
    over the avatar's own audio (``audio``), as in the paper:

        v = v(-, -) + audio * (v(a, -) - v(-, -)) + user * (v(a, u) - v(a, -))

    ``nod``: the user scale on the nod axis (head pitch, ``nod_mask``), None for ``user`` on
    every channel. ``rows`` conditions run per block: 1 (no guidance), 2 (a, u), (a, -), 3
    adds (-, -). The scales may be tensors (the ONNX graph takes them as an input)."""
    user: float = 1.0
    audio: float = 1.0
    rows: int = 1
    nod: float | None = None
    nod_mask: torch.Tensor | None = None

    @classmethod
    def plan(cls, cfg: ForcingConfig, user: float, audio: float = 1.0, rows: int | None = None,
             nod: float | None = None) -> "Guidance":
        """The rows these scales need (``rows``: fixed, e.g. all the model has, so that the
        scales can change while streaming without changing the cache's shape)."""
        user, audio = check_guidance(user), check_guidance(audio, "audio guidance")
        nod = None if nod is None or float(nod) == user else check_guidance(nod, "nod guidance")
        if audio != 1.0 and not cfg.two_way:
            raise ValueError("audio guidance needs a model trained with avatar_drop > 0 (two-way guidance)")
        need = 3 if audio != 1.0 else 2 if user != 1.0 or (nod is not None and nod != 1.0) else 1
        rows = need if rows is None else int(rows)
        if not need <= rows <= cfg.guidance_rows:
            raise ValueError(f"guidance user={user} audio={audio} nod={nod} cannot run on {rows} rows "
                             f"(needs {need}, the model has at most {cfg.guidance_rows})")
        return cls(user, audio, rows, nod, None if nod is None else torch.from_numpy(cfg.nod_mask()))

    def user_scale(self, device=None):
        """The user scale: a number, or per channel (D,) where the nod axis has its own."""
        if self.nod is None:
            return self.user
        return self.user + (self.nod - self.user) * self.nod_mask.to(device)

    def expand(self, x):
        """(N, ...) -> (rows N, ...): the same inputs for every row."""
        return torch.cat([x] * self.rows, dim=0) if self.rows > 1 else x

    def drops(self, n: int, device=None):
        """Per-row drop flags (user, avatar audio or None) for a batch of n."""
        user = torch.tensor([False] * n + [True] * n * (self.rows - 1), device=device)
        avatar = torch.tensor([False] * 2 * n + [True] * n, device=device) if self.rows == 3 else None
        return user, avatar

    def combine(self, v):
        """Velocities of all rows (rows N, ...) -> the guided velocity (N, ...)."""
        if self.rows == 1:
            return v
        if self.rows == 2:
            v_cond, v_null = v.chunk(2, dim=0)
            return v_null + self.user_scale(v.device) * (v_cond - v_null)
        v_cond, v_audio, v_none = v.chunk(3, dim=0)
        return v_none + self.audio * (v_audio - v_none) + self.user_scale(v.device) * (v_cond - v_audio)

    def encode(self, net: AvatarForcingNet, avatar_audio, user_audio, user_motion, user_present, state=None):
        """The condition encoder over every row; returns cond (rows N, T, d) and the state."""
        drop_user, drop_avatar = self.drops(avatar_audio.shape[0], avatar_audio.device)
        return net.encode(self.expand(avatar_audio), self.expand(user_audio), self.expand(user_motion),
                          self.expand(user_present), drop_user, state, drop_avatar=drop_avatar)


@dataclass
class StreamState:
    cache_k: torch.Tensor      # (L, M, H, C, hs) un-rotated keys of the last C clean frames
    cache_v: torch.Tensor      # (L, M, H, C, hs)
    cache_valid: torch.Tensor  # (C,) bool, False for slots not yet written
    conv_state: torch.Tensor   # (M, K-1, cond_state_dim) the condition encoder's last K-1 frames
    frame: int = 0

    @classmethod
    def empty(cls, net: AvatarForcingNet, rows: int, device=None) -> "StreamState":
        cfg = net.cfg
        hs = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, rows, cfg.n_head, cfg.max_cache_frames, hs)
        return cls(torch.zeros(shape, device=device), torch.zeros(shape, device=device),
                   torch.zeros(cfg.max_cache_frames, dtype=torch.bool, device=device),
                   torch.zeros(rows, cfg.cond_kernel - 1, cfg.cond_state_dim, device=device))


def context_input(x, context_noise, level: float):
    """What a finished block is written into the cache as: x itself at level 0, else x noised
    to ``level`` with ``context_noise`` (same shape as x)."""
    if not level:
        return x
    return (1.0 - level) * x + level * context_noise


def denoise_block(net, cond, noise, guide: Guidance, cache_k, cache_v, cache_valid, steps: int,
                  context_noise=None, context_level: float = 0.0, write_as=None):
    """One streaming block: Euler steps from noise, then a pass whose keys and values are
    written into the rolling cache (Self-Forcing style): at noise level ``context_level``
    over the block noised with ``context_noise`` (N, B, D), or at 0 over the clean block.
    ``write_as``: x -> the block kept in its place (teacher forcing in probes; None: x).

    cond (M, B, d) with M = guide.rows N; noise (N, B, D). Returns x (N, B, D) and the
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
        v, _ = net(guide.expand(x), t, cond, mask, pos, past_k, past_v)
        x = x + (ts[i + 1] - ts[i]) * guide.combine(v)
    if write_as is not None:
        x = write_as(x)
    x_ctx = context_input(x, context_noise, context_level)
    _, kv = net(guide.expand(x_ctx), torch.full((M, B), float(context_level), device=dev), cond, mask, pos,
                past_k, past_v)
    new_k = torch.stack([k for k, _ in kv])  # (L, M, H, B, hs)
    new_v = torch.stack([v for _, v in kv])
    cache_k = torch.cat([cache_k[:, :, :, B:], new_k], dim=3)[:, :, :, -C:]
    cache_v = torch.cat([cache_v[:, :, :, B:], new_v], dim=3)[:, :, :, -C:]
    cache_valid = torch.cat([cache_valid[B:], torch.ones(B, dtype=torch.bool, device=dev)])[-C:]
    return x, cache_k, cache_v, cache_valid


class StreamingSampler:
    """Block-by-block causal sampling with the KV cache. ``rows``: guidance rows kept in the
    cache (default: what the scales need; a live model keeps all the model has so that
    ``set_guidance`` can change the scales while streaming)."""

    def __init__(self, net: AvatarForcingNet, guidance: float = 1.0, steps: int | None = None,
                 batch: int = 1, device=None, audio_guidance: float = 1.0, rows: int | None = None,
                 context_level: float | None = None, nod_guidance: float | None = None):
        self.net, self.batch, self.device = net, batch, device
        self.context_level = net.cfg.context_noise if context_level is None else float(context_level)
        self.guide = Guidance.plan(net.cfg, guidance, audio_guidance, rows, nod_guidance)
        self.steps = steps or net.cfg.sample_steps
        self.reset()

    def reset(self):
        self.state = StreamState.empty(self.net, self.batch * self.guide.rows, self.device)

    def set_guidance(self, user: float, audio: float = 1.0, nod: float | None = None) -> None:
        """New scales from the next block on, on the rows the cache already has."""
        self.guide = Guidance.plan(self.net.cfg, user, audio, self.guide.rows, nod)

    @torch.no_grad()
    def step(self, avatar_audio, user_audio, user_motion, user_present, noise, context_noise=None):
        """Normalised conditions of one block (N, B, .), noise (N, B, D) -> motion (N, B, D).
        ``context_noise`` (N, B, D): needed when the context level is above 0."""
        if self.context_level and context_noise is None:
            raise ValueError("a context noise level above 0 needs the block's context_noise")
        s = self.state
        cond, s.conv_state = self.guide.encode(self.net, avatar_audio, user_audio, user_motion, user_present,
                                               s.conv_state)
        x, s.cache_k, s.cache_v, s.cache_valid = denoise_block(
            self.net, cond, noise, self.guide, s.cache_k, s.cache_v, s.cache_valid, self.steps,
            context_noise, self.context_level)
        s.frame += noise.shape[1]
        return x


@torch.no_grad()
def sample_streaming(net, avatar_audio, user_audio, user_motion, user_present, noise,
                     guidance: float = 1.0, steps: int | None = None, audio_guidance: float = 1.0,
                     context_noise=None, context_level: float | None = None, nod_guidance: float | None = None):
    """Whole sequences (N, T, .) through the streaming sampler, T a multiple of B.
    context_noise (N, T, D) with context_level (None: the config's context_noise)."""
    B = net.cfg.block_frames
    sampler = StreamingSampler(net, guidance, steps, batch=noise.shape[0], device=noise.device,
                               audio_guidance=audio_guidance, context_level=context_level,
                               nod_guidance=nod_guidance)
    out = [sampler.step(avatar_audio[:, s:s + B], user_audio[:, s:s + B], user_motion[:, s:s + B],
                        user_present[:, s:s + B], noise[:, s:s + B],
                        None if context_noise is None else context_noise[:, s:s + B])
           for s in range(0, noise.shape[1], B)]
    return torch.cat(out, dim=1)


@torch.no_grad()
def sample_offline(net, avatar_audio, user_audio, user_motion, user_present, noise,
                   guidance: float = 1.0, steps: int | None = None, audio_guidance: float = 1.0,
                   context_noise=None, context_level: float | None = None, nod_guidance: float | None = None):
    """Reference sampler: for every block, recompute the whole past (noised to the context
    level, as the cache holds it) plus the noisy block with the block-causal mask (same
    rolling context as the cache). O(T^2) per block."""
    cfg = net.cfg
    steps = steps or cfg.sample_steps
    level = cfg.context_noise if context_level is None else float(context_level)
    if level and context_noise is None:
        raise ValueError("a context noise level above 0 needs context_noise")
    guide = Guidance.plan(cfg, guidance, audio_guidance, nod=nod_guidance)
    N, T, _ = noise.shape
    B = cfg.block_frames
    cond, _ = guide.encode(net, avatar_audio, user_audio, user_motion, user_present)
    mask = block_causal_mask(T, B, cfg.context_blocks, noise.device)
    ts = euler_times(steps)
    clean = torch.zeros_like(noise)
    past = torch.zeros_like(noise)  # the blocks as the cache holds them
    for s in range(0, T, B):
        e = s + B
        x = noise[:, s:e]
        for i in range(steps):
            seq = torch.cat([past[:, :s], x], dim=1)
            t = torch.cat([torch.full((N, s), level), torch.full((N, B), ts[i])], dim=1).to(noise.device)
            v, _ = net(guide.expand(seq), guide.expand(t), cond[:, :e], mask[:e, :e])
            x = x + (ts[i + 1] - ts[i]) * guide.combine(v[:, s:e])
        clean[:, s:e] = x
        past[:, s:e] = context_input(x, None if context_noise is None else context_noise[:, s:e], level)
    return clean


@torch.no_grad()
def sample_window(net, avatar_audio, user_audio, user_motion, user_present, generator=None,
                  guidance: float = 1.0, steps: int | None = None, window: int | None = None,
                  audio_guidance: float = 1.0, noise_scale=None, nod_guidance: float | None = None):
    """Non-causal baseline: for each new block, sample the last ``window`` frames (ending at
    the block) from fresh noise with full bidirectional attention; keep the block's frames.
    ``noise_scale`` (D,): the per-channel temperature of that noise (ForcingConfig.noise_scale)."""
    cfg = net.cfg
    steps = steps or cfg.sample_steps
    W = window or cfg.window_frames
    guide = Guidance.plan(cfg, guidance, audio_guidance, nod=nod_guidance)
    N, T, _ = avatar_audio.shape
    B = cfg.block_frames
    cond, _ = guide.encode(net, avatar_audio, user_audio, user_motion, user_present)
    ts = euler_times(steps)
    out = []
    for s in range(0, T, B):
        e = s + B
        lo = max(0, e - W)
        n = e - lo
        full = torch.ones(n, n, dtype=torch.bool, device=avatar_audio.device)
        x = torch.randn(N, n, cfg.motion_dim, generator=generator).to(avatar_audio.device)
        if noise_scale is not None:
            x = x * torch.as_tensor(noise_scale, device=x.device)
        for i in range(steps):
            t = torch.full((x.shape[0] * guide.rows, n), ts[i], device=x.device)
            v, _ = net(guide.expand(x), t, cond[:, lo:e], full)
            x = x + (ts[i + 1] - ts[i]) * guide.combine(v)
        out.append(x[:, -B:])
    return torch.cat(out, dim=1)
