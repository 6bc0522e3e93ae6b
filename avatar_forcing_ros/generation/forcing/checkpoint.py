"""Checkpoints as safetensors + JSON (never pickle).

A checkpoint directory holds:
- ``model.safetensors``: the network weights and its normalisation statistics;
- ``config.json``: {"format", "config": ForcingConfig, "step", plus training metadata};
- for resuming only: ``optimizer.safetensors`` (AdamW moments) + ``optimizer.json`` (groups).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import FORMAT, CheckpointError, ForcingConfig  # noqa: F401  (CheckpointError: defined beside the config, torch-free)
from .network import AvatarForcingNet

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
OPTIM_FILE = "optimizer.safetensors"
OPTIM_JSON = "optimizer.json"


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _save_tensors(path: Path, tensors: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.chmod(tmp, 0o644)  # a model file is shared (installed, committed), like the JSON beside it
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind


def save_checkpoint(out_dir, net: AvatarForcingNet, step: int = 0, optimizer=None, metadata=None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _save_tensors(out / MODEL_FILE, net.state_dict())
    _write_json(out / CONFIG_FILE, {"format": FORMAT, "config": net.cfg.to_dict(), "step": int(step),
                                    **(metadata or {})})
    if optimizer is not None:
        sd = optimizer.state_dict()
        flat = {f"{pid}.{name}": (t if torch.is_tensor(t) else torch.tensor(t))
                for pid, st in sd["state"].items() for name, t in st.items()}
        _save_tensors(out / OPTIM_FILE, flat)
        _write_json(out / OPTIM_JSON, {"param_groups": sd["param_groups"], "step": int(step)})
    return out


def read_config(ckpt_dir) -> tuple[ForcingConfig, dict]:
    path = Path(ckpt_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (expected the {FORMAT} config JSON of a checkpoint)")
    try:
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        cfg = ForcingConfig.from_dict(meta["config"])
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a valid {FORMAT} config ({e})") from None
    return cfg, meta


def load_checkpoint(ckpt_dir, device="cpu", motion_space: str = "af-motion-v1", motion_dim: int = 28,
                    audio_dim: int = 41) -> tuple[AvatarForcingNet, dict]:
    """Network (eval mode) and metadata; CheckpointError if it does not fit the runtime."""
    cfg, meta = read_config(ckpt_dir)
    cpath = Path(ckpt_dir) / CONFIG_FILE
    for name, want in (("motion_space", motion_space), ("motion_dim", motion_dim), ("audio_dim", audio_dim)):
        got = getattr(cfg, name)
        if got != want:
            raise CheckpointError(f"{cpath}: {name} is {got!r}, expected {want!r}")
    mpath = Path(ckpt_dir) / MODEL_FILE
    if not mpath.is_file():
        raise CheckpointError(f"{mpath}: missing (expected the safetensors weights of the checkpoint)")
    try:
        tensors = load_file(str(mpath))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled files
        raise CheckpointError(f"{mpath}: unreadable safetensors file ({e})") from None
    net = AvatarForcingNet(cfg)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{mpath}: tensors do not match the config in {CONFIG_FILE} "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for k, v in tensors.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{mpath}: tensor {k} has shape {tuple(v.shape)}, "
                                  f"expected {tuple(expected[k].shape)} from {CONFIG_FILE}")
    net.load_state_dict(tensors)
    return net.to(device).eval(), meta


def load_optimizer_state(ckpt_dir, optimizer) -> int:
    """Restore AdamW moments saved by save_checkpoint; returns the step (0 if none saved)."""
    d = Path(ckpt_dir)
    if not (d / OPTIM_FILE).is_file():
        return 0
    try:
        flat = load_file(str(d / OPTIM_FILE))
        info = json.loads((d / OPTIM_JSON).read_text())
    except Exception as e:
        raise CheckpointError(f"{d / OPTIM_FILE}: unreadable optimizer state ({e})") from None
    state: dict = {}
    for key, t in flat.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    return int(info["step"])
