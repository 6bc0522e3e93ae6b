"""Where the head sits over a session: the learned model streamed over the protocol's
validation sessions at several context noise levels (the level finished blocks are cached at),
beside the real listener. Prints the mean |session mean| of head_tx / head_ty and the head
pose variance.

    python benchmarks/results/context-noise-2026-12-07/head_drift.py models/af_forcing_v2 /tmp/afe3/validation
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1  # noqa: E402
from avatar_forcing_ros.generation import evaluation as ev  # noqa: E402

TX, TY = AF_MOTION_V1.index("head_tx"), AF_MOTION_V1.index("head_ty")


def describe(name, motions):
    tx = np.abs([m[:, TX].mean() for m in motions]).mean()
    ty = np.abs([m[:, TY].mean() for m in motions]).mean()
    var = np.concatenate(motions)[:, ev.POSE].var(0).mean()
    late = np.abs([m[-125:, TX].mean() for m in motions]).mean()
    print(f"{name:28s} |mean tx| {tx:.3f}  (last 5 s {late:.3f})  |mean ty| {ty:.3f}  var pose {var:.5f}")


def main(checkpoint, data, guidance=3.0, levels=(0.0, 0.1, 0.2, 0.3)):
    net = ev._load_net(checkpoint, 2)
    sessions = ev.load_eval_sessions(data)
    describe("real listener", [s.arrays.avatar_motion for s in sessions])
    for level in levels:
        describe(f"context noise {level}", ev.generate_batched(net, sessions, 0, guidance, mouth_temperature=0.25,
                                                               context_noise=level))


if __name__ == "__main__":
    main(*sys.argv[1:3])
