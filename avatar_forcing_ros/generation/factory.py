"""Which motion model fills the generator's slot: from a parameter ('default', 'procedural', a
checkpoint directory or an .onnx file) to a loaded ``MotionModel``."""
from __future__ import annotations

from pathlib import Path

from ..core.motion_model import MotionModel
from ..core.paths import find_share

SHIPPED_MODEL = "af_forcing_v4"


def shipped_model_dir() -> Path | None:
    """Where the checkpoint shipped in the repo's ``models/`` lives: beside the package in a
    source tree or pip install, or in ``share/avatar_forcing_ros/models`` of a ROS install."""
    config = find_share("models", SHIPPED_MODEL, "config.json")
    return config.parent if config else None


def load_motion_model(spec: str = "default", *, fps: float = 25.0, block_frames: int = 2,
                      seed: int = 0, device: str = "cpu", providers=None,
                      guidance_scale: float = 1.0, threads: int = 2,
                      audio_guidance_scale: float | None = None,
                      mouth_temperature: float | None = None,
                      nod_guidance_scale: float | None = None) -> tuple[MotionModel, str]:
    """Fill the slot from a parameter: 'default', 'procedural', a checkpoint dir, an .onnx, or
    'avatarforcing:<dir>' (the official network; its own 10-frame blocks, not ``block_frames``).

    Returns (model, note); the note says why a fallback happened (empty if none). A model the
    user named explicitly that cannot be loaded is an error, never a silent fallback.
    """
    from .procedural import ProceduralMotionModel

    if spec == "procedural":
        return ProceduralMotionModel(fps=fps, block_frames=block_frames, seed=seed), ""
    if spec.startswith("avatarforcing:"):  # the paper's released network, the user's weights
        from .official.backend import load_official_motion_model

        model = load_official_motion_model(spec, device=device, seed=seed, threads=threads)
        if abs(model.fps - fps) > 1e-6:
            raise ValueError(f"the official network runs at {model.fps} fps, the node at {fps} fps")
        return model, ""
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
    from .forcing.learned_model import LearnedMotionModel

    try:  # the backend's libraries load here: onnxruntime for an .onnx, torch for a checkpoint
        model = LearnedMotionModel(path, device=device, providers=providers, seed=seed,
                                   guidance_scale=guidance_scale, threads=threads,
                                   audio_guidance_scale=audio_guidance_scale,
                                   mouth_temperature=mouth_temperature,
                                   nod_guidance_scale=nod_guidance_scale)
    except ImportError as exc:  # torch/onnxruntime missing in a minimal install
        if spec != "default":
            raise
        return (ProceduralMotionModel(fps=fps, block_frames=block_frames, seed=seed),
                f"the learned model needs {exc.name}: using the procedural model")
    if abs(model.fps - fps) > 1e-6:
        raise ValueError(f"{path} was trained at {model.fps} fps, the node runs at {fps} fps")
    return model, note
