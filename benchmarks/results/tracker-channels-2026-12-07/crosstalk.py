"""Is the tracker's damage cross-talk? On the perceived training sessions: R² of each channel's
reading from its own gain against from all 28 channels (the cross-talk fit), both pooled over
the sessions' frames with a face (so the sessions' own calibration offsets count against
both), then v3
on validation_perceived given the true user through TrackerNoise with each (per channel;
with the cross-talk table) beside the tracker's real reading. Every metric against the true
user (af-eval-v7), events pooled over 3 seeds.

    python benchmarks/results/tracker-channels-2026-12-07/crosstalk.py \
        benchmarks/results/tracker-channels-2026-12-07/tracker_stats_train30.json \
        /tmp/afe3/validation_perceived models/af_forcing_v3 /tmp/afe3/train_perceived30
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M  # noqa: E402
from avatar_forcing_ros.corpus.dataset import load_dataset  # noqa: E402
from avatar_forcing_ros.corpus.perceived import load_true_user  # noqa: E402
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402
from avatar_forcing_ros.generation.forcing.tracker_noise import TrackerNoise  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perceived_inputs import print_row, with_user  # noqa: E402

KEYS = ("nod_rate", "nod_chance", "user_nod_rate", "smile_react_corr", "rpcc_exp", "fd_exp")


def own_gain_r2(copy) -> np.ndarray:
    """Per channel, R² of perceived = a + b * true over the copy's frames with a face."""
    xs, ys = [], []
    for s in load_dataset(copy):
        true, present = load_true_user(copy, s.name)
        keep = (present >= 0.5) & (s.user_present > 0)
        xs.append(true[keep])
        ys.append(s.user_motion[keep])
    x, y = np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)
    out = []
    for c in range(M.dim):
        r = np.corrcoef(x[:, c], y[:, c])[0, 1] if x[:, c].std() > 1e-9 and y[:, c].std() > 1e-9 else 0.0
        out.append(r * r)
    return np.array(out)


def main(figures, corpus, checkpoint, copy):
    stats = json.loads(Path(figures).read_text())
    own = own_gain_r2(copy)
    print(f"{figures} (from {copy}): {stats['sessions']} sessions, {stats['frames']} frames")
    print("| channel | R² own gain | R² all channels |\n|---|---|---|")
    for c, n in enumerate(M.names):
        print(f"| {n} | {own[c]:.2f} | {stats['crosstalk']['r2'][c]:.2f} |")
    readers = {"TrackerNoise, per channel": TrackerNoise.from_stats(stats, crosstalk=False),
               "TrackerNoise, cross-talk": TrackerNoise.from_stats(stats)}
    torch.set_num_threads(2)
    net = E._load_net(checkpoint, 2)
    sessions = E.load_eval_sessions(corpus)
    clusters = E.Clusters.fit([s.arrays.avatar_motion for s in sessions])
    print(f"\n{checkpoint} on {corpus}, 3 seeds\n| user given as | " + " | ".join(KEYS) + " |\n|---|"
          + "---|" * len(KEYS))
    for label in ("the tracker's reading", "true", *readers):
        given = []
        for k, s in enumerate(sessions):
            if label == "the tracker's reading":
                um, up = s.arrays.user_motion, s.arrays.user_present
            elif label == "true":
                um, up = s.true_user_motion, s.arrays.user_present
            else:
                um, up = readers[label].apply(s.true_user_motion, load_true_user(corpus, s.arrays.name)[1],
                                              np.random.default_rng([7, k]))
            given.append(with_user(s, um, up))
        print_row(label, net, given, clusters, 3, KEYS)


if __name__ == "__main__":
    main(*sys.argv[1:])
