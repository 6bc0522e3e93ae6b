"""`avatar-forcing convert-official DIR [--onnx]`: the user's official weights, converted once."""
from __future__ import annotations

import argparse
from pathlib import Path

from .config import OfficialWeightsError
from .weights import WAV2VEC_DIR, convert


def main_convert(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="avatar-forcing convert-official",
        description="Convert the official Avatar Forcing weights (flow_transformer.pth, "
                    "motion_autoencoder.pth; read with torch.load(weights_only=True)) in DIR to "
                    "safetensors beside them, checked against this package's implementation.")
    ap.add_argument("dir", type=Path)
    ap.add_argument("--overwrite", action="store_true", help="convert again even if converted")
    ap.add_argument("--onnx", action="store_true",
                    help="also export the block step and the decoder to DIR/onnx/ (needs wav2vec2 there)")
    args = ap.parse_args(argv)
    try:
        written = convert(args.dir, overwrite=args.overwrite)
    except OfficialWeightsError as exc:
        print(f"convert-official: {exc}", flush=True)
        return 1
    if not written:
        print(f"{args.dir}: already converted (--overwrite to convert again)")
    for p in written:
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    if not (args.dir / WAV2VEC_DIR / "config.json").is_file():
        print(f"note: {args.dir / WAV2VEC_DIR} is missing: the backend also needs a local copy "
              "of wav2vec2-base-960h there")
    if args.onnx:
        from .model import OfficialAvatarForcing
        from .onnx_export import export
        try:
            paths = export(OfficialAvatarForcing.load(args.dir), args.dir / "onnx")
        except OfficialWeightsError as exc:
            print(f"convert-official: {exc}", flush=True)
            return 1
        for p in paths.values():
            print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    return 0
