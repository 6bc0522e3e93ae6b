"""The flow transformer of the paper's released network and its dual condition encoder.

Written here from the paper and the released network's shapes; parameter names follow the
released state dict so its weights load as they are (``flow_transformer.*`` and
``audio_encoder.audio_projection.*`` of ``flow_transformer.pth``).

One velocity evaluation sees a window of frames: ``past`` frames whose keys/values are cached
(clean, written at noise 0) and ``L`` current frames. Rotary positions are those *inside the
window* (keys 0..P+L-1, queries P..P+L-1): attention only depends on position differences, so
this gives the released code's numbers while positions never grow with the conversation (the
released code indexes a table of 1,024 absolute positions and stops after 41 s).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import OfficialConfig


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def rotary(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs (2i, 2i+1) of x (N, H, L, d) by positions * 10000^(-2i/d)."""
    d = x.shape[-1]
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, device=x.device)[: d // 2].float() / d))
    angle = torch.outer(positions.to(x.device).float(), inv_freq)  # (L, d/2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    xf = x.float().reshape(*x.shape[:-1], d // 2, 2)
    a, b = xf[..., 0], xf[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.flatten(-2).type_as(x)


def block_causal_mask(n_query: int, n_past: int, block: int, lookahead: int,
                      device=None) -> torch.Tensor:
    """(L, P+L) bool, True = may attend. Window indices start at a block boundary; a frame sees
    every earlier block whole and, in its own block, frames up to ``lookahead`` ahead of it."""
    q = torch.arange(n_past, n_past + n_query, device=device)[:, None]
    k = torch.arange(n_past + n_query, device=device)[None, :]
    return ((k // block) < (q // block)) | (k <= q + lookahead)


def local_cross_mask(n_query: int, n_past: int, window: int, device=None) -> torch.Tensor:
    """(L, P+L) bool: frame i reads the conditions of frames within +-window of itself."""
    q = torch.arange(n_query, device=device)[:, None] + n_past
    k = torch.arange(n_past + n_query, device=device)[None, :]
    return (k - q).abs() <= window


class TimestepEmbedder(nn.Module):
    """Noise level (0..1000) -> sinusoid of 256 (cos then sin) -> MLP to the width."""

    def __init__(self, width: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs.to(t.device)[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class DualConditionEncoder(nn.Module):
    """User motion attends to user audio; the avatar's audio attends to that result; projected
    to the transformer width. Attention is over the whole window given (no mask)."""

    def __init__(self, dim: int, width: int, heads: int = 4):
        super().__init__()
        self.motion_embedder = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.SiLU(),
                                             nn.Linear(dim, dim), nn.LayerNorm(dim), nn.SiLU())
        self.dual_modal_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(dim)
        self.user_agent_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(dim)
        self.to_cond_user = nn.Linear(dim, width)

    def forward(self, avatar_audio: torch.Tensor, user_audio: torch.Tensor,
                user_motion: torch.Tensor) -> torch.Tensor:
        """(N, L, dim) each -> (N, L, width)."""
        m = self.motion_embedder(user_motion)
        heard, _ = self.dual_modal_attn(m, user_audio, user_audio, need_weights=False)
        user = F.silu(self.ln1(m + heard))
        fused, _ = self.user_agent_attn(avatar_audio, user, user, need_weights=False)
        return self.to_cond_user(F.silu(self.ln2(avatar_audio + fused)))


class _Linear(nn.Module):
    """A linear layer kept under the name ``proj`` (the released ``x_embedder.proj``)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.proj = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.proj(x)


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, mask, past_k=None, past_v=None):
        """x (N, L, W); past_k/v (N, H, P, d) with k before rotation. Returns (out, k, v) of
        the L new frames (k unrotated, for the cache)."""
        n, L, w = x.shape
        q, k, v = self.qkv(x).reshape(n, L, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        p = 0 if past_k is None else past_k.shape[2]
        k_all = k if past_k is None else torch.cat([past_k, k], dim=2)
        v_all = v if past_v is None else torch.cat([past_v, v], dim=2)
        pos = torch.arange(p + L)
        out = F.scaled_dot_product_attention(rotary(q, pos[p:]), rotary(k_all, pos), v_all,
                                             attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, L, w)), k, v


class CrossAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x, cond, mask, past_k=None, past_v=None):
        n, L, w = x.shape
        h, d = self.heads, w // self.heads
        q = self.q(x).reshape(n, L, h, d).transpose(1, 2)
        k, v = self.kv(cond).reshape(n, cond.shape[1], 2, h, d).permute(2, 0, 3, 1, 4)
        k_all = k if past_k is None else torch.cat([past_k, k], dim=2)
        v_all = v if past_v is None else torch.cat([past_v, v], dim=2)
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(n, L, w)), k, v


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class FlowBlock(nn.Module):
    """adaLN-modulated self-attention (gated), plain cross-attention to the conditions, gated
    MLP; the six modulations come from the transformer's one shared adaLN layer."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = _Mlp(width, int(width * mlp_ratio))
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.cross_attn = CrossAttention(width, heads)

    def forward(self, x, mod, cond, self_mask, cross_mask, past=None):
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod
        pk, pv, pck, pcv = past if past is not None else (None,) * 4
        a, k, v = self.attn(modulate(self.norm1(x), shift_a, scale_a), self_mask, pk, pv)
        x = x + gate_a * a
        c, ck, cv = self.cross_attn(self.norm3(x), cond, cross_mask, pck, pcv)
        x = x + c
        x = x + gate_m * self.mlp(modulate(self.norm2(x), shift_m, scale_m))
        return x, (k, v, ck, cv)


class FinalLayer(nn.Module):
    def __init__(self, width: int, out_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, out_dim)


class FlowTransformer(nn.Module):
    """Velocity of the motion latents of a window of frames given the conditions."""

    def __init__(self, cfg: OfficialConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.x_embedder = _Linear(2 * cfg.latent_dim, w)
        self.t_embedder = TimestepEmbedder(w)
        self.c_embedder = DualConditionEncoder(cfg.latent_dim, w, cfg.condition_heads)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))
        self.blocks = nn.ModuleList(FlowBlock(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(w, cfg.latent_dim)

    def conditions(self, avatar_audio, user_audio, user_motion) -> torch.Tensor:
        return self.c_embedder(avatar_audio, user_audio, user_motion)

    def forward(self, x, identity, cond, levels, past=None):
        """x (N, L, 512) latents, identity (N, 512) the avatar's identity motion, cond (N, L, W)
        from ``conditions``, levels (L,) the noise level of each frame (0 = clean),
        past: per layer (k, v, cross_k, cross_v) of the cached frames, or None.

        Returns (velocity (N, L, 512), per layer (k, v, cross_k, cross_v) of the L frames)."""
        cfg = self.cfg
        n, L, _ = x.shape
        p = 0 if past is None else past[0][0].shape[2]
        pc = 0 if past is None else past[0][2].shape[2]
        self_mask = block_causal_mask(L, p, cfg.block_frames, cfg.context_frames, x.device)
        cross_mask = local_cross_mask(L, pc, cfg.cross_window, x.device)

        # adaLN per frame: embed each distinct noise level once
        uniq, inverse = torch.unique(levels.float(), return_inverse=True)
        t_emb = self.t_embedder(uniq)
        mod = [m[inverse][None] for m in self.adaLN_modulation(t_emb).chunk(6, dim=-1)]
        shift, scale = (m[inverse][None] for m in
                        self.final_layer.adaLN_modulation(t_emb).chunk(2, dim=-1))

        h = self.x_embedder(torch.cat([x, identity[:, None].expand(n, L, -1)], dim=-1))
        new = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, mod, cond, self_mask, cross_mask, None if past is None else past[i])
            new.append(kv)
        fl = self.final_layer
        return fl.linear(modulate(fl.norm_final(h), shift, scale)), new


class AudioProjection(nn.Module):
    """Stacked wav2vec2 hidden states (T, layers*hidden) -> (T, 512): Linear, LayerNorm, SiLU."""

    def __init__(self, n_in: int, dim: int):
        super().__init__()
        self.audio_projection = nn.Sequential(nn.Linear(n_in, dim), nn.LayerNorm(dim), nn.SiLU())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.audio_projection(features)
