"""The user's official weights: ``.pth`` -> safetensors once, then loaded into this package's
own implementation.

A weights directory is laid out as the released code's ``pretrained_dir``::

    flow_transformer.pth          (the user's download; read once, weights_only)
    motion_autoencoder.pth
    wav2vec2-base-960h/           (config.json + model.safetensors, a local copy)
    flow_transformer.safetensors  (written by `avatar-forcing convert-official DIR`)
    motion_autoencoder.safetensors
    avatarforcing.json            (optional: sizes other than the released ones, e.g. tests)

Parameter names are the released ones (``flow_transformer.*``, ``audio_encoder.audio_projection.*``,
``motion_autoencoder.*``). Every parameter must be there with its shape; the release's constant
buffers (attention masks, rotary tables, blur kernels) and wav2vec2's own weights (read from its
folder) are not taken from the checkpoints.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import OfficialConfig, OfficialWeightsError

PTH = {"flow": "flow_transformer.pth", "autoencoder": "motion_autoencoder.pth"}
SAFETENSORS = {"flow": "flow_transformer.safetensors", "autoencoder": "motion_autoencoder.safetensors"}
CONFIG_FILE = "avatarforcing.json"
WAV2VEC_DIR = "wav2vec2-base-960h"
FLOW_PREFIXES = ("flow_transformer.", "audio_encoder.audio_projection.")
AE_PREFIX = "motion_autoencoder."
# constants the released modules register as buffers: recomputed here, never read
_RELEASE_BUFFERS = ("alignment_mask", "block_bidir_causal_lookahead_mask", "freqs_cis", "kernel")
_IGNORED_PREFIXES = ("audio_encoder.wav2vec2.",)


def read_config(weights_dir) -> OfficialConfig:
    path = Path(weights_dir) / CONFIG_FILE
    if not path.is_file():
        return OfficialConfig()
    try:
        return OfficialConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise OfficialWeightsError(f"{path}: not a valid avatarforcing config ({exc})") from None


def write_config(weights_dir, cfg: OfficialConfig) -> None:
    (Path(weights_dir) / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2))


def expected_shapes(cfg: OfficialConfig) -> dict[str, dict[str, tuple]]:
    """{"flow": {name: shape}, "autoencoder": {...}} of this implementation at cfg's size,
    without allocating weights (meta device)."""
    from .flow import AudioProjection, FlowTransformer
    from .motion_autoencoder import MotionAutoencoder
    with torch.device("meta"):
        flow, proj, ae = FlowTransformer(cfg), AudioProjection(cfg.audio_features, cfg.latent_dim), \
            MotionAutoencoder(cfg)
    shapes = {"flow": {}, "autoencoder": {}}
    for n, p in flow.state_dict().items():
        shapes["flow"]["flow_transformer." + n] = tuple(p.shape)
    for n, p in proj.state_dict().items():
        shapes["flow"]["audio_encoder." + n] = tuple(p.shape)
    for n, p in ae.state_dict().items():
        shapes["autoencoder"][AE_PREFIX + n] = tuple(p.shape)
    return shapes


def read_pth(path) -> dict[str, torch.Tensor]:
    """A released ``.pth``: torch.load(weights_only=True) only; a flat {name: tensor} mapping
    (a DDP ``module.`` prefix or a {'state_dict': ...} wrapper is unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise OfficialWeightsError(f"{path}: missing (expected the official checkpoint file)")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OfficialWeightsError(
            f"{path}: not a weights-only PyTorch checkpoint, refused (torch.load with "
            f"weights_only=True: {first})") from None
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for key in ("state_dict", "model", "generator", "G"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise OfficialWeightsError(f"{path}: expected a mapping of parameter names to tensors")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def split_and_check(tensors: dict, cfg: OfficialConfig, source: str = "checkpoint") -> dict:
    """Sort released names into the two files and check them against this implementation:
    a missing, unexpected or mis-shaped parameter is an error naming it."""
    shapes = expected_shapes(cfg)
    out = {"flow": {}, "autoencoder": {}}
    unexpected = []
    for name, t in tensors.items():
        part = next((p for p, s in shapes.items() if name in s), None)
        if part is not None:
            if tuple(t.shape) != shapes[part][name]:
                raise OfficialWeightsError(f"{source}: {name} has shape {tuple(t.shape)}, "
                                           f"expected {shapes[part][name]}")
            out[part][name] = t.float().contiguous()
        elif name.startswith(_IGNORED_PREFIXES) or name.split(".")[-1] in _RELEASE_BUFFERS:
            continue
        else:
            unexpected.append(name)
    if unexpected:
        raise OfficialWeightsError(f"{source}: {len(unexpected)} unexpected parameters, e.g. "
                                   f"{unexpected[:5]}")
    for part, s in shapes.items():
        missing = sorted(set(s) - set(out[part]))
        if missing:
            raise OfficialWeightsError(f"{source}: {len(missing)} parameters of the {part} are "
                                       f"missing, e.g. {missing[:5]}")
    return out


def convert(weights_dir, overwrite: bool = False) -> list[Path]:
    """flow_transformer.pth + motion_autoencoder.pth -> the two safetensors files."""
    d = Path(weights_dir)
    cfg = read_config(d)
    targets = [d / SAFETENSORS[p] for p in ("flow", "autoencoder")]
    if all(t.is_file() for t in targets) and not overwrite:
        return []
    merged = {}
    for part in ("flow", "autoencoder"):
        merged.update(read_pth(d / PTH[part]))
    parts = split_and_check(merged, cfg, source=f"{d}/{{{PTH['flow']}, {PTH['autoencoder']}}}")
    for part, target in zip(("flow", "autoencoder"), targets):
        tmp = target.with_suffix(".tmp")
        save_file(parts[part], str(tmp), metadata={"source": PTH[part], "format": "avatarforcing-official"})
        os.replace(tmp, target)
    return targets


def load_parts(weights_dir, cfg: OfficialConfig | None = None) -> dict:
    """The converted safetensors, checked: {"flow": {...}, "autoencoder": {...}}."""
    d = Path(weights_dir)
    cfg = cfg or read_config(d)
    tensors = {}
    for part in ("flow", "autoencoder"):
        path = d / SAFETENSORS[part]
        if not path.is_file():
            hint = (f"run `avatar-forcing convert-official {d}` once to convert {PTH[part]}"
                    if (d / PTH[part]).is_file() else
                    f"put the official {PTH[part]} there and run `avatar-forcing convert-official {d}`")
            raise OfficialWeightsError(f"{path}: missing; {hint}")
        try:
            tensors.update(load_file(str(path)))
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise OfficialWeightsError(f"{path}: unreadable safetensors file ({exc})") from None
    return split_and_check(tensors, cfg, source=str(d))
