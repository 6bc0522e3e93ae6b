"""The onnxruntime runner of an exported block step (onnx_export.py makes the graph).

Imports numpy and onnxruntime only: the shipped model's ONNX path runs where torch is not
installed (a ROS workspace from rosdep has no torch).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .config import FORMAT, CheckpointError, ForcingConfig

log = logging.getLogger("avatar_forcing.onnx")

INPUTS = ["avatar_audio", "user_audio", "user_motion", "user_present", "noise", "guidance",
          "cache_k", "cache_v", "cache_valid", "conv_state"]
OUTPUTS = ["motion", "cache_k_out", "cache_v_out", "cache_valid_out", "conv_state_out"]


def graph_inputs(cfg: ForcingConfig) -> list[str]:
    """The step graph's inputs: a model with a context noise level also takes that noise."""
    return INPUTS + (["context_noise"] if cfg.context_noise else [])


def empty_state(cfg: ForcingConfig) -> dict[str, np.ndarray]:
    hs = cfg.n_embd // cfg.n_head
    rows = cfg.guidance_rows
    shape = (cfg.n_layer, rows, cfg.n_head, cfg.max_cache_frames, hs)
    return {"cache_k": np.zeros(shape, np.float32), "cache_v": np.zeros(shape, np.float32),
            "cache_valid": np.zeros(cfg.max_cache_frames, bool),
            "conv_state": np.zeros((rows, cfg.cond_kernel - 1, cfg.cond_state_dim), np.float32)}


def guidance_names(cfg: ForcingConfig, nod: bool = True) -> list[str]:
    """The scales of the graph's guidance input, in order: the user's, the avatar's audio's
    (two-way models), the nod axis's (``nod``: graphs exported since nod guidance; their
    metadata lists the names, older graphs have none and no nod scale)."""
    return ["user"] + (["audio"] if cfg.two_way else []) + (["nod"] if nod else [])


def guidance_input(names: list[str], user: float, audio: float = 1.0, nod: float | None = None) -> np.ndarray:
    """The graph's guidance input for these scales (nod None: the user scale)."""
    values = {"user": user, "audio": audio, "nod": user if nod is None else nod}
    return np.array([values[n] for n in names], np.float32)


class OnnxStreamingRunner:
    """Runs an exported block step with onnxruntime, keeping the caches between calls."""

    def __init__(self, path, providers=None, threads: int = 2):
        import onnxruntime as ort
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: missing (expected an ONNX export of {FORMAT})")
        available = ort.get_available_providers()
        wanted = list(providers or ["CPUExecutionProvider"])
        usable = [p for p in wanted if p in available]
        if usable != wanted:
            log.warning("ONNX providers %s not available here (have %s); using %s",
                        [p for p in wanted if p not in available], available, usable or ["CPUExecutionProvider"])
        if "CPUExecutionProvider" not in usable:
            usable.append("CPUExecutionProvider")  # last-resort fallback keeps the model running
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # idle worker threads must not spin: the robot's CPU is shared with perception and ROS
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=usable)
        except Exception as e:
            raise CheckpointError(f"{self.path}: onnxruntime cannot load it ({e})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get("af_forcing_config")
        if raw is None:
            raise CheckpointError(f"{self.path}: no af_forcing_config metadata (not an export of {FORMAT})")
        meta = json.loads(raw)
        self.cfg = ForcingConfig.from_dict(meta["config"])
        self.guidance_names = list(meta.get("guidance", guidance_names(self.cfg, nod=False)))
        self.providers = self.session.get_providers()
        self.reset()

    def reset(self):
        self.state = empty_state(self.cfg)

    def step(self, avatar_audio, user_audio, user_motion, user_present, noise, guidance: float,
             audio_guidance: float = 1.0, context_noise=None, nod_guidance: float | None = None) -> np.ndarray:
        """Raw per-block arrays (B, .) -> raw motion (B, D). ``context_noise`` (B, D): what a
        graph with a context noise level mixes into the block it caches. ``nod_guidance``
        (None: ``guidance``) needs a graph with a nod scale (ValueError on an older one)."""
        if nod_guidance is not None and nod_guidance != guidance and "nod" not in self.guidance_names:
            raise ValueError(f"{self.path}: exported without a nod guidance input; re-export it "
                             "(avatar-forcing export) to use nod_guidance_scale")
        feeds = {"avatar_audio": avatar_audio[None].astype(np.float32),
                 "user_audio": user_audio[None].astype(np.float32),
                 "user_motion": user_motion[None].astype(np.float32),
                 "user_present": user_present[None].astype(np.float32),
                 "noise": noise[None].astype(np.float32),
                 "guidance": guidance_input(self.guidance_names, guidance, audio_guidance, nod_guidance),
                 **self.state}
        if self.cfg.context_noise:
            if context_noise is None:
                raise ValueError(f"{self.path}: the graph caches blocks at noise level "
                                 f"{self.cfg.context_noise} and needs their context_noise")
            feeds["context_noise"] = context_noise[None].astype(np.float32)
        motion, k, v, valid, conv = self.session.run(OUTPUTS, feeds)
        self.state = {"cache_k": k, "cache_v": v, "cache_valid": valid, "conv_state": conv}
        return motion[0]
