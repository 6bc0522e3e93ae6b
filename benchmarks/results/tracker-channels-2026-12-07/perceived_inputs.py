"""What the tracker's reading of the user does to a model's back-channel nods: the streaming
model over a perceived protocol set at its own sampling settings, the user given as

- perceived: the tracker's reading (what the set holds);
- true: the simulator's user motion (kept beside the reading);
- true:GROUPS: the reading with these channel groups (or channel names, '+'-joined) true;
- group / channel: the true motion through TrackerNoise, the built-in group figures or the
  per-channel figures of a tracker_stats.json (--figures);

every metric measured against the true user (af-eval-v7), events pooled over --seeds.

    python benchmarks/results/tracker-channels-2026-12-07/perceived_inputs.py /tmp/afe3/validation_perceived \
        models/af_forcing_v3 perceived true true:pose true:mouth group channel --figures FILE
"""
import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M  # noqa: E402
from avatar_forcing_ros.corpus.perceived import load_true_user  # noqa: E402
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402
from avatar_forcing_ros.generation.forcing.tracker_noise import TrackerNoise  # noqa: E402

KEYS = ("nod_rate", "nod_chance", "user_nod_rate", "user_nod_chance", "smile_react_corr", "rpcc_exp", "fd_exp")


def user_input(mode: str, s, k: int, figures, true_present):
    true, present = s.true_user_motion, s.arrays.user_present  # the copy keeps the true user beside it
    if mode == "perceived":
        return s.arrays.user_motion, present
    if mode == "true":
        return true, present
    if mode.startswith("true:"):
        parts = mode[5:].split("+")
        mask = np.isin([c.group for c in M.channels], parts) | np.isin(M.names, parts)
        um = s.arrays.user_motion.copy()
        um[:, mask] = true[:, mask]
        return um, present
    noise = TrackerNoise() if mode == "group" else TrackerNoise.from_file(figures)
    return noise.apply(true, true_present, np.random.default_rng([7, k]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("checkpoint")
    p.add_argument("modes", nargs="+")
    p.add_argument("--figures", help="tracker_stats.json for the 'channel' mode")
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(2)
    net = E._load_net(a.checkpoint, 2)
    sessions = E.load_eval_sessions(a.corpus)
    clusters = E.Clusters.fit([s.arrays.avatar_motion for s in sessions])
    real = E.aggregate(E.motion_stats([s.arrays.avatar_motion for s in sessions], sessions, clusters))
    print(f"{a.checkpoint} on {a.corpus}, {a.seeds} seeds, guidance {net.cfg.guidance_scale} "
          f"nod {net.cfg.nod_guidance_scale}")
    print("| user given as | " + " | ".join(KEYS) + " |\n|---|" + "---|" * len(KEYS))
    print("| (real listener) | " + " | ".join(f"{real[k]:.3f}" for k in KEYS) + " |")
    for mode in a.modes:
        given = []
        for k, s in enumerate(sessions):
            um, up = user_input(mode, s, k, a.figures, load_true_user(a.corpus, s.arrays.name)[1])
            given.append(with_user(s, um, up))
        print_row(mode, net, given, clusters, a.seeds, KEYS)


def with_user(s, motion, present):
    """The session with this user motion and presence given to the model."""
    return replace(s, arrays=replace(s.arrays, user_motion=np.asarray(motion, np.float32),
                                     user_present=np.asarray(present, np.float32)))


def print_row(label, net, sessions, clusters, seeds, keys):
    """The model at its own sampling settings over the sessions, events pooled over seeds."""
    stats = []
    for seed in range(seeds):
        motions = E.generate_batched(net, sessions, seed, net.cfg.guidance_scale,
                                     mouth_temperature=net.cfg.mouth_temperature,
                                     nod_guidance=net.cfg.nod_guidance_scale)
        stats += E.motion_stats(motions, sessions, clusters, net.cfg.block_frames)
    r = E.aggregate(stats)
    print(f"| {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |", flush=True)


if __name__ == "__main__":
    main()
