"""The official network's parity fixture (test/fixtures/official, made by
scripts/make_official_fixtures.py from the authors' released code) and small weights
directories built from it."""
from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "official"


@lru_cache(maxsize=1)
def fixture() -> dict:
    """{"config": dict, "weights": {name: float32 array}, "in/..", "out/.." arrays}."""
    d = np.load(FIXTURE_DIR / "parity.npz", allow_pickle=False)
    out = {"config": json.loads(bytes(d["config"]).decode()), "weights": {}}
    for key in d.files:
        if key.startswith("w/") and key.endswith("/q"):
            name = key[2:-2]
            offset, scale = d[f"w/{name}/s"]
            out["weights"][name] = np.float32(offset) + d[key].astype(np.float32) * np.float32(scale)
        elif key.startswith(("in/", "out/")):
            out[key] = d[key]
    return out


def small_config():
    from avatar_forcing_ros.generation.official.config import OfficialConfig
    return OfficialConfig.from_dict(fixture()["config"])


def write_weights_dir(path: Path, *, as_pth: bool = False, extra: dict | None = None) -> Path:
    """A weights directory of the fixture's small network: safetensors already converted, or
    (as_pth) the released layout: flow_transformer.pth + motion_autoencoder.pth saved here by
    torch.save of plain tensors; always with the tiny wav2vec2 folder and the config."""
    import torch
    from safetensors.torch import save_file

    from avatar_forcing_ros.generation.official import weights as W

    path.mkdir(parents=True, exist_ok=True)
    W.write_config(path, small_config())
    shutil.copytree(FIXTURE_DIR / "wav2vec2", path / W.WAV2VEC_DIR, dirs_exist_ok=True)
    tensors = {k: torch.from_numpy(v.copy()) for k, v in fixture()["weights"].items()}
    tensors.update(extra or {})
    flow = {k: v for k, v in tensors.items() if not k.startswith(W.AE_PREFIX)}
    ae = {k: v for k, v in tensors.items() if k.startswith(W.AE_PREFIX)}
    if as_pth:
        torch.save(flow, path / W.PTH["flow"])
        torch.save(ae, path / W.PTH["autoencoder"])
    else:
        save_file(flow, str(path / W.SAFETENSORS["flow"]))
        save_file(ae, str(path / W.SAFETENSORS["autoencoder"]))
    return path


def uint8_images_to_tensor(u8):
    import torch
    return torch.from_numpy(u8.astype(np.float32) / 127.5 - 1.0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small models: one thread is fastest on the shared 2-core box; restored afterwards.
    Imported by the official tests (autouse there)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
