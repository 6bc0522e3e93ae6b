"""The Avatar Forcing network: dual condition encoder + block-causal motion transformer.

Shapes: N batch, T frames, D motion dim (28), A audio feature dim (41), d width (n_embd),
H heads, hs head size, L layers, C cached frames, B block frames.

The network works on normalised inputs; the statistics of the training set live in buffers
(saved with the weights) and ``normalize_*`` / ``denormalize_motion`` apply them.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ForcingConfig


def block_causal_mask(n_frames: int, block_frames: int, context_blocks: int | None = None,
                      device=None) -> torch.Tensor:
    """(T, T) bool, True where query frame q may attend key frame k.

    A frame sees every frame of its own block and of past blocks, never a future block;
    with ``context_blocks`` only the last that many past blocks (the rolling KV window).
    """
    blk = torch.arange(n_frames, device=device) // block_frames
    dist = blk[:, None] - blk[None, :]  # (T, T) how many blocks the key lies in the past
    mask = dist >= 0
    if context_blocks is not None:
        mask = mask & (dist <= context_blocks)
    return mask


def rope(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary position embedding of x (N, H, T, hs) at float positions pos (T,)."""
    hs = x.shape[-1]
    freqs = base ** (-torch.arange(0, hs, 2, dtype=torch.float32, device=x.device) / hs)  # (hs/2,)
    ang = pos.to(torch.float32)[:, None] * freqs[None, :]  # (T, hs/2)
    cos, sin = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class MLP(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.fc = nn.Linear(n_in, n_hidden)
        self.proj = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class ConditionEncoder(nn.Module):
    """Dual motion encoder: the user's audio + motion + presence and the avatar's own audio,
    fused causally (a conv over the current and past frames) into one condition per frame.
    Each stream can be replaced by a learned null (classifier-free guidance); the avatar's
    audio only in a two-way model (``cfg.avatar_drop > 0``)."""

    def __init__(self, cfg: ForcingConfig):
        super().__init__()
        d = cfg.n_embd
        if cfg.cond_kernel < 2:
            raise ValueError("cond_kernel must be >= 2")
        self.kernel = cfg.cond_kernel
        self.user = MLP(cfg.audio_dim + cfg.motion_dim + 1, d, d)
        self.avatar = MLP(cfg.audio_dim, d, d)
        # stands in for the whole user stream when it is dropped (classifier-free guidance)
        self.null_user = nn.Parameter(torch.zeros(d))
        # only in a two-way model, so that a checkpoint without it loads unchanged
        self.null_avatar = nn.Parameter(torch.zeros(d)) if cfg.two_way else None
        self.fuse_in = nn.Linear(2 * d, d)
        self.conv = nn.Conv1d(d, d, cfg.cond_kernel)
        self.fuse_out = MLP(d, d, d)

    def streams(self, avatar_audio, user_audio, user_motion, user_present, drop_user, drop_avatar=None):
        """Per-frame fused streams h (N, T, d); drop_user / drop_avatar (N,) bool replace the
        user stream / the avatar's audio stream by their nulls."""
        u = self.user(torch.cat([user_audio, user_motion, user_present[..., None]], dim=-1))
        u = torch.where(drop_user[:, None, None], self.null_user.expand_as(u), u)  # (N, T, d)
        a = self.avatar(avatar_audio)  # (N, T, d)
        if drop_avatar is not None:
            if self.null_avatar is None:
                raise ValueError("this model has no null for the avatar's audio (trained with avatar_drop 0)")
            a = torch.where(drop_avatar[:, None, None], self.null_avatar.expand_as(a), a)
        return self.fuse_in(torch.cat([u, a], dim=-1))

    def fuse(self, h, state=None):
        """Causal temporal fusion. state (N, K-1, d): the streams of the frames just before h
        (zeros at the start of a conversation). Returns cond (N, T, d) and the new state."""
        n, _, d = h.shape
        if state is None:
            state = h.new_zeros(n, self.kernel - 1, d)
        hp = torch.cat([state, h], dim=1)  # (N, K-1+T, d)
        c = self.conv(hp.transpose(1, 2)).transpose(1, 2)  # (N, T, d): frame t sees t-K+1..t
        return h + self.fuse_out(F.gelu(c)), hp[:, -(self.kernel - 1):]

    def forward(self, avatar_audio, user_audio, user_motion, user_present, drop_user, state=None,
                drop_avatar=None):
        """Normalised per-frame inputs -> cond (N, T, d) and the new state (N, K-1, d)."""
        h = self.streams(avatar_audio, user_audio, user_motion, user_present, drop_user, drop_avatar)
        return self.fuse(h, state)


class LocalCrossAttention(nn.Module):
    """Query frame t attends to the keys of frames t-K+1..t only (a causal local window)."""

    def __init__(self, d: int, n_head: int, kernel: int):
        super().__init__()
        self.n_head, self.kernel = n_head, kernel
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, query, keys):
        """query (N, T, d); keys (N, K-1+T, d), the K-1 frames before the query's first
        included. Returns (N, T, d)."""
        n, t, d = query.shape
        h, hs = self.n_head, d // self.n_head
        window = torch.stack([keys[:, i:i + t] for i in range(self.kernel)], dim=2)  # (N, T, K, d)
        q = self.q(query).view(n, t, h, hs)
        k, v = self.kv(window).view(n, t, self.kernel, 2, h, hs).unbind(3)  # (N, T, K, H, hs)
        att = (torch.einsum("nthd,ntkhd->nthk", q, k) / math.sqrt(hs)).softmax(dim=-1)
        return self.proj(torch.einsum("nthk,ntkhd->nthd", att, v).reshape(n, t, d))


class AttentionConditionEncoder(nn.Module):
    """The paper's dual motion encoder, causal: the user's motion (and presence) attends to the
    user's audio, and the avatar's own audio attends to that result, each over the current and
    the K-1 past frames. The user stream and, in a two-way model, the avatar's audio can be
    replaced by learned nulls (classifier-free guidance). Streaming state (N, K-1, 2d): the
    user's audio and the user stream of the last K-1 frames."""

    def __init__(self, cfg: ForcingConfig):
        super().__init__()
        d = cfg.n_embd
        if cfg.cond_kernel < 2:
            raise ValueError("cond_kernel must be >= 2")
        self.kernel, self.d = cfg.cond_kernel, d
        self.user_audio = MLP(cfg.audio_dim, d, d)
        self.user_motion = MLP(cfg.motion_dim + 1, d, d)
        self.avatar = MLP(cfg.audio_dim, d, d)
        self.hear = LocalCrossAttention(d, cfg.n_head, cfg.cond_kernel)     # user motion <- user audio
        self.ln_user = nn.LayerNorm(d)
        self.respond = LocalCrossAttention(d, cfg.n_head, cfg.cond_kernel)  # avatar audio <- the user
        self.ln_out = nn.LayerNorm(d)
        self.out = MLP(d, d, d)
        self.null_user = nn.Parameter(torch.zeros(d))
        self.null_avatar = nn.Parameter(torch.zeros(d)) if cfg.two_way else None

    def forward(self, avatar_audio, user_audio, user_motion, user_present, drop_user, state=None,
                drop_avatar=None):
        n, d = avatar_audio.shape[0], self.d
        if state is None:
            state = avatar_audio.new_zeros(n, self.kernel - 1, 2 * d)
        heard = torch.cat([state[..., :d], self.user_audio(user_audio)], dim=1)   # (N, K-1+T, d)
        m = self.user_motion(torch.cat([user_motion, user_present[..., None]], dim=-1))
        u = self.ln_user(m + self.hear(m, heard))
        u = torch.where(drop_user[:, None, None], self.null_user.expand_as(u), u)
        a = self.avatar(avatar_audio)
        if drop_avatar is not None:
            if self.null_avatar is None:
                raise ValueError("this model has no null for the avatar's audio (trained with avatar_drop 0)")
            a = torch.where(drop_avatar[:, None, None], self.null_avatar.expand_as(a), a)
        users = torch.cat([state[..., d:], u], dim=1)  # (N, K-1+T, d)
        c = self.ln_out(a + self.respond(a, users))
        keep = self.kernel - 1
        return c + self.out(F.gelu(c)), torch.cat([heard[:, -keep:], users[:, -keep:]], dim=-1)


class NoiseLevelEmbedding(nn.Module):
    """Per-frame noise level t in [0, 1] -> (N, T, d)."""

    def __init__(self, d: int, n_freq: int = 64):
        super().__init__()
        self.register_buffer("freqs", torch.exp(-math.log(1000.0) * torch.arange(n_freq // 2) / (n_freq // 2)),
                             persistent=False)
        self.mlp = MLP(n_freq, d, d)

    def forward(self, t):
        ang = (t * 1000.0)[..., None] * self.freqs  # (N, T, n_freq/2)
        return self.mlp(torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1))


class SelfAttention(nn.Module):
    def __init__(self, cfg: ForcingConfig):
        super().__init__()
        self.n_head, self.base = cfg.n_head, cfg.rope_base
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x, pos, mask, past_k=None, past_v=None, past_pos=None):
        """x (N, T, d); mask (T, S) or (N, 1, T, S) bool with S = past + T keys.
        Returns y (N, T, d) and this call's un-rotated keys and values (N, H, T, hs) for a cache."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(n, t, self.n_head, d // self.n_head).transpose(1, 2)  # (N, H, T, hs)
        k = k.view(n, t, self.n_head, d // self.n_head).transpose(1, 2)
        v = v.view(n, t, self.n_head, d // self.n_head).transpose(1, 2)
        new_kv = (k, v)
        qr, kr = rope(q, pos, self.base), rope(k, pos, self.base)
        if past_k is not None:
            # the cache holds un-rotated keys: rotating them at their slot positions keeps
            # only the distance meaningful, so absolute time never grows without bound
            # (past_pos None: the caller rotated them already, once per block)
            pk = past_k if past_pos is None else rope(past_k, past_pos, self.base)
            kr = torch.cat([pk, kr], dim=2)  # (N, H, S, hs)
            v = torch.cat([past_v, v], dim=2)
        att = (qr @ kr.transpose(-2, -1)) / math.sqrt(kr.shape[-1])  # (N, H, T, S)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(n, t, d)
        return self.proj(y), new_kv


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class TransformerBlock(nn.Module):
    """Pre-norm block with adaLN-zero modulation from the per-frame condition (DiT style)."""

    def __init__(self, cfg: ForcingConfig):
        super().__init__()
        d = cfg.n_embd
        self.ln1 = nn.LayerNorm(d, elementwise_affine=False)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(d, elementwise_affine=False)
        self.mlp = MLP(d, 4 * d, d)
        self.ada = nn.Linear(d, 6 * d)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, c, pos, mask, past_k=None, past_v=None, past_pos=None):
        s1, g1, a1, s2, g2, a2 = self.ada(F.silu(c)).chunk(6, dim=-1)  # each (N, T, d)
        y, new_kv = self.attn(modulate(self.ln1(x), s1, g1), pos, mask, past_k, past_v, past_pos)
        x = x + a1 * y
        x = x + a2 * self.mlp(modulate(self.ln2(x), s2, g2))
        return x, new_kv


class AvatarForcingNet(nn.Module):
    """Predicts the flow-matching velocity of noisy avatar motion given per-frame conditions."""

    def __init__(self, cfg: ForcingConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.n_embd
        self.cond = AttentionConditionEncoder(cfg) if cfg.cond_encoder == "attention" else ConditionEncoder(cfg)
        self.motion_in = nn.Linear(cfg.motion_dim, d)
        self.noise_level = NoiseLevelEmbedding(d)
        self.blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(d, elementwise_affine=False)
        self.ada_f = nn.Linear(d, 2 * d)
        self.head = nn.Linear(d, cfg.motion_dim)
        for lin in (self.ada_f, self.head):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        # normalisation statistics of the training set (identity until train.py sets them)
        for name, dim in (("avatar_audio", cfg.audio_dim), ("user_audio", cfg.audio_dim),
                          ("user_motion", cfg.motion_dim), ("motion", cfg.motion_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    # --- normalisation -------------------------------------------------------------------
    def normalize_conditions(self, avatar_audio, user_audio, user_motion):
        return ((avatar_audio - self.avatar_audio_mean) / self.avatar_audio_std,
                (user_audio - self.user_audio_mean) / self.user_audio_std,
                (user_motion - self.user_motion_mean) / self.user_motion_std)

    def normalize_motion(self, motion):
        return (motion - self.motion_mean) / self.motion_std

    def denormalize_motion(self, motion):
        return motion * self.motion_std + self.motion_mean

    # --- conditions ----------------------------------------------------------------------
    def encode(self, avatar_audio, user_audio, user_motion, user_present, drop_user, state=None,
               drop_avatar=None):
        """Normalised per-frame inputs -> cond (N, T, d) and the encoder's causal state."""
        return self.cond(avatar_audio, user_audio, user_motion, user_present, drop_user, state, drop_avatar)

    # --- the transformer -----------------------------------------------------------------
    def forward(self, x_t, t, cond, mask, pos=None, past_k=None, past_v=None, past_pos=None):
        """x_t (N, T, D) noisy motion, t (N, T) its per-frame noise level, cond (N, T, d).
        past_k/past_v: per-layer lists of cached (N, H, C, hs) keys/values at past_pos (C,).
        Returns the velocity (N, T, D) and per-layer (k, v) of these T frames."""
        n, T, _ = x_t.shape
        if pos is None:
            pos = torch.arange(T, device=x_t.device)
        c = cond + self.noise_level(t)  # (N, T, d)
        x = self.motion_in(x_t) + cond
        new_kv = []
        for i, block in enumerate(self.blocks):
            pk = past_k[i] if past_k is not None else None
            pv = past_v[i] if past_v is not None else None
            x, kv = block(x, c, pos, mask, pk, pv, past_pos)
            new_kv.append(kv)
        shift, scale = self.ada_f(F.silu(c)).chunk(2, dim=-1)
        return self.head(modulate(self.ln_f(x), shift, scale)), new_kv

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
