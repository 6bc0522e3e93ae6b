"""ONNX export of the official network's per-block work, for onnxruntime-gpu / TensorRT.

- ``flow_step.onnx``: one velocity evaluation of a later block (the 3 guidance conditionings
  batched, 2 context + 10 new frames) with the KV cache (per layer: keys, values, condition
  keys, condition values) as inputs; ``flow_first.onnx``: the same for the 50-frame first block
  (no cache). The sampler's loop, guidance and Euler steps stay in Python (a few tensor ops).
- ``decoder.onnx``: identity code + motion latents (batch dynamic) + the portrait's feature maps
  -> images.
The exports go through TorchScript tracing (opset 17): every operator used exports (rotary
positions, boolean attention masks, ``unique`` of the noise levels, grid_sample, transposed
convolution). The modulated convolutions are written with static weights for that reason.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .model import OfficialAvatarForcing

OPSET = 17


class _FlowStep(torch.nn.Module):
    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, x, identity, cond, levels, *past):
        n = len(past) // 4
        v, _ = self.flow(x, identity, cond, levels,
                         [tuple(past[4 * i:4 * i + 4]) for i in range(n)] if past else None)
        return v


class _Decoder(torch.nn.Module):
    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, code, motion, *feats):
        return self.autoencoder.dec(code + motion, list(feats))


def flow_inputs(model: OfficialAvatarForcing, first: bool) -> tuple:
    cfg = model.cfg
    L = cfg.clip_frames if first else cfg.context_frames + cfg.block_frames
    hd = cfg.width // cfg.heads
    past = []
    if not first:
        for _ in range(cfg.depth):
            past += [torch.randn(3, cfg.heads, cfg.cache_frames, hd), torch.randn(3, cfg.heads, cfg.cache_frames, hd),
                     torch.randn(3, cfg.heads, cfg.cross_window, hd), torch.randn(3, cfg.heads, cfg.cross_window, hd)]
    levels = torch.full((L,), 750.0)
    if not first:
        levels[:cfg.context_frames] = 0.0
    return (torch.randn(3, L, cfg.latent_dim), torch.randn(3, cfg.latent_dim),
            torch.randn(3, L, cfg.width), levels, *past)


def export(model: OfficialAvatarForcing, out_dir) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, first in (("flow_first", True), ("flow_step", False)):
        args = flow_inputs(model, first)
        names = ["x", "identity", "cond", "levels"] + [f"past{i}" for i in range(len(args) - 4)]
        paths[name] = out / f"{name}.onnx"
        torch.onnx.export(_FlowStep(model.flow).eval(), args, str(paths[name]), opset_version=OPSET,
                          input_names=names, output_names=["velocity"], dynamo=False)
    size = model.cfg.image_size
    with torch.inference_mode():
        code, _, feats = model.autoencoder.encode_identity(torch.zeros(1, 3, size, size, device=model.device))
    code, feats = code.clone(), [f.clone() for f in feats]
    motion = torch.zeros(2, model.cfg.latent_dim)
    names = ["code", "motion"] + [f"feat{i}" for i in range(len(feats))]
    paths["decoder"] = out / "decoder.onnx"
    torch.onnx.export(_Decoder(model.autoencoder).eval(), (code, motion, *feats), str(paths["decoder"]),
                      opset_version=OPSET, input_names=names, output_names=["rgb"],
                      dynamic_axes={"motion": {0: "frames"}, "rgb": {0: "frames"}}, dynamo=False)
    return paths
