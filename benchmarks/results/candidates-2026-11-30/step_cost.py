"""Time of one streaming block step (onnxruntime, one thread) of two exported models, blocks
interleaved A, B, A, B... in one run so that both see the same machine load.

    python benchmarks/results/candidates-2026-11-30/step_cost.py models/af_forcing_v2/model.onnx /tmp/la/v2att/model.onnx
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.generation.forcing.onnx_runner import OnnxStreamingRunner  # noqa: E402


def main(a: str, b: str, blocks: int = 300) -> None:
    runners = [OnnxStreamingRunner(p, None, 1) for p in (a, b)]
    rng = np.random.default_rng(0)
    times = [[], []]
    for i in range(blocks + 20):
        cfg = runners[0].cfg
        inputs = (rng.normal(size=(cfg.block_frames, cfg.audio_dim)).astype(np.float32),
                  rng.normal(size=(cfg.block_frames, cfg.audio_dim)).astype(np.float32),
                  (0.1 * rng.normal(size=(cfg.block_frames, cfg.motion_dim))).astype(np.float32),
                  np.ones(cfg.block_frames, np.float32),
                  rng.normal(size=(cfg.block_frames, cfg.motion_dim)).astype(np.float32))
        for k, r in enumerate(runners):
            t0 = time.perf_counter()
            # a model that caches noised blocks also takes their noise (any normal draw will do)
            r.step(*inputs, 5.0, 1.0, inputs[4] if r.cfg.context_noise else None)
            if i >= 20:  # warm-up left out
                times[k].append(time.perf_counter() - t0)
    for path, t in zip((a, b), times):
        t = np.array(t) * 1e3
        print(f"{path}: {runners[0].cfg.block_frames * 40} ms block, step p50 {np.percentile(t, 50):.2f} ms, "
              f"p95 {np.percentile(t, 95):.2f} ms over {len(t)} blocks")
    print(f"ratio of medians B/A: {np.median(times[1]) / np.median(times[0]):.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
