"""Tiny random Avatar Forcing networks and checkpoints for the model tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avatar_forcing_ros.core.motion_model import BlockConditions
from avatar_forcing_ros.generation.forcing.checkpoint import save_checkpoint
from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet
from avatar_forcing_ros.generation.forcing.onnx_export import export_onnx


def tiny_net(block=2, cache=6, seed=0, std=0.2, motion_std: float | None = None, **config) -> AvatarForcingNet:
    """2 layers x 32, every weight drawn N(0, std): zero-initialised gates would make every
    output trivially equal. ``motion_std`` sets the denormalisation scale (outputs in range)."""
    torch.manual_seed(seed)
    cfg = ForcingConfig(n_layer=2, n_embd=32, n_head=2, block_frames=block, window_frames=8,
                        max_cache_frames=cache, **config)
    net = AvatarForcingNet(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, std)
        if motion_std is not None:
            net.motion_std.fill_(motion_std)
    return net


def write_checkpoint(directory, net: AvatarForcingNet, onnx: bool = True) -> Path:
    """``net`` saved as a checkpoint directory, with its exported ONNX step beside it."""
    directory = Path(directory)
    save_checkpoint(directory, net, step=1)
    if onnx:
        export_onnx(net, directory / "model.onnx")
    return directory


def stream_random_blocks(model, blocks: int = 8, start: int = 0) -> np.ndarray:
    """``model`` (a MotionModel of blocks of 2) over random conditions, block i drawn from
    seed i, so that two models (or two starts) see the same inputs."""
    out = []
    for i in range(start, start + blocks):
        rng = np.random.default_rng(i)
        out.append(model.next_block(BlockConditions(2 * i, rng.normal(size=(2, 41)).astype(np.float32),
                                                    rng.normal(size=(2, 41)).astype(np.float32),
                                                    (0.1 * rng.normal(size=(2, 28))).astype(np.float32),
                                                    np.ones(2, np.float32))))
    return np.concatenate(out)


def random_inputs(T: int, seed: int = 1, context: bool = False) -> tuple:
    """Normalised conditions of one sequence (avatar audio, user audio, user motion, user
    presence) and its block noise, (1, T, .) each; ``context`` adds the context noise."""
    g = torch.Generator().manual_seed(seed)
    out = (torch.randn(1, T, 41, generator=g), torch.randn(1, T, 41, generator=g),
           torch.randn(1, T, 28, generator=g), torch.rand(1, T, generator=g), torch.randn(1, T, 28, generator=g))
    return out + (torch.randn(1, T, 28, generator=g),) if context else out

