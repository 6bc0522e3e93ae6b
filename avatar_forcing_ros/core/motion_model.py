"""The motion-model slot of the generator: what a model is given per block and must return.

The streaming runtime asks the model for one block of B frames at a time, as soon as the
conditions of those frames have arrived. Any model (procedural baseline, learned diffusion
forcing, ONNX) implements ``MotionModel``; the runtime knows nothing else about it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .motion import AF_MOTION_V1, MotionSpace


@dataclass
class BlockConditions:
    """Conditions of frames [start_frame, start_frame + B), all at the video frame rate."""
    start_frame: int
    avatar_audio: np.ndarray  # (B, F) audio features of the avatar's own speech (LogMelFeatures)
    user_audio: np.ndarray    # (B, F) audio features of the user's microphone
    user_motion: np.ndarray   # (B, D) the user's face in the motion space (neutral if absent)
    user_present: np.ndarray  # (B,) tracker confidence in [0, 1]; 0 = no face seen
    # the raw 16 kHz audio of the block's span, for models that read waveforms themselves
    # (the official network's wav2vec2); None where not given
    avatar_wave: np.ndarray | None = None
    user_wave: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.avatar_audio.shape[0])


class MotionModel(ABC):
    """Produces the avatar's motion block by block, causally (only past and current inputs)."""

    name: str = "model"
    space: MotionSpace = AF_MOTION_V1
    fps: float = 25.0
    block_frames: int = 2
    # L: how many frames of conditions the model reads ahead of the motion it makes. The block
    # of conditions [s, s + B) yields the motion of frames [s - L, s + B - L); the runtime
    # presents each frame at its own time, so the delay must cover L more frames.
    lookahead_frames: int = 0

    @abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """Forget all history (new conversation); ``seed`` (default: the model's own) makes
        sampling reproducible."""

    @abstractmethod
    def next_block(self, cond: BlockConditions) -> np.ndarray:
        """Motion of the next ``cond.frames`` frames, shape (B, space.dim), within range."""
