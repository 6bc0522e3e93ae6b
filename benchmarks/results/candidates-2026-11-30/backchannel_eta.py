"""The head's pitch around the user's back-channel cues (pauses in the user's speech),
averaged over all cues of a protocol set: the real listener, and each checkpoint at guidance 5,
mouth temperature 0.25 (one seed). Pitch relative to the 5 frames before the cue, every 3rd
frame from 5 before to 30 after; "mean min-dip" is the mean of each cue's deepest dip.

    python benchmarks/results/candidates-2026-11-30/backchannel_eta.py /tmp/afe3/test models/af_forcing_v1 models/af_forcing_v2
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402


def around_cues(motions, sessions):
    segs = [m[f - 5:f + 30, E.PITCH] - m[f - 5:f, E.PITCH].mean()
            for m, s in zip(motions, sessions) for f in s.backchannel if 5 <= f < len(m) - 30]
    a = np.array(segs)
    return a.mean(0), a.min(1).mean(), len(a)


def main(corpus, *checkpoints):
    torch.set_num_threads(1)
    sessions = E.load_eval_sessions(corpus)
    runs = [("real", [s.arrays.avatar_motion for s in sessions])]
    runs += [(c, E.generate_batched(E._load_net(c, 1), sessions, 0, 5.0, mouth_temperature=0.25)) for c in checkpoints]
    for name, motions in runs:
        mean, dip, n = around_cues(motions, sessions)
        print(f"{name}: {n} cues, mean min-dip {dip:.3f}; pitch -5..+28 frames every 3: "
              + " ".join(f"{v:+.3f}" for v in mean[::3]))


if __name__ == "__main__":
    main(*sys.argv[1:])
