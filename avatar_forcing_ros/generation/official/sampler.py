"""Block-by-block flow-matching sampling of the official network, with its KV cache.

The first block is ``clip_frames`` (50) frames denoised whole; every later block is 10 new
frames plus the 2 last frames of the block before (clean, noise 0: the look-ahead context that
the new frames' first keys are read with). Each block is denoised with the released schedule
(noise levels ``linspace(1000, 0, nfe - 1)``, sigma read from the 1,000-step table), three
conditionings batched for guidance v0 + a (v_audio - v0) + u (v_user - v0), then one pass at
noise 0 writes the clean keys/values of the block into the cache (38 frames of self-attention,
2 frames of condition keys). The cache is a fixed-size window and positions are window-relative
(``flow.py``), so a conversation can last any number of hours with constant memory and time.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import OfficialConfig
from .flow import FlowTransformer

NoiseFn = Callable[[tuple], torch.Tensor]


def noise_levels(cfg: OfficialConfig, nfe: int | None = None) -> list[float]:
    """The released sampler's noise levels: nfe - 1 points from 1000 down to 0."""
    return [float(t) for t in np.linspace(cfg.train_timesteps, 0, (nfe or cfg.nfe) - 1)]


class SigmaTable:
    """sigma(t) as the released scheduler reads it: the nearest of 1,000 levels (float32
    linspace(1, 0, 1000), timesteps = 1000 sigma), 0 at t = 0."""

    def __init__(self, steps: int = 1000):
        self.sigmas = torch.linspace(1.0, 0.0, steps)
        self.timesteps = (self.sigmas * steps).double()
        self.sigmas = self.sigmas.double()

    def __call__(self, t: float) -> float:
        if t == 0:
            return 0.0
        return float(self.sigmas[(self.timesteps - float(t)).abs().argmin()])


class FlowSampler:
    """Streams the avatar's motion latents block by block for one conversation."""

    def __init__(self, flow: FlowTransformer, nfe: int | None = None,
                 audio_scale: float | None = None, user_scale: float | None = None,
                 noise: NoiseFn | None = None, seed: int = 0):
        self.flow = flow
        self.cfg = cfg = flow.cfg
        self.levels = noise_levels(cfg, nfe)
        if len(self.levels) < 2:
            raise ValueError(f"nfe must be at least 3 (got {nfe}): the released schedule has "
                             "nfe - 1 levels from 1000 down to 0")
        self.sigma = SigmaTable(cfg.train_timesteps)
        self.audio_scale = cfg.audio_scale if audio_scale is None else float(audio_scale)
        self.user_scale = cfg.user_scale if user_scale is None else float(user_scale)
        self._noise_fn = noise
        self.seed = seed
        self.identity = None
        self.reset()

    # ---- state ----
    def reset(self, identity: torch.Tensor | None = None, seed: int | None = None) -> None:
        """Forget the conversation; ``identity`` (1, 512) is the avatar's identity motion."""
        if identity is not None:
            self.identity = identity.reshape(1, -1).float()
        self.generator = torch.Generator().manual_seed(self.seed if seed is None else seed)
        self.past = None          # per layer (k, v, cross_k, cross_v), batch of 3
        self.context = None       # (1, 2, 512): the last clean frames of the previous block
        self.frames_done = 0

    def _noise(self, shape) -> torch.Tensor:
        if self._noise_fn is not None:
            return self._noise_fn(shape)
        return torch.randn(shape, generator=self.generator)

    @property
    def first(self) -> bool:
        return self.past is None

    @property
    def frames_needed(self) -> int:
        """Condition frames the next block needs: clip_frames first, then context + block."""
        return self.cfg.clip_frames if self.first else self.cfg.context_frames + self.cfg.block_frames

    def cache_state_bytes(self) -> int:
        if self.past is None:
            return 0
        return sum(t.numel() * t.element_size() for layer in self.past for t in layer)

    # ---- one block ----
    @torch.inference_mode()
    def next_block(self, avatar_audio: torch.Tensor, user_audio: torch.Tensor,
                   user_motion: torch.Tensor) -> torch.Tensor:
        """Conditions (1, frames_needed, 512) each: projected audio features of the avatar and
        the user, the user's motion latent (zeros = no user). For later blocks they cover the 2
        context frames then the 10 new ones. Returns the new frames' latents (1, n, 512)."""
        if self.identity is None:
            raise RuntimeError("reset(identity) first: the avatar's identity motion is needed")
        cfg = self.cfg
        L = self.frames_needed
        for name, c in (("avatar_audio", avatar_audio), ("user_audio", user_audio),
                        ("user_motion", user_motion)):
            if tuple(c.shape) != (1, L, cfg.latent_dim):
                raise ValueError(f"{name}: expected shape (1, {L}, {cfg.latent_dim}), got {tuple(c.shape)}")
        flow, dev = self.flow, self.identity.device
        ctx = 0 if self.first else cfg.context_frames
        new = L - ctx
        x = self._noise((1, new, cfg.latent_dim)).to(dev)
        if ctx:
            x = torch.cat([self.context, x], dim=1)
        z = torch.zeros_like(avatar_audio)
        zu = torch.zeros_like(user_audio)
        cond = flow.conditions(torch.cat([z, avatar_audio, z]), torch.cat([zu, zu, user_audio]),
                               torch.cat([torch.zeros_like(user_motion)] * 2 + [user_motion]))
        ident = self.identity.expand(3, -1)
        a, u = self.audio_scale, self.user_scale
        # the released loop's last evaluation (level 0 -> 0) changes nothing and is skipped
        for t, t_next in zip(self.levels[:-1], self.levels[1:]):
            levels = torch.tensor([0.0] * ctx + [t] * new)
            v3, _ = flow(x.repeat(3, 1, 1), ident, cond, levels, self.past)
            v0, va, vu = v3.chunk(3)
            v = v0 + a * (va - v0) + u * (vu - v0)
            step = self.sigma(t_next) - self.sigma(t)
            fresh = x[:, ctx:].double() + step * v[:, ctx:].double()
            x = torch.cat([x[:, :ctx], fresh.float()], dim=1)
        self._write_cache(x, ident, cond, ctx)
        self.context = x[:, L - cfg.context_frames:]
        self.frames_done += new
        return x[:, ctx:]

    def _write_cache(self, x, ident, cond, ctx) -> None:
        """One pass at noise 0 over the block: its clean keys/values join the window."""
        cfg = self.cfg
        L = x.shape[1]
        _, kv = self.flow(x.repeat(3, 1, 1), ident, cond, torch.zeros(L), self.past)
        keep = L - cfg.context_frames       # the last 2 frames come back as the next context
        cw = cfg.cross_window
        past = []
        for i, (k, v, ck, cv) in enumerate(kv):
            if self.past is None:
                sk, sv = k[:, :, keep - cfg.cache_frames:keep], v[:, :, keep - cfg.cache_frames:keep]
            else:
                pk, pv = self.past[i][0], self.past[i][1]
                sk = torch.cat([pk, k[:, :, :keep]], dim=2)[:, :, -cfg.cache_frames:]
                sv = torch.cat([pv, v[:, :, :keep]], dim=2)[:, :, -cfg.cache_frames:]
            past.append((sk.contiguous(), sv.contiguous(),
                         ck[:, :, keep - cw:keep].contiguous(), cv[:, :, keep - cw:keep].contiguous()))
        self.past = past


def _window(seq: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """seq[:, start:start+length], the last frame repeated where seq ends (as the released code)."""
    w = seq[:, start:start + length]
    if w.shape[1] < length:
        w = F.pad(w.transpose(1, 2), (0, length - w.shape[1]), mode="replicate").transpose(1, 2)
    return w


@torch.inference_mode()
def sample_recording(sampler: FlowSampler, identity: torch.Tensor, avatar_audio: torch.Tensor,
                     user_audio: torch.Tensor, user_motion: torch.Tensor, frames: int) -> torch.Tensor:
    """A whole recording through the streaming sampler, block by block: what the released
    offline inference computes (same windows, same padding at the end). (1, frames, 512)."""
    cfg = sampler.cfg
    sampler.reset(identity)
    out = [sampler.next_block(*(_window(s, 0, cfg.clip_frames)
                                for s in (avatar_audio, user_audio, user_motion)))]
    for t in range(cfg.clip_frames, frames, cfg.block_frames):
        start, n = t - cfg.context_frames, cfg.context_frames + cfg.block_frames
        out.append(sampler.next_block(*(_window(s, start, n)
                                        for s in (avatar_audio, user_audio, user_motion))))
    return torch.cat(out, dim=1)[:, :frames]
