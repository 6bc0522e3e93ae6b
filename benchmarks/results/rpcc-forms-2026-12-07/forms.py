"""rPCC in five forms on the protocol's test sets, with the references that say which form
can rank a listener: the real listener's second take (same reactions), the real listener
redrawn (its persona's rules run again: a perfect model of the rules), and a still face.

    python benchmarks/results/rpcc-forms-2026-12-07/forms.py /tmp/afe3 models/af_forcing_v2 > forms.txt

Forms (PCC between the avatar's channel and the user's same channel, |real - generated|):
- session, mean then diff: per session the channel-mean PCC, then |difference| (af-eval-v4);
- session, channel-wise: per session the mean over channels of |difference|;
- pooled, mean then diff: PCCs over all frames of the set, channel-mean, then |difference|;
- pooled, channel-wise: PCCs over all frames, mean over channels of |difference| (af-eval-v5);
- DIM flattened: all frames and channels flattened into one vector, one PCC (the DIM code).
A form that ranks the redrawn listener (a perfect model of the rules) below the procedural
rules or a still face cannot say which listener is more human.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.core.motion import AF_MOTION_V1  # noqa: E402
from avatar_forcing_ros.corpus.dataset import load_dataset  # noqa: E402
from avatar_forcing_ros.generation import evaluation as ev  # noqa: E402


def forms(users, gens, reals, idx):
    u = [x[:len(g)][:, idx].astype(np.float64) for x, g in zip(users, gens)]
    r = [x[:len(g)][:, idx].astype(np.float64) for x, g in zip(reals, gens)]
    g = [x[:, idx].astype(np.float64) for x in gens]
    chan = [np.array([ev.pearson(a[:, c], b[:, c]) for c in range(len(idx))]) for a, b in zip(u, g)]
    chan_r = [np.array([ev.pearson(a[:, c], b[:, c]) for c in range(len(idx))]) for a, b in zip(u, r)]
    U, G, R = (np.concatenate(x) for x in (u, g, r))
    pg = np.array([ev.pearson(U[:, c], G[:, c]) for c in range(len(idx))])
    pr = np.array([ev.pearson(U[:, c], R[:, c]) for c in range(len(idx))])
    return {"session, mean then diff": np.mean([abs(a.mean() - b.mean()) for a, b in zip(chan_r, chan)]),
            "session, channel-wise": np.mean([np.abs(a - b).mean() for a, b in zip(chan_r, chan)]),
            "pooled, mean then diff": abs(pr.mean() - pg.mean()),
            "pooled, channel-wise (v5)": ev.pooled_rpcc(sum(ev.pcc_sums(a, b, c) for a, b, c in zip(u, g, r))),
            "DIM flattened": abs(ev.pearson(R.ravel(), U.ravel()) - ev.pearson(G.ravel(), U.ravel()))}


def main(root, checkpoint, guidance=3.0, mouth_temperature=0.25, context_noise=0.3):
    net = ev._load_net(checkpoint, 2)
    print(f"{checkpoint} at guidance {guidance}, mouth temperature {mouth_temperature}, context noise "
          f"{context_noise}; protocol corpora in {root}\n")
    for name in ev.RETAKEN:
        ss = ev.load_eval_sessions(Path(root) / name)
        takes = {k: {s.name: s.avatar_motion for s in load_dataset(Path(root) / f"{name}_{k}")}
                 for k in ("retake", "redrawn")}
        models = {"af_forcing_v2": ev.generate_batched(net, ss, 0, guidance, mouth_temperature=mouth_temperature,
                                                       context_noise=context_noise),
                  "procedural": ev.procedural_model(net.cfg.block_frames)["procedural"](ss, 0),
                  "real_second_take": [takes["retake"][s.arrays.name][:s.frames] for s in ss],
                  "real_redrawn": [takes["redrawn"][s.arrays.name][:s.frames] for s in ss],
                  "still_face": [np.tile(AF_MOTION_V1.neutral(), (s.frames, 1)) for s in ss]}
        users = [s.arrays.user_motion for s in ss]
        reals = [s.arrays.avatar_motion for s in ss]
        for part, idx in (("expression", ev.EXPRESSION), ("head pose", ev.POSE)):
            table = {m: forms(users, g, reals, idx) for m, g in models.items()}
            keys = list(next(iter(table.values())))
            print(f"## {name} ({len(ss)} sessions), rPCC {part} (lower is closer to the real listener)\n")
            print("| form | " + " | ".join(models) + " |")
            print("|---|" + "---|" * len(models))
            for k in keys:
                print(f"| {k} | " + " | ".join(f"{table[m][k]:.4f}" for m in models) + " |")
            print()


if __name__ == "__main__":
    main(*sys.argv[1:3])
