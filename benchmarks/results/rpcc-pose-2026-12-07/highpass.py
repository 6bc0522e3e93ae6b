"""Does head-pose rPCC start to mean something once the slow posture drift is filtered out?

rPCC of head pose on a protocol test set (mean over sessions of |PCC(real, user) - PCC(model,
user)|, the channel mean per session, as generation/evaluation.py computes it), with every pose
track first high-passed (2nd-order Butterworth, zero phase) at each cut-off, for the shipped
model, the procedural model, the real listener's second take and a still face.

    python benchmarks/results/rpcc-pose-2026-12-07/highpass.py /tmp/afe3 models/af_forcing_v2
"""
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1  # noqa: E402
from avatar_forcing_ros.corpus.dataset import load_dataset  # noqa: E402
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402


def highpass(x, cutoff_hz):
    return sosfiltfilt(butter(2, cutoff_hz / 12.5, btype="high", output="sos"), x, axis=0) if cutoff_hz else x


def rpcc_pose(motion, s, cutoff_hz):
    T = len(motion)
    user, real, gen = (highpass(np.asarray(m[:T], np.float64)[:, E.POSE], cutoff_hz)
                       for m in (s.arrays.user_motion, s.arrays.avatar_motion, motion))
    return abs(E.mean_channel_pcc(user, real) - E.mean_channel_pcc(user, gen))


def main(root, checkpoint, guidance=None):
    torch.set_num_threads(2)
    sessions = E.load_eval_sessions(Path(root) / "test")
    retake = {s.name: np.asarray(s.avatar_motion) for s in load_dataset(Path(root) / "test_retake")}
    net = E._load_net(checkpoint, 2)
    g = net.cfg.guidance_scale if guidance is None else float(guidance)
    rows = {"af_forcing_v2": E.generate_batched(net, sessions, 0, g, mouth_temperature=net.cfg.mouth_temperature),
            "procedural": E.procedural_model(2)["procedural"](sessions, 0),
            "real, second take": [retake[s.arrays.name][:s.frames] for s in sessions],
            "still face": [np.tile(AF_MOTION_V1.neutral(), (s.frames, 1)) for s in sessions]}
    print(f"rPCC head pose on {root}/test ({len(sessions)} sessions), pose high-passed first:")
    print("| cut-off | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for cutoff in (0.0, 0.2, 0.5):
        vals = [np.mean([rpcc_pose(m, s, cutoff) for m, s in zip(motions, sessions)]) for motions in rows.values()]
        print(f"| {f'{cutoff} Hz' if cutoff else 'none'} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
