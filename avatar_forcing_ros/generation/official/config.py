"""Sizes of the paper's released network (Avatar Forcing, configs/inference.yaml of the authors'
code), as one dataclass: the full size is the default, tests build small ones.

The motion latent is 512-d (an identity code from the image encoder, plus a motion offset made
of 20 coefficients on 512-d orthonormal directions); the flow transformer generates that
offset for every frame at 25 fps.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


class OfficialWeightsError(ValueError):
    """The official weights (or their converted safetensors) are missing or do not fit."""


# Channels of the image encoder / style decoder per feature-map side, as in the released code.
FULL_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


@dataclass
class OfficialConfig:
    fps: float = 25.0
    sample_rate: int = 16000
    image_size: int = 512              # faces are 512x512 crops, RGB in [-1, 1]
    latent_dim: int = 512              # dim_w = dim_a: motion latent, audio projection, condition width
    motion_dim: int = 20               # dim_m: coefficients on the orthonormal motion directions
    width: int = 1024                  # dim_h: flow transformer width
    heads: int = 8
    depth: int = 8
    mlp_ratio: float = 4.0
    condition_heads: int = 4           # the dual condition encoder's two attentions
    clip_frames: int = 50              # sec * fps: the first block is denoised whole
    block_frames: int = 10             # each later block
    context_frames: int = 2            # clean frames of the previous block re-read with each block
    cross_window: int = 2              # a frame reads the conditions of frames within +-2
    train_timesteps: int = 1000
    nfe: int = 10                      # as the released code counts it: linspace(1000, 0, nfe - 1)
    audio_scale: float = 2.0           # guidance: v0 + a (v_audio - v0) + u (v_user - v0)
    user_scale: float = 1.0
    audio_features: int = 12 * 768     # wav2vec2-base: all 12 layers' hidden states, stacked
    channels: dict = field(default_factory=lambda: dict(FULL_CHANNELS))

    @property
    def samples_per_frame(self) -> int:
        return int(self.sample_rate / self.fps)

    @property
    def cache_frames(self) -> int:
        """Frames whose keys/values stay in the self-attention cache (38 at full size): the
        window of ``clip_frames`` keys less the current block and its context."""
        return self.clip_frames - self.block_frames - self.context_frames

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = {str(k): v for k, v in self.channels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OfficialConfig":
        d = dict(d)
        if "channels" in d:
            d["channels"] = {int(k): int(v) for k, v in d["channels"].items()}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise OfficialWeightsError(f"unknown config keys {unknown}")
        return cls(**d)
