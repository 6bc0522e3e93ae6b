"""Streaming speed of the Avatar Forcing network (prints figures; torch threads 2).

    .venv/bin/python benchmarks/model_streaming.py [--checkpoint models/af_forcing_v4] [--seconds 10]

Side by side in one run, for the same output length:
- streaming: block-causal with the KV cache (torch, and onnxruntime when model.onnx exists);
- recompute: block-causal without a cache (every step re-runs the rolling context + block);
- non-causal window: bidirectional attention over W frames re-sampled for every block.
Motion latency of a block = its duration (the last input sample arrives at its end) + compute.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar_forcing_ros.generation.forcing.checkpoint import load_checkpoint  # noqa: E402
from avatar_forcing_ros.generation.forcing.config import ForcingConfig  # noqa: E402
from avatar_forcing_ros.generation.forcing.flow import euler_times  # noqa: E402
from avatar_forcing_ros.generation.forcing.network import AvatarForcingNet, block_causal_mask  # noqa: E402
from avatar_forcing_ros.generation.forcing.sampler import Guidance, StreamingSampler  # noqa: E402


def timed_blocks(step_fn, n_blocks: int) -> np.ndarray:
    times = []
    for i in range(n_blocks):
        t0 = time.perf_counter()
        step_fn(i)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def report(name, times, block_s):
    p50, p95 = np.percentile(times, 50) * 1e3, np.percentile(times, 95) * 1e3
    print(f"{name:28s} per block p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  real-time factor "
          f"{np.mean(times) / block_s:6.3f}  motion latency p50 {block_s * 1e3 + p50:6.1f} ms  "
          f"p95 {block_s * 1e3 + p95:6.1f} ms")
    return float(np.mean(times))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default="models/af_forcing_v4")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--audio-guidance", type=float, default=None, help="two-way models: guidance over the avatar's audio")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if (Path(args.checkpoint) / "config.json").is_file():
        net, _ = load_checkpoint(args.checkpoint)
        print(f"checkpoint {args.checkpoint}")
    else:
        net = AvatarForcingNet(ForcingConfig()).eval()
        print("no checkpoint: a randomly initialised network of the default config")
    cfg = net.cfg
    g = cfg.guidance_scale if args.guidance is None else args.guidance
    ga = cfg.audio_guidance_scale if args.audio_guidance is None else args.audio_guidance
    guide = Guidance.plan(cfg, g, ga)
    B, D, C, W = cfg.block_frames, cfg.motion_dim, cfg.max_cache_frames, cfg.window_frames
    block_s = B / cfg.fps
    n_blocks = int(args.seconds * cfg.fps) // B
    T = n_blocks * B + W  # the window baseline first fills its window
    print(f"{net.param_count() / 1e6:.2f} M params, {cfg.n_layer} layers x {cfg.n_embd}, block {B} frames "
          f"({block_s * 1e3:.0f} ms), {cfg.sample_steps} steps, guidance {g} / audio {ga} ({guide.rows} rows), cache {C} frames, window {W}; "
          f"{n_blocks} blocks, torch threads {args.threads}")
    gen = torch.Generator().manual_seed(0)
    aa, ua = torch.randn(1, T, cfg.audio_dim, generator=gen), torch.randn(1, T, cfg.audio_dim, generator=gen)
    um, up = 0.1 * torch.randn(1, T, D, generator=gen), torch.ones(1, T)
    noise = torch.randn(1, T, D, generator=gen)
    context = torch.randn(1, T, D, generator=gen)  # what a model with context_noise caches its blocks with

    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        net.to(dev)
        x_in = [t.to(dev) for t in (aa, ua, um, up, noise)]
        ctx = context.to(dev) if cfg.context_noise else None
        sampler = StreamingSampler(net, g, device=dev, audio_guidance=ga)

        def stream(i):
            s = i * B
            sampler.step(*(t[:, s:s + B] for t in x_in), None if ctx is None else ctx[:, s:s + B])
            if dev == "cuda":
                torch.cuda.synchronize()

        timed_blocks(stream, 3)
        sampler.reset()
        t_stream = report(f"[{dev}] streaming + KV cache", timed_blocks(stream, n_blocks), block_s)

        with torch.no_grad():
            cond, _ = guide.encode(net, *x_in[:4])
        clean = torch.zeros(1, T, D, device=dev)
        ts = euler_times(cfg.sample_steps)

        @torch.no_grad()
        def recompute(i):
            s, e = i * B, i * B + B
            lo = max(0, s - C)
            n = e - lo
            mask = block_causal_mask(n, B, device=dev)
            x = x_in[4][:, s:e]
            for k in range(cfg.sample_steps):
                seq = torch.cat([clean[:, lo:s], x], dim=1)
                t = torch.cat([torch.zeros(1, s - lo), torch.full((1, B), ts[k])], dim=1).to(dev)
                v, _ = net(guide.expand(seq), guide.expand(t), cond[:, lo:e], mask, torch.arange(lo, e, device=dev))
                x = x + (ts[k + 1] - ts[k]) * guide.combine(v[:, -B:])
            clean[:, s:e] = x
            if dev == "cuda":
                torch.cuda.synchronize()

        t_rec = report(f"[{dev}] recompute context", timed_blocks(recompute, n_blocks), block_s)

        @torch.no_grad()
        def window(i):
            e = i * B + B
            lo = max(0, e - W)
            n = e - lo
            full = torch.ones(n, n, dtype=torch.bool, device=dev)
            x = torch.randn(1, n, D, device=dev)
            for k in range(cfg.sample_steps):
                t = torch.full((guide.rows, n), ts[k], device=dev)
                v, _ = net(guide.expand(x), t, cond[:, lo:e], full, torch.arange(lo, e, device=dev))
                x = x + (ts[k + 1] - ts[k]) * guide.combine(v)
            if dev == "cuda":
                torch.cuda.synchronize()

        # the window baseline is only steady once its window is full: time those blocks
        warm = W // B
        t_win = timed_blocks(window, warm + n_blocks)[warm:]
        t_win = report(f"[{dev}] non-causal window W={W}", t_win, block_s)
        print(f"[{dev}] speed-up of streaming: {t_win / t_stream:.1f}x vs non-causal window, "
              f"{t_rec / t_stream:.1f}x vs recomputing the context")

    # the same comparison on onnxruntime, where per-call overhead is small and compute shows
    import tempfile

    import onnxruntime as ort

    from avatar_forcing_ros.generation.forcing.onnx_export import (OnnxStreamingRunner, export_onnx, export_window_onnx,
                                                                   guidance_input, guidance_names)
    net.to("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(args.checkpoint) / "model.onnx"
        if not onnx_path.is_file():
            onnx_path = export_onnx(net, Path(tmp) / "model.onnx")
        runner = OnnxStreamingRunner(onnx_path, threads=args.threads)
        npx = [t.numpy()[0] for t in (aa, ua, um, up, noise)]
        # a graph that caches noised blocks also takes their noise (the block noise will do)
        times = timed_blocks(lambda i: runner.step(
            *(a[i * B:i * B + B] for a in npx), guidance=g,
            context_noise=npx[4][i * B:i * B + B] if runner.cfg.context_noise else None), n_blocks)
        t_stream = report("[cpu] onnxruntime streaming", times, block_s)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        win = ort.InferenceSession(str(export_window_onnx(net, Path(tmp) / "window.onnx")), opts,
                                   providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)

        def window_ort(i):
            e = W + i * B  # a full window ending at this block
            feeds = {"avatar_audio": npx[0][None, e - W:e], "user_audio": npx[1][None, e - W:e],
                     "user_motion": npx[2][None, e - W:e], "user_present": npx[3][None, e - W:e],
                     "noise": rng.standard_normal((1, W, D)).astype(np.float32),
                     "guidance": guidance_input(guidance_names(net.cfg), g)}
            win.run(None, feeds)

        t_win = report(f"[cpu] onnxruntime window W={W}", timed_blocks(window_ort, n_blocks), block_s)
        print(f"[cpu] onnxruntime speed-up of streaming vs non-causal window: {t_win / t_stream:.1f}x")


if __name__ == "__main__":
    main()
