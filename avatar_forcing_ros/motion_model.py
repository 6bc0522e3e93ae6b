"""The motion-model slot of the generator: what a model is given per block and must return.

The streaming runtime asks the model for one block of B frames at a time, as soon as the
conditions of those frames have arrived. Any model (procedural baseline, learned diffusion
forcing, ONNX) implements ``MotionModel``; the runtime knows nothing else about it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def frames(self) -> int:
        return int(self.avatar_audio.shape[0])


class MotionModel(ABC):
    """Produces the avatar's motion block by block, causally (only past and current inputs)."""

    name: str = "model"
    space: MotionSpace = AF_MOTION_V1
    fps: float = 25.0
    block_frames: int = 2

    @abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """Forget all history (new conversation); ``seed`` (default: the model's own) makes
        sampling reproducible."""

    @abstractmethod
    def next_block(self, cond: BlockConditions) -> np.ndarray:
        """Motion of the next ``cond.frames`` frames, shape (B, space.dim), within range."""


SHIPPED_MODEL = "af_forcing_v1"


def shipped_model_dir() -> Path | None:
    """Where the checkpoint shipped in the repo's ``models/`` lives: beside the package in a
    source tree or pip install, or in ``share/avatar_forcing_ros/models`` of a ROS install."""
    import os

    candidates = [Path(__file__).resolve().parent.parent / "models" / SHIPPED_MODEL]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "avatar_forcing_ros" / "models" / SHIPPED_MODEL)
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    return None


def load_motion_model(spec: str = "default", *, fps: float = 25.0, block_frames: int = 2,
                      seed: int = 0, device: str = "cpu", providers=None,
                      guidance_scale: float = 1.0, threads: int = 2) -> tuple[MotionModel, str]:
    """Fill the slot from a parameter: 'default', 'procedural', a checkpoint dir or an .onnx.

    Returns (model, note); the note says why a fallback happened (empty if none). A model the
    user named explicitly that cannot be loaded is an error, never a silent fallback.
    """
    from .procedural import ProceduralMotionModel

    if spec == "procedural":
        return ProceduralMotionModel(fps=fps, block_frames=block_frames, seed=seed), ""
    note = ""
    if spec == "default":
        path = shipped_model_dir()
        if path is None:
            return (ProceduralMotionModel(fps=fps, block_frames=block_frames, seed=seed),
                    f"the shipped model models/{SHIPPED_MODEL} was not found: using the "
                    "procedural model")
        if device == "cpu" and (path / "model.onnx").is_file():
            # On a CPU the exported step under onnxruntime is 3-4x faster than torch
            # (benchmarks/model_streaming.py) and gives the same motion.
            path = path / "model.onnx"
    else:
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"motion model {spec!r} does not exist (expected 'default', "
                                    "'procedural', a checkpoint directory or an .onnx file)")
    try:
        from .forcing.learned_model import LearnedMotionModel
    except ImportError as exc:  # torch/onnxruntime missing in a minimal install
        if spec != "default":
            raise
        return (ProceduralMotionModel(fps=fps, block_frames=block_frames, seed=seed),
                f"the learned model needs {exc.name}: using the procedural model")
    model = LearnedMotionModel(path, device=device, providers=providers, seed=seed,
                               guidance_scale=guidance_scale, threads=threads)
    if abs(model.fps - fps) > 1e-6:
        raise ValueError(f"{path} was trained at {model.fps} fps, the node runs at {fps} fps")
    return model, note
