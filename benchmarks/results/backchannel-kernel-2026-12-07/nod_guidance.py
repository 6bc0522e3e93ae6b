"""Free-running nods after the user's pauses, and what they cost, at a nod guidance of its
own: the streaming model over a protocol set (one seed, the model's mouth temperature and
context noise), the user guidance G on every channel and N on the nod axis (head pitch).
``--all-pose``: N on all six head-pose channels instead (the variant not shipped).

    python benchmarks/results/backchannel-kernel-2026-12-07/nod_guidance.py /tmp/afe3/validation CHECKPOINT G:N [G:N ...] [--all-pose]
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1  # noqa: E402
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402
from avatar_forcing_ros.generation.forcing.config import ForcingConfig  # noqa: E402

KEYS = ("rpcc_exp", "rpcc_pose", "fd_exp", "fd_pose", "var_pose", "lip_env_corr", "nod_rate", "nod_chance")


def main(corpus, checkpoint, *settings):
    if "--all-pose" in settings:
        settings = [s for s in settings if s != "--all-pose"]
        ForcingConfig.nod_mask = lambda self: np.array([c.group == "pose" for c in AF_MOTION_V1.channels], np.float32)
    torch.set_num_threads(2)
    net = E._load_net(checkpoint, 2)
    sessions = E.load_eval_sessions(corpus)
    clusters = E.Clusters.fit([s.arrays.avatar_motion for s in sessions])
    real = E.aggregate(E.motion_stats([s.arrays.avatar_motion for s in sessions], sessions, clusters))
    print(f"{checkpoint} on {corpus}, axes {[n for n, m in zip(AF_MOTION_V1.names, net.cfg.nod_mask()) if m]}")
    print(f"real listener: nods after cues {real['nod_rate']:.3f}, at random moments {real['nod_chance']:.3f}, "
          f"var_pose {real['var_pose']:.5f}")
    print("| G:N | " + " | ".join(KEYS) + " |")
    for setting in settings:
        g, n = (float(x) for x in setting.split(":"))
        motions = E.generate_batched(net, sessions, 0, g, mouth_temperature=net.cfg.mouth_temperature,
                                     nod_guidance=n)
        r = E.aggregate(E.motion_stats(motions, sessions, clusters, net.cfg.block_frames))
        print(f"| {g:g}:{n:g} | " + " | ".join(f"{r[k]:.4f}" for k in KEYS) + " |", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
