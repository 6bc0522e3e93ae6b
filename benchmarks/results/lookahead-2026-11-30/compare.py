"""Look-ahead 0 against 2: two checkpoints of the same recipe, each at mouth temperature 1 and
0.25 (guidance 5), beside the procedural model, on one protocol set (one seed, no intervals).

    python benchmarks/results/lookahead-2026-11-30/compare.py /tmp/afe3 validation /tmp/la/L0 /tmp/la/L2
"""
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402

KEYS = ["lip_env_corr", "jaw_speaking", "lip_sync_corr", "rpcc_exp", "rpcc_pose", "fd_exp", "fd_pose", "var_pose",
        "nod_rate", "nod_chance", "user_nod_rate", "user_nod_chance", "smile_react_corr", "jerk_boundary"]


def main(root: str, name: str, *checkpoints: str) -> None:
    torch.set_num_threads(1)
    sessions = E.load_eval_sessions(Path(root) / name)
    models = {}
    for path in checkpoints:
        net = E._load_net(path, 1)
        for tm in (1.0, 0.25):
            models[f"L{net.cfg.lookahead_frames}/t{tm}"] = (
                lambda ss, sd, net=net, tm=tm: E.generate_batched(net, ss, sd, 5.0, mouth_temperature=tm))
    models.update(E.procedural_model(2))
    t0 = time.time()
    results = E.evaluate_models(models, sessions, n_boot=0)
    print(f"## {name} ({len(sessions)} sessions, {time.time() - t0:.0f}s)")
    print("| model | " + " | ".join(KEYS) + " |")
    for model, v in results.items():
        print(f"| {model} | " + " | ".join(f"{v.get(k, float('nan')):.3g}" for k in KEYS) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
