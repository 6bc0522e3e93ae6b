"""ONNX export of the streaming block step (its onnxruntime runner: onnx_runner.py).

    avatar-forcing export --checkpoint models/af_forcing_v4 --out models/af_forcing_v4/model.onnx

One graph call = one block: normalisation, the condition encoder's causal state, the Euler
steps with classifier-free guidance (conditional and user-dropped rows as a batch of 2; a
two-way model adds a row without user and audio, and its guidance input is [user, audio]), the
zero-noise pass that writes the block into the rolling KV cache, and de-normalisation. The
caches are inputs and outputs with static shapes (L, rows, H, C, hs) plus a validity mask (C,),
so the graph runs unchanged on CPU, CUDA and TensorRT execution providers. The config JSON is
stored in the model's metadata, so the .onnx file alone is a complete model.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import FORMAT, ForcingConfig
from .network import AvatarForcingNet
from .onnx_runner import (INPUTS, OUTPUTS, OnnxStreamingRunner, empty_state, graph_inputs,  # noqa: F401
                          guidance_input, guidance_names)
from .sampler import Guidance, denoise_block

log = logging.getLogger("avatar_forcing.onnx")


def _graph_guidance(cfg: ForcingConfig, guidance) -> Guidance:
    """Every row the model has, with the scales read from the graph's guidance input
    (guidance_names: user, audio for a two-way model, nod last)."""
    return Guidance(guidance[0], guidance[1] if cfg.two_way else 1.0, cfg.guidance_rows,
                    guidance[len(guidance_names(cfg)) - 1], torch.from_numpy(cfg.nod_mask()))


class StreamingStep(torch.nn.Module):
    """Raw (un-normalised) conditions of one block + state -> raw motion + new state."""

    def __init__(self, net: AvatarForcingNet, steps: int | None = None):
        super().__init__()
        self.net = net
        self.steps = steps or net.cfg.sample_steps

    def forward(self, avatar_audio, user_audio, user_motion, user_present, noise, guidance,
                cache_k, cache_v, cache_valid, conv_state, context_noise=None):
        net = self.net
        aa, ua, um = net.normalize_conditions(avatar_audio, user_audio, user_motion)  # (1, B, .)
        guide = _graph_guidance(net.cfg, guidance)
        cond, conv_state = guide.encode(net, aa, ua, um, user_present, conv_state)
        x, cache_k, cache_v, cache_valid = denoise_block(net, cond, noise, guide, cache_k, cache_v,
                                                         cache_valid, self.steps, context_noise,
                                                         net.cfg.context_noise)
        return net.denormalize_motion(x), cache_k, cache_v, cache_valid, conv_state


class WindowStep(torch.nn.Module):
    """The non-causal baseline as one graph: sample a whole window of W frames from noise with
    bidirectional attention (used by the benchmark to compare like with like on onnxruntime)."""

    def __init__(self, net: AvatarForcingNet, steps: int | None = None):
        super().__init__()
        self.net = net
        self.steps = steps or net.cfg.sample_steps

    def forward(self, avatar_audio, user_audio, user_motion, user_present, noise, guidance):
        net = self.net
        aa, ua, um = net.normalize_conditions(avatar_audio, user_audio, user_motion)  # (1, W, .)
        guide = _graph_guidance(net.cfg, guidance)
        cond, _ = guide.encode(net, aa, ua, um, user_present)
        W = noise.shape[1]
        full = torch.ones(W, W, dtype=torch.bool)
        x = noise
        ts = [1.0 - i / self.steps for i in range(self.steps + 1)]
        for i in range(self.steps):
            v, _ = net(guide.expand(x), torch.full((guide.rows, W), ts[i]), cond, full)
            x = x + (ts[i + 1] - ts[i]) * guide.combine(v)
        return net.denormalize_motion(x)


def export_window_onnx(net: AvatarForcingNet, out_path, steps: int | None = None, opset: int = 17) -> Path:
    cfg = net.cfg
    W = cfg.window_frames
    ex = example_inputs(cfg)
    args = (torch.randn(1, W, cfg.audio_dim), torch.randn(1, W, cfg.audio_dim), torch.zeros(1, W, cfg.motion_dim),
            torch.ones(1, W), torch.randn(1, W, cfg.motion_dim), torch.from_numpy(ex["guidance"]))
    with torch.no_grad():
        torch.onnx.export(WindowStep(net.eval(), steps).eval(), args, str(out_path), opset_version=opset,
                          input_names=INPUTS[:6], output_names=["motion"], dynamo=False)
    return Path(out_path)


def example_inputs(cfg: ForcingConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    B = cfg.block_frames
    return {"avatar_audio": rng.normal(size=(1, B, cfg.audio_dim)).astype(np.float32),
            "user_audio": rng.normal(size=(1, B, cfg.audio_dim)).astype(np.float32),
            "user_motion": (0.1 * rng.normal(size=(1, B, cfg.motion_dim))).astype(np.float32),
            "user_present": np.ones((1, B), np.float32),
            "noise": rng.normal(size=(1, B, cfg.motion_dim)).astype(np.float32),
            "guidance": guidance_input(guidance_names(cfg), cfg.guidance_scale, cfg.audio_guidance_scale,
                                       cfg.nod_guidance_scale), **empty_state(cfg),
            # the context level is baked into the graph; the noise it mixes in is an input
            **({"context_noise": rng.normal(size=(1, B, cfg.motion_dim)).astype(np.float32)}
               if cfg.context_noise else {})}


def export_onnx(net: AvatarForcingNet, out_path, steps: int | None = None, opset: int = 17) -> Path:
    import onnx
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    step = StreamingStep(net.eval(), steps).eval()
    args = tuple(torch.from_numpy(v) for v in example_inputs(net.cfg).values())
    with torch.no_grad():
        torch.onnx.export(step, args, str(out_path), input_names=graph_inputs(net.cfg), output_names=OUTPUTS,
                          opset_version=opset, dynamo=False)
    model = onnx.load(str(out_path))
    meta = {"format": FORMAT, "config": net.cfg.to_dict(), "sample_steps": step.steps,
            "guidance": guidance_names(net.cfg)}
    entry = model.metadata_props.add()
    entry.key, entry.value = "af_forcing_config", json.dumps(meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return out_path


def main_export(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing export", description="Export the streaming block step to ONNX")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + config.json)")
    p.add_argument("--out", help="output .onnx (default: <checkpoint>/model.onnx)")
    p.add_argument("--steps", type=int, help="Euler steps baked into the graph (default: config)")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    net, _ = load_checkpoint(args.checkpoint)
    out = export_onnx(net, args.out or Path(args.checkpoint) / "model.onnx", args.steps, args.opset)
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return 0
