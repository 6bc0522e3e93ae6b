"""Checkpoints side by side on protocol sets at v3's sampling settings (guidance 2.0, nod
guidance 7.0, mouth temperature 0.25, context noise 0.3), events pooled over seeds; on a
perceived set the model is given the tracker's reading and measured against the true user.

    python benchmarks/results/tracker-channels-2026-12-07/candidates.py \
        /tmp/afe3/validation_perceived,/tmp/afe3/validation 3 models/af_forcing_v3 /tmp/s7/candA /tmp/s7/candB
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402

KEYS = ("nod_rate", "nod_chance", "user_nod_rate", "user_nod_chance", "smile_react_corr", "rpcc_exp", "rpcc_pose",
        "fd_exp", "fd_pose", "var_pose", "lip_env_corr", "jaw_speaking")


def main(sets, seeds, *checkpoints):
    torch.set_num_threads(2)
    print("| set | model | " + " | ".join(KEYS) + " |\n|---|---|" + "---|" * len(KEYS), flush=True)
    for corpus in sets.split(","):
        sessions = E.load_eval_sessions(corpus)
        clusters = E.Clusters.fit([s.arrays.avatar_motion for s in sessions])
        name = Path(corpus).name
        real = E.aggregate(E.motion_stats([s.arrays.avatar_motion for s in sessions], sessions, clusters))
        print(f"| {name} | real | " + " | ".join(f"{real[k]:.4f}" for k in KEYS) + " |", flush=True)
        for ck in checkpoints:
            net = E._load_net(ck, 2)
            stats = []
            for seed in range(int(seeds)):
                motions = E.generate_batched(net, sessions, seed, 2.0, mouth_temperature=0.25, context_noise=0.3,
                                             nod_guidance=7.0)
                stats += E.motion_stats(motions, sessions, clusters, net.cfg.block_frames)
            r = E.aggregate(stats)
            print(f"| {name} | {Path(ck).name} | " + " | ".join(f"{r[k]:.4f}" for k in KEYS) + " |", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
