"""Renderer speed: frames per second of each renderer at face-screen and portrait sizes, CPU.

    .venv/bin/python benchmarks/renderer_speed.py [--frames 150] [--neural-models DIR]

Sizes 256x256, 512x512 and 480x480 (face screen); OpenCV threads 1 and 2. BLAS/OpenMP threads
are pinned to --blas-threads (default 1) before numpy loads, so "1 thread" means one core.
The neural renderer runs only with --neural-models (a directory of LivePortrait-style ONNX
files); no weights ship with the package. Motions are a fixed random walk through af-motion-v1.
"""
import argparse
import os
import sys
import time
from pathlib import Path


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=150, help="timed frames per row")
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument("--neural-models", default=None, help="directory with the ONNX files of neural.py")
    p.add_argument("--renderers", default="stylised,portrait,neural")
    return p.parse_args()


def motion_walk(n, seed=0):
    import numpy as np
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    rng = np.random.default_rng(seed)
    v = M.neutral()
    span = (M.high - M.low) * 0.03
    out = []
    for _ in range(n):
        v = M.clip(v + rng.normal(0, 1, M.dim).astype(np.float32) * span)
        v[:6] *= 0.95  # keep the head near the middle, as in conversation
        out.append(v.copy())
    return out


def fps(renderer, motions, warmup=5):
    """(frames per second of wall time, CPU ms per frame): on a shared machine the CPU time is
    what one core would need, the wall time also counts waiting for the core."""
    for v in motions[:warmup]:
        renderer.render(v)
    start, cpu = time.perf_counter(), time.process_time()
    for v in motions:
        renderer.render(v)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(motions) / wall, 1000 * cpu / len(motions)


def main():
    args = parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.blas_threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cv2
    from avatar_forcing_ros.render import make_renderer

    kinds = [k for k in args.renderers.split(",") if k]
    if "neural" in kinds and not args.neural_models:
        print("neural: skipped (pass --neural-models DIR)")
        kinds.remove("neural")
    motions = motion_walk(args.frames)
    print(f"{'renderer':10} {'size':>9} {'cv2 thr':>7} {'fps':>8} {'ms/frame':>9} {'cpu ms':>7}")
    for kind in kinds:
        for w, h in ((256, 256), (512, 512), (480, 480)):
            params = dict(width=w, height=h)
            if kind == "neural":
                params.update(model_dir=args.neural_models)
            renderer = make_renderer(kind, **params)
            for threads in (1, 2):
                cv2.setNumThreads(threads)
                f, cpu_ms = fps(renderer, motions)
                print(f"{kind:10} {f'{w}x{h}':>9} {threads:>7} {f:8.1f} {1000 / f:9.2f} {cpu_ms:7.2f}", flush=True)
            renderer.close()


if __name__ == "__main__":
    main()
