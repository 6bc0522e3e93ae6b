"""Speed and endurance of the official Avatar Forcing network (this package's implementation).

    # speed, with your own converted weights (see README "The paper's own network"):
    .venv/bin/python benchmarks/official_stream.py speed --weights ~/avatarforcing [--device cuda]
    # speed with random weights at the released size (no weights needed; numbers only):
    .venv/bin/python benchmarks/official_stream.py speed [--device cuda] [--blocks 5]
    # endurance: a conversation of 2 hours of simulated time, small random model:
    .venv/bin/python benchmarks/official_stream.py soak --hours 2

speed: per block (10 frames = 400 ms of video): audio features (2 x wav2vec2), flow sampling
(NFE 10, and fewer), decoding the 10 images; latency from the last audio sample of a block to
its last frame presented = block duration + compute; sustainable fps; peak VRAM on CUDA. The
paper reports ~500 ms latency on one H100. On a CPU it prints the same figures and says plainly
that they are not real time.
soak: audio and user faces pushed frame by frame, blocks pulled as their frames arrive, for the
simulated duration (the user's face encoded once a second, its latent repeated between);
prints the process's resident memory over time and the KV-cache size.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar_forcing_ros.generation.official.audio import Wav2VecFeatures  # noqa: E402
from avatar_forcing_ros.generation.official.config import OfficialConfig  # noqa: E402
from avatar_forcing_ros.generation.official.flow import AudioProjection, FlowTransformer  # noqa: E402
from avatar_forcing_ros.generation.official.model import OfficialAvatarForcing, OfficialStream  # noqa: E402
from avatar_forcing_ros.generation.official.motion_autoencoder import MotionAutoencoder  # noqa: E402


def random_model(cfg: OfficialConfig, wav2vec_size: str = "base", device: str = "cpu",
                 dtype=torch.float32) -> OfficialAvatarForcing:
    """The architecture with random weights (no file is read): for timing and endurance."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    if wav2vec_size == "base":
        w2c = Wav2Vec2Config()          # the wav2vec2-base architecture: 12 x 768
    else:
        w2c = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, conv_dim=(16,) * 7,
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    w2v = Wav2Vec2Model(w2c).eval().to(device, dtype)
    cfg.audio_features = w2c.num_hidden_layers * w2c.hidden_size
    parts = [FlowTransformer(cfg), AudioProjection(cfg.audio_features, cfg.latent_dim), MotionAutoencoder(cfg)]
    with torch.no_grad():
        for m in parts:
            for p in m.parameters():
                if p.ndim >= 2 and not p.abs().sum():
                    p.normal_(0, 0.02)
    parts = [m.to(device, dtype).eval().requires_grad_(False) for m in parts]
    return OfficialAvatarForcing(cfg, *parts, Wav2VecFeatures(w2v, cfg.samples_per_frame), device)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speed(args) -> None:
    device = args.device
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    if args.weights:
        model = OfficialAvatarForcing.load(args.weights, device=device)
        if dtype != torch.float32:
            for m in (model.flow, model.projection, model.autoencoder, model.wav2vec.model):
                m.to(dtype)
        what = f"weights {args.weights}"
    else:
        model = random_model(OfficialConfig(), "base", device, dtype)
        what = "random weights, released size (8 x 1024 flow, 512x512 decoder, wav2vec2-base)"
    where = (torch.cuda.get_device_name() if device.startswith("cuda")
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"device {device} ({where}), {args.dtype}, {what}")
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    block_s = model.cfg.block_frames / model.cfg.fps
    for nfe in args.nfe:
        stream = OfficialStream(model, portrait, nfe=nfe, seed=0)
        if dtype != torch.float32:
            stream.sampler.identity = stream.sampler.identity.to(dtype)
        t_audio, t_flow, t_dec = [], [], []
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        for b in range(args.blocks + 1):
            n = stream.frames_needed - (0 if stream.sampler.first else model.cfg.context_frames)
            for _ in range(n):
                stream.push_audio(rng.standard_normal(640).astype(np.float32) * 0.1,
                                  rng.standard_normal(640).astype(np.float32) * 0.1)
                stream.push_user_face(None)
            sync(device)
            t0 = time.perf_counter()
            first = stream.next_frame - (0 if stream.sampler.first else model.cfg.context_frames)
            count = stream.sampler.frames_needed
            with torch.inference_mode():
                a = model.projection(stream.avatar_audio.frames(first, count).to(device, dtype))
                u = model.projection(stream.user_audio.frames(first, count).to(device, dtype))
                um = stream._motion_window(first, count).to(device, dtype)
                sync(device)
                t1 = time.perf_counter()
                lat = stream.sampler.next_block(a, u, um)
                stream.next_frame += lat.shape[1]
                sync(device)
                t2 = time.perf_counter()
                if b == 0 or args.decode:
                    stream.decode(lat[:, -model.cfg.block_frames:] if b else lat[:, :model.cfg.block_frames])
                sync(device)
                t3 = time.perf_counter()
            if b == 0:
                print(f"  nfe {nfe}: first block ({lat.shape[1]} frames) {1e3 * (t2 - t0):.0f} ms "
                      f"+ decode of 10 frames {1e3 * (t3 - t2):.0f} ms")
                continue
            t_audio.append(t1 - t0)
            t_flow.append(t2 - t1)
            t_dec.append(t3 - t2 if args.decode else t3 - t2)
        compute = np.median(np.array(t_audio) + np.array(t_flow) + np.array(t_dec))
        vram = (f", peak VRAM {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
                if device.startswith("cuda") else "")
        print(f"  nfe {nfe}, blocks of {model.cfg.block_frames}: audio {1e3 * np.median(t_audio):.0f} ms, "
              f"flow {1e3 * np.median(t_flow):.0f} ms, decode x10 {1e3 * np.median(t_dec):.0f} ms per "
              f"block{'' if args.decode else ' (decode timed for the first block only)'}; latency = {1e3 * block_s:.0f} ms block + {1e3 * compute:.0f} ms compute = "
              f"{1e3 * (block_s + compute):.0f} ms (paper: ~500 ms, H100); sustainable "
              f"{model.cfg.block_frames / compute:.1f} fps{vram}")
        if compute > block_s:
            print(f"  -> NOT real time here: a block takes {compute:.2f} s to make and lasts "
                  f"{block_s:.2f} s" + (" (a CPU: use a GPU)" if device == "cpu" else ""))


def soak(args) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = OfficialConfig(width=32, heads=2, depth=1, image_size=16,   # no images decoded here
                         channels={k: 8 for k in (4, 8, 16, 32, 64, 128, 256, 512, 1024)})
    model = random_model(cfg, "tiny")
    rng = np.random.default_rng(0)
    stream = OfficialStream(model, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
                            nfe=args.soak_nfe, seed=0)
    frames = int(args.hours * 3600 * cfg.fps)
    face = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    chunk_a = rng.standard_normal(640).astype(np.float32) * 0.1
    t0, produced, frame = time.perf_counter(), 0, 0
    report_every = int(600 * cfg.fps)
    rss0 = None
    print(f"soak: {args.hours} h = {frames} frames simulated, small random model, nfe {args.soak_nfe}")
    while produced < frames:
        stream.push_audio(chunk_a, chunk_a)
        # the user's face: crops through the encoder once a second, latents in between (the
        # encoder's cost is per camera frame and says nothing about endurance)
        if frame % 25 == 0:
            stream.push_user_face(face)
        else:
            stream.push_user_motion(stream.user_motion[-1] if frame % 50 else None)
        frame += 1
        end = stream.next_frame + (cfg.clip_frames if stream.sampler.first else cfg.block_frames)
        if frame >= end:
            lat = stream.next_block()
            if not torch.isfinite(lat).all():
                raise SystemExit(f"non-finite latents at frame {produced}")
            produced += lat.shape[1]
            if produced == 10 * cfg.clip_frames:
                rss0 = rss_mb()
            if produced % report_every == 0:
                print(f"  t = {produced / cfg.fps / 60:5.1f} min simulated: RSS {rss_mb():.1f} MB, "
                      f"KV cache {stream.sampler.cache_state_bytes() / 1e3:.1f} kB, "
                      f"{time.perf_counter() - t0:.0f} s wall")
    print(f"done: {produced} frames ({produced / cfg.fps / 3600:.2f} h simulated) in "
          f"{time.perf_counter() - t0:.0f} s; RSS {rss0:.1f} MB after 20 s -> {rss_mb():.1f} MB at the "
          f"end; user-motion buffer {len(stream.user_motion)} frames, audio buffer "
          f"{len(stream.avatar_audio.buffer)} samples")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--weights", type=Path, help="converted official weights directory")
    sp.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    sp.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    sp.add_argument("--nfe", type=int, nargs="+", default=[10, 6, 4])
    sp.add_argument("--blocks", type=int, default=5)
    sp.add_argument("--no-decode", dest="decode", action="store_false",
                    help="decode images only for the first block")
    so = sub.add_parser("soak")
    so.add_argument("--hours", type=float, default=2.0)
    so.add_argument("--soak-nfe", type=int, default=4)
    args = ap.parse_args(argv)
    speed(args) if args.cmd == "speed" else soak(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
