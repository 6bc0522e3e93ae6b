"""Lip sync and listening through the whole pipeline, on conversations in voices of other
synthesizers, as a robot would record and replay them.

    python benchmarks/conversation_replay.py --corpus /tmp/afe3/test_other --sessions 10 \
        --model default --model models/af_forcing_v1/model.onnx --model procedural

For each of the first N sessions of a protocol corpus (test_other: flite and festival voice both
the robot and the user): a bag as the robot records it, the robot's speech and the user's
microphone in 20 ms messages and the user's camera at 25 fps (the session's user motion drawn
on the photo portrait, 256 px, the renderer of the protocol's test_perceived set); then the
replay (`avatar-forcing replay`: perception, generator and renderer stages in bag time, the
shipped parameters) with each model. The avatar's face motion and the speech it was presented
with are read back from the output bag and scored with the protocol's per-session metrics
(generation/evaluation.py): jawOpen against the envelope of that speech within the robot's
turns, mean jawOpen there, nods after the user's nods against random moments, and the
smile reaction. Each output
frame is placed in the session by matching the speech it carries against the session's audio,
so the alignment is exact whatever the delays.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avatar_forcing_ros.core.audio import SAMPLE_RATE, encode_s16le
from avatar_forcing_ros.corpus.dataset import load_session
from avatar_forcing_ros.corpus.perceived import Perceiver
from avatar_forcing_ros.generation import evaluation as E
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.replay import replay

CHUNK = 320
HOP = SAMPLE_RATE // 25
T0 = 100.0  # bag time of the session's first sample
KEYS = ("lip_env_corr", "jaw_speaking", "user_nod_rate", "user_nod_chance", "smile_react_corr")


def session_bag(path: Path, session, perceiver: Perceiver) -> None:
    events = []
    for t in range(session.frames):
        present = session.user_present[t] >= 0.5
        rgb = perceiver.renderer.render(session.user_motion[t]) if present else perceiver.empty
        events.append((T0 + t / 25, bags.topic("camera"), rgb))
    n = min(session.avatar_audio.size, session.user_audio.size)
    for k in range(n // CHUNK):
        t = T0 + k * CHUNK / SAMPLE_RATE  # a chunk's stamp is its first sample's time
        events.append((t, bags.topic("user_audio"), session.user_audio[k * CHUNK:(k + 1) * CHUNK]))
        events.append((t, bags.topic("speech"), session.avatar_audio[k * CHUNK:(k + 1) * CHUNK]))
    events.sort(key=lambda e: e[0])
    with bags.BagWriter(path) as w:
        for t, topic, data in events:
            msg = bags.image_msg(data, t, "camera") if data.ndim == 3 else bags.audio_msg(encode_s16le(data), t)
            w.write(topic, bags.t_to_ns(t + 0.02 if data.ndim == 1 else t), msg)  # logged on arrival


def read_output(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """The avatar's motion frames and the speech presented with each, in order."""
    motion, speech = [], []
    account = bags.BagAccount()
    for m in bags.read_bag(path, account, topics=[bags.topic("avatar_motion"), bags.topic("avatar_audio")]):
        if m.topic == bags.topic("avatar_motion"):
            motion.append(np.asarray(m.msg.values, np.float32))
        else:
            speech.append(np.frombuffer(bytes(m.msg.audio.data), "<i2").astype(np.float32) / 32768.0)
    return np.stack(motion), speech


def placed(motion: np.ndarray, speech: list[np.ndarray], audio: np.ndarray, frames: int) -> np.ndarray:
    """(frames, D): output frame i at the session frame whose audio it presented. The offset is
    found where the loudest 2 s of the presented speech match the session's speech; a session
    in which the robot never speaks keeps offset 0 (its lip sync is undefined anyway)."""
    out = np.concatenate(speech)
    window = 50 * HOP
    energy = np.convolve(out ** 2, np.ones(window), "valid")[::HOP] if out.size > window else np.zeros(1)
    start = int(np.argmax(energy)) * HOP
    probe = out[start:start + window]
    offset = 0
    if np.linalg.norm(probe) > 0:
        best = -1.0
        for shift in range(-10, 11):  # output sample j is session sample j + shift * HOP
            a = start + shift * HOP
            if a < 0 or a + probe.size > audio.size:
                continue
            seg = audio[a:a + probe.size]
            score = float(np.dot(seg, probe) / (np.linalg.norm(seg) * np.linalg.norm(probe) + 1e-9))
            if score > best:
                best, offset = score, shift
        if best < 0.99:
            raise RuntimeError(f"the presented speech matches the session's at no offset (best {best:.3f})")
    idx = np.clip(np.arange(frames) - offset, 0, len(motion) - 1)
    return motion[idx]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus", required=True, help="a protocol corpus directory (e.g. <root>/test_other)")
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--model", action="append", help="generator.model values (repeatable; default: default)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    models = a.model or ["default"]
    import torch
    torch.set_num_threads(a.threads)
    evals = E.load_eval_sessions(a.corpus, a.sessions)
    perceiver = Perceiver()
    per_model: dict[str, list[np.ndarray]] = {m: [] for m in models}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for ev in evals:
            name = ev.arrays.name  # the waveforms of both speakers are read from the session itself
            session = load_session(Path(a.corpus) / name)
            bag = Path(tmp) / f"{name}.in"
            session_bag(bag, session, perceiver)
            for i, m in enumerate(models):
                out = Path(tmp) / f"{name}.{i}.out"
                replay(bag, out, overrides=[f"generator.model={m}", f"generator.torch_threads={a.threads}"],
                       images="none")
                motion, speech = read_output(out)
                per_model[m].append(placed(motion, speech, session.avatar_audio, ev.frames))
            print(f"{name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    clusters = E.Clusters.fit([ev.arrays.avatar_motion for ev in evals])
    rows = {"real (corpus)": E.evaluate_motions({0: [ev.arrays.avatar_motion for ev in evals]}, evals, 2, clusters)}
    rows.update({m: E.evaluate_motions({0: motions}, evals, 2, clusters) for m, motions in per_model.items()})
    print(f"\n{len(evals)} sessions of {a.corpus}, replayed (the user from the camera, perception on):\n")
    print("| model | " + " | ".join(KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))
    for label, r in rows.items():
        print(f"| {label} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main()
