#!/usr/bin/env python3
"""Make the parity fixtures of the official Avatar Forcing network (test/fixtures/official/).

Runs the AUTHORS' released code (a checkout of github TaekyungKi/AvatarForcing, kept outside
this repository: nothing of it is copied here) at a small size with random weights, and saves
numbers only: the weights (4 int8 levels x a per-tensor scale, so the file stays small), the
inputs, the noise it drew and its outputs. test/test_official_parity.py checks that this
package's own implementation reproduces them.

    python scripts/make_official_fixtures.py --official /path/to/AvatarForcing \
        [--out test/fixtures/official]

Needs torch, transformers, and timm (the released code imports it; `pip install --target DIR
--no-deps timm==1.0.9` and DIR on PYTHONPATH is enough). Two adaptations, both outside the
released files: a stand-in `torchvision` module (the released code imports it but the inference
path never calls it; a torchvision build matching a CPU torch may not exist), and the motion
auto-encoder's channel table scaled down in a temporary copy of the code (the table is a literal
in the constructors; at full size its weights would be hundreds of MB). The audio projection is
rebuilt for the tiny wav2vec2's 2 x 32 stacked features (the released code writes 12 x 768).
Full-size key names and shapes come from the released model definitions, unmodified, on the meta
device.
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import math
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

SMALL_CHANNELS = 16     # every entry of the motion auto-encoder's channel table
SMALL = dict(input_size=64, dim_h=64, num_heads=4, transformer_depth=2)
IMAGE_FRAMES = [0, 9, 49, 50, 84]   # decoded images kept (all 85 would be 4 MB)
FRAMES = 85             # 50-frame first block, 3 full blocks, one cut at the end (pads)


def _stub_torchvision() -> None:
    class _Meta(type):
        def __getattr__(cls, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return attr

    class _Any(types.ModuleType):
        __path__: list = []

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Meta(name, (), {"__init__": lambda self, *a, **k: None})

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path, target=None):
            if fullname == "torchvision" or fullname.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            m = _Any(spec.name)
            m.__version__ = "0.0"
            return m

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, _Finder())


def _copy_with_small_channels(official: Path, dst: Path) -> None:
    shutil.copytree(official / "models", dst / "models")
    for rel in ("models/avatarforcing/encoder.py", "models/avatarforcing/styledecoder.py"):
        p = dst / rel
        src = p.read_text()
        # the channel tables: "4: 512," ... "1024: 16" (with or without "* channel_multiplier")
        new = re.sub(r"(\n\s+(?:4|8|16|32|64|128|256|512|1024): )(\d+)( \* channel_multiplier)?",
                     lambda m: f"{m.group(1)}{SMALL_CHANNELS}", src)
        assert new != src, f"no channel table found in {rel}"
        p.write_text(new)


def _opt(wav2vec_dir: str, **over) -> SimpleNamespace:
    o = dict(fps=25, sampling_rate=16000, input_size=512, input_nc=3, dim_m=20, dim_a=512,
             dim_w=512, dim_h=1024, dim_e=8, dim_p=6, dim_g=2, style_dim=512,
             num_train_timestep=1000, nfe=10, sec=2, num_context=10, num_frames_per_block=10,
             only_last_features=False, audio_dropout_prob=0.1, ref_dropout_prob=0.1,
             a_cfg_scale=2.0, r_cfg_scale=1.0, fix_noise_seed=False, attention_window=2,
             num_heads=8, mlp_ratio=4.0, transformer_depth=8, block_causal=True,
             mixed_precision=False, wav2vec_model_path=wav2vec_dir, rank="cpu")
    o.update(over)
    return SimpleNamespace(**o)


def _scale_for(name: str, p: torch.Tensor) -> tuple[float, float]:
    """(offset, std) of the random values of one parameter."""
    equalised = name.startswith("motion_autoencoder.")  # weights scaled by 1/sqrt(fan_in) at run time
    if name.endswith("bias") or p.ndim == 1 and "ln" not in name and "norm" not in name.split(".")[-2:][0]:
        if ".modulation." in name:
            return 1.0, 0.1       # style modulation starts near 1 (bias_init=1 in the release)
        return 0.0, 0.1
    if p.ndim == 1:               # LayerNorm weights
        return 1.0, 0.1
    if equalised:
        return 0.0, 1.0
    fan_in = p.shape[1] if p.ndim == 2 else int(np.prod(p.shape[1:]))
    return 0.0, 1.0 / math.sqrt(fan_in)


def randomise(model: nn.Module, rng: np.random.Generator, skip=("wav2vec2",)) -> dict:
    """Set every parameter to offset + q * scale, q one of -3, -1, 1, 3 (std sqrt 5; four
    levels compress to ~2 bits); return the levels and (offset, scale) (what the fixture stores)."""
    stored = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(s in name for s in skip):
                continue
            offset, std = _scale_for(name, p)
            q = (2 * rng.integers(0, 4, size=tuple(p.shape)) - 3).astype(np.int8)
            scale = np.float32(std / math.sqrt(5.0))
            value = np.float32(offset) + q.astype(np.float32) * scale
            p.copy_(torch.from_numpy(value))
            stored[f"w/{name}/q"] = q
            stored[f"w/{name}/s"] = np.array([offset, scale], dtype=np.float32)
    return stored


def tiny_wav2vec(out_dir: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    torch.manual_seed(3)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, feat_extract_norm="group",
                         do_stable_layer_norm=False, vocab_size=32)
    Wav2Vec2Model(cfg).eval().save_pretrained(str(out_dir), safe_serialization=True)


def full_size_keys(official: Path, wav2vec_dir: str) -> dict:
    """Parameter (and persistent buffer) names and shapes of the released definitions, full size."""
    sys.path.insert(0, str(official))
    try:
        for m in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
            del sys.modules[m]
        from models.avatarforcing.flow_transformer import FlowTransformer
        from models.avatarforcing.generator import Generator
        opt = _opt(wav2vec_dir, rank="meta")
        with torch.device("meta"):
            parts = {"flow_transformer": FlowTransformer(opt),
                     "motion_autoencoder": Generator(size=512, style_dim=512, motion_dim=20),
                     "audio_encoder.audio_projection": nn.Sequential(
                         nn.Linear(12 * 768, 512), nn.LayerNorm(512), nn.SiLU())}
        out = {"parameters": {}, "buffers": {}}
        for prefix, mod in parts.items():
            params = dict(mod.named_parameters())
            for n, p in params.items():
                out["parameters"][f"{prefix}.{n}"] = list(p.shape)
            for n, b in mod.state_dict().items():   # persistent buffers: in a saved state dict
                if n not in params:
                    out["buffers"][f"{prefix}.{n}"] = list(b.shape)
        return out
    finally:
        sys.path.remove(str(official))
        for m in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
            del sys.modules[m]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, type=Path, help="checkout of the released code")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "test/fixtures/official")
    args = ap.parse_args(argv)
    _stub_torchvision()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    w2v = args.out / "wav2vec2"
    tiny_wav2vec(w2v)

    keys = full_size_keys(args.official.resolve(), str(w2v))
    (args.out / "full_size_keys.json").write_text(json.dumps(keys, indent=0, sort_keys=True))

    with tempfile.TemporaryDirectory() as tmp:
        _copy_with_small_channels(args.official.resolve(), Path(tmp))
        sys.path.insert(0, tmp)
        from models.avatarforcing.AvatarForcing import AvatarForcing
        opt = _opt(str(w2v), **SMALL)
        G = AvatarForcing(opt).eval()
        w2 = G.audio_encoder.wav2vec2.config
        # the released forward sets config.output_attentions, which transformers >= 4.48 only
        # allows with eager attention (same numbers)
        G.audio_encoder.wav2vec2.config._attn_implementation = "eager"
        n_feat = w2.num_hidden_layers * w2.hidden_size
        G.audio_encoder.audio_projection = nn.Sequential(
            nn.Linear(n_feat, opt.dim_w), nn.LayerNorm(opt.dim_w), nn.SiLU())
        rng = np.random.default_rng(11)
        store = randomise(G, rng)

        S = opt.input_size
        n = FRAMES * 640
        t = np.arange(n) / 16000.0
        avatar_wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
                      + 0.05 * rng.standard_normal(n)).astype(np.float32)
        user_wav = (0.2 * np.sin(2 * np.pi * 140 * t + 1.0) + 0.05 * rng.standard_normal(n)).astype(np.float32)
        yy, xx = np.mgrid[0:S, 0:S] / S
        ref = np.stack([128 + 100 * np.sin(6 * xx + c) * np.cos(5 * yy) for c in range(3)])
        user = np.stack([np.stack([128 + 90 * np.sin(6 * xx + 0.2 * f + c) * np.cos(4 * yy - 0.1 * f)
                                   for c in range(3)]) for f in range(FRAMES)])
        ref_u8, user_u8 = ref.round().astype(np.uint8), user.round().astype(np.uint8)

        def img(u8):
            return torch.from_numpy(u8.astype(np.float32) / 127.5 - 1.0)

        data = {"avatar_ref": img(ref_u8)[None], "avatar_a": torch.from_numpy(avatar_wav)[None],
                "user_a": torch.from_numpy(user_wav)[None],
                "user_frame": [img(user_u8[f])[None] for f in range(FRAMES)]}

        captured, noise = {}, []
        real_randn = torch.randn

        def recording_randn(*a, **k):
            x = real_randn(*a, **k)
            noise.append(x.clone())
            return x

        def capture(obj, name, key):
            fn = getattr(obj, name)

            def wrapped(*a, **k):
                out = fn(*a, **k)
                captured.setdefault(key, []).append(out.clone() if torch.is_tensor(out) else out)
                return out
            setattr(obj, name, wrapped)

        capture(G.audio_encoder, "inference", "audio")
        capture(G, "encode_user_motion", "user_motion")
        capture(G, "sample", "sample")
        capture(G, "encode_image_into_latent", "identity")
        torch.manual_seed(5)
        torch.randn = recording_randn
        try:
            with torch.inference_mode():
                d_hat = G.inference(data=data, a_cfg_scale=2.0, u_cfg_scale=1.0, nfe=10,
                                    seed=None, use_kv_cache=True)["d_hat"]
        finally:
            torch.randn = real_randn
        s_r, r_lambda, feats = captured["identity"][0]
        r_s = G.motion_autoencoder.dec.direction(r_lambda)
        sys.path.remove(tmp)

    cfg = dict(image_size=S, width=opt.dim_h, heads=opt.num_heads, depth=opt.transformer_depth,
               audio_features=n_feat, channels={str(k): SMALL_CHANNELS for k in
                                                (4, 8, 16, 32, 64, 128, 256, 512, 1024)})
    arrays = dict(store)
    arrays.update({
        "config": np.frombuffer(json.dumps(cfg).encode(), dtype=np.uint8),
        "in/avatar_wav": avatar_wav, "in/user_wav": user_wav, "in/ref_u8": ref_u8,
        "in/user_u8": user_u8, "in/noise": torch.cat([x.reshape(-1, 512) for x in noise]).numpy(),
        "out/avatar_audio": captured["audio"][0].numpy(), "out/user_audio": captured["audio"][1].numpy(),
        "out/user_motion": captured["user_motion"][0].numpy(), "out/identity_code": s_r.numpy(),
        "out/identity_motion": r_s.numpy(), "out/latents": captured["sample"][0].numpy(),
        "out/image_frames": np.array(IMAGE_FRAMES), "out/images": d_hat[IMAGE_FRAMES].numpy(),
    })
    np.savez_compressed(args.out / "parity.npz", **arrays)
    size = (args.out / "parity.npz").stat().st_size
    print(f"wrote {args.out}/parity.npz ({size / 1e6:.2f} MB), latents |x|max "
          f"{captured['sample'][0].abs().max():.3f}, images |x|max {d_hat.abs().max():.3f}, "
          f"noise draws {[tuple(x.shape) for x in noise]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
