"""Configuration of the Avatar Forcing network and its training/sampling defaults."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

FORMAT = "af-forcing-v1"

# The channels that articulate speech, whose starting noise mouth_temperature scales. Smiles and
# frowns are left out: they answer the user, not the avatar's own voice.
ARTICULATION = ("jawOpen", "mouthFunnel", "mouthPucker", "mouthStretchLeft", "mouthStretchRight")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or made for other inputs/outputs."""


@dataclass
class ForcingConfig:
    # what the model reads and writes (checked against the runtime when a checkpoint loads)
    motion_space: str = "af-motion-v1"
    motion_dim: int = 28
    audio_dim: int = 41          # LogMelFeatures.dim (40 mel bands + log RMS)
    fps: float = 25.0
    # condition encoder (dual motion encoder): "conv", the streams fused by a causal conv; or
    # "attention", the paper's: the user's motion attends to the user's audio, the avatar's
    # audio attends to that result, each over a causal window of cond_kernel frames
    cond_encoder: str = "conv"
    cond_kernel: int = 5         # the current and 4 past frames
    # motion transformer
    block_frames: int = 2        # B: frames denoised together; attention is causal across blocks
    # L: frames of the conditions the motion sees ahead of itself (the paper's look-ahead into
    # the next block): frame t is made from the inputs up to t + L. Costs L frames of latency
    # (the runtime presents each frame L frames later); 0 = strictly causal (the shipped models).
    lookahead_frames: int = 0
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    rope_base: float = 1000.0
    # context: frames of clean past kept in the KV cache (a plain rolling window, no sinks,
    # because rotary positions make attention depend on distance and the network only ever
    # saw distances below window_frames in training)
    window_frames: int = 48      # W: training window length
    max_cache_frames: int = 46   # W - B: the newest block plus the cache span one training window
    # flow matching / sampling
    sample_steps: int = 4
    guidance_scale: float = 1.5  # guidance over the user stream
    cond_drop: float = 0.1       # training probability of replacing the user stream by the null
    # two-way guidance (the paper's separate scale for the avatar's own audio): with
    # avatar_drop > 0 the avatar's audio stream is also dropped in training and a learned null
    # stands in for it; audio_guidance_scale > 1 then pushes the motion further towards what
    # the audio explains (a third row per block: 1.5x the compute of user guidance alone).
    # 0 / 1.0: a model without it (af_forcing_v1 to af_forcing_v4).
    avatar_drop: float = 0.0
    audio_guidance_scale: float = 1.0
    # the user guidance on the nod axis (head pitch) alone (None: guidance_scale, as on every
    # channel). The listener's back-channel nod at the user's pause is a weak relation that
    # only a strong guidance brings out, while the same strength elsewhere copies the user's
    # smiles too closely and sways the head: the nod gets its own scale, calibrated on
    # validation (avatar-forcing evaluate --nod-guidance-grid). A sampling setting, no extra compute.
    nod_guidance_scale: float | None = None
    clean_context_prob: float = 0.25  # training probability of a clean (noise 0) prefix, as at inference
    # sampling temperature of the articulation channels: their starting noise is scaled by it.
    # Below 1 the mouth keeps nearer what the speech explains (the mode rather than a random
    # draw), as TTS flow and diffusion decoders lower their temperature; 1 = as trained. A
    # sampling setting, chosen on validation (avatar-forcing evaluate --mouth-temperature-grid).
    mouth_temperature: float = 1.0
    # noise level at which each finished block is written into the KV cache (Diffusion
    # Forcing's stabilisation; the network is trained on pasts at every noise level). At 0 the
    # cache holds the model's own output exactly, and its small errors compound over seconds:
    # af_forcing_v2's head slid 0.1 sideways within 4 s and stayed there. A sampling setting,
    # chosen on validation (avatar-forcing evaluate --context-noise-grid); 0 = as before.
    context_noise: float = 0.0

    def __post_init__(self):
        if not 1 <= self.block_frames <= 10:
            raise ValueError(f"block_frames must be in 1..10, got {self.block_frames}")
        if self.cond_encoder not in ("conv", "attention"):
            raise ValueError(f"cond_encoder must be 'conv' or 'attention', got {self.cond_encoder!r}")
        if not 0 <= self.lookahead_frames <= 10:
            raise ValueError(f"lookahead_frames must be in 0..10, got {self.lookahead_frames}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError("n_embd / n_head must be an even integer (rotary pairs)")
        if self.window_frames % self.block_frames or self.max_cache_frames % self.block_frames:
            raise ValueError("window_frames and max_cache_frames must be multiples of block_frames")
        if not 0.0 <= self.avatar_drop < 1.0:
            raise ValueError(f"avatar_drop must be in [0, 1), got {self.avatar_drop}")
        if self.audio_guidance_scale != 1.0 and not self.two_way:
            raise ValueError("audio_guidance_scale needs a model trained with avatar_drop > 0")
        check_mouth_temperature(self.mouth_temperature)
        check_context_noise(self.context_noise)
        if self.nod_guidance_scale is not None:
            check_guidance(self.nod_guidance_scale, "nod_guidance_scale")

    @property
    def two_way(self) -> bool:
        """Whether the network has a learned null for the avatar's audio (two-way guidance)."""
        return self.avatar_drop > 0.0

    @property
    def guidance_rows(self) -> int:
        """Rows a guided block runs: with the user, without the user (and without the audio too)."""
        return 3 if self.two_way else 2

    def noise_scale(self, mouth_temperature: float | None = None):
        """(motion_dim,) float32: what the starting noise of a block is multiplied by, channel by
        channel: ``mouth_temperature`` (None: the config's) on ARTICULATION, 1 elsewhere."""
        import numpy as np

        from ...core.motion import get_motion_space

        tau = check_mouth_temperature(self.mouth_temperature if mouth_temperature is None else mouth_temperature)
        space = get_motion_space(self.motion_space)
        scale = np.ones(self.motion_dim, np.float32)
        scale[space.indices([n for n in ARTICULATION if n in space.names])] = tau
        return scale

    def nod_mask(self):
        """(motion_dim,) float32: 1 on the nod axis, head pitch (what nod_guidance_scale guides)."""
        import numpy as np

        from ...core.motion import get_motion_space

        space = get_motion_space(self.motion_space)
        return np.array([c.name == "head_pitch" for c in space.channels], np.float32)

    @property
    def cond_state_dim(self) -> int:
        """Width of the condition encoder's streaming state (per frame of its K-1 frame window):
        the fused streams (conv), or the user's audio and the user stream (attention)."""
        return self.n_embd if self.cond_encoder == "conv" else 2 * self.n_embd

    @property
    def context_blocks(self) -> int:
        return self.max_cache_frames // self.block_frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ForcingConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def check_context_noise(value) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"context_noise must be in [0, 1), got {value}")
    return value


def check_guidance(value, name: str = "guidance") -> float:
    value = float(value)
    if not 0.0 <= value <= 50.0:  # NaN fails too
        raise ValueError(f"{name} must be in [0, 50], got {value}")
    return value


def check_mouth_temperature(value) -> float:
    value = float(value)
    if not 0.0 <= value <= 2.0:
        raise ValueError(f"mouth_temperature must be in [0, 2], got {value}")
    return value
