"""Looking at a session: a timeline figure and a metrics report, from bags or a dataset session.

The figure shows, on one time axis: both voices (waveforms), who is speaking, and the motion
that matters in a conversation for the user and the avatar: mouth, smile, head nods and turns.
Sources: one or more bags (e.g. the recorded input and its replay, whose streams are merged)
or a session directory of a dyadic dataset. Metrics are the evaluation's (evaluation.py):
reactiveness always, lip sync only where viseme ground truth exists (a dataset session).

    avatar-forcing timeline session_bag replayed_bag --out timeline.png
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import bags
from ..core.audio import SAMPLE_RATE, AudioFormat
from ..core.motion import AF_MOTION_V1 as M
from ..core.messages import audio_payload, read_face_motion, stamp_to_s
from .recordings import FPS, HOP, AudioTrack, FaceTrack, annotate

MOTION_TIMEOUT_S = 0.5


@dataclass
class Timeline:
    user_audio: np.ndarray                 # (T*HOP,) 16 kHz
    avatar_audio: np.ndarray
    user_motion: np.ndarray | None         # (T, D) or None when not in the sources
    avatar_motion: np.ndarray | None
    user_present: np.ndarray | None
    visemes: np.ndarray | None = None      # (T, 3) lip-sync ground truth when known
    events: dict = field(default_factory=dict)
    title: str = ""
    notes: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.user_audio.size // HOP


def from_bags(paths, namespace: str = "") -> Timeline:
    """Merge the streams of bags: for each stream, its preferred topic in the first bag that has it."""
    t = {k: bags.topic(k, namespace) for k in bags.TOPICS}
    # avatar voice: what it played (avatar/audio, with the frames) else the speech input
    wanted = {"user audio": [t["user_audio"]], "avatar audio": [t["avatar_audio"], t["speech"]],
              "user motion": [t["user_motion"]], "avatar motion": [t["avatar_motion"]]}
    streams: dict[str, list] = {k: [] for k in wanted}
    chosen: dict[str, str] = {}
    notes = []
    needed = {c for cs in wanted.values() for c in cs}
    per_bag = []
    for path in paths:
        account = bags.BagAccount()
        per_bag.append((path, list(bags.read_bag(path, account, topics=needed))))  # images are not decoded
        notes += [f"{path}: {p}" for p in account.problems]
    for name, candidates in wanted.items():
        # by topic preference first, then bag order
        found = next(((path, c, msgs) for c in candidates for path, msgs in per_bag
                      if any(m.topic == c for m in msgs)), None)
        if found is not None:
            path, topic, msgs = found
            chosen[name] = f"{path}:{topic}"
            streams[name] = [m for m in msgs if m.topic == topic]
    times = [_time(m) for ms in streams.values() for m in ms]
    if not times:
        raise ValueError(f"none of {', '.join(map(str, paths))} has audio or face motion of the pipeline")
    t0, t1 = min(times), max(times)
    n = max(int((t1 - t0) * FPS), 1)
    audio = {}
    for name in ("user audio", "avatar audio"):
        track = AudioTrack(AudioFormat())
        for m in streams[name]:
            track.add(_time(m) - t0, audio_payload(m.msg))
        audio[name] = track.render(n * HOP)
    motion = {}
    for name in ("user motion", "avatar motion"):
        if not streams[name]:
            motion[name] = (None, None)
            notes.append(f"no {name} in the sources")
            continue
        track = FaceTrack()
        for m in streams[name]:
            try:
                values, conf, _ = read_face_motion(m.msg, M)
            except ValueError as exc:
                notes.append(f"{name}: skipped a message ({exc})")
                continue
            track.add(_time(m), values, conf)
        motion[name] = track.sample(t0, n, MOTION_TIMEOUT_S)
    return Timeline(audio["user audio"], audio["avatar audio"], motion["user motion"][0], motion["avatar motion"][0],
                    motion["user motion"][1], None, {}, " + ".join(str(Path(p).name) for p in paths),
                    notes + [f"{k}: {v}" for k, v in chosen.items()])


def _time(m) -> float:
    """Stamped streams (motion, the avatar's played audio) by stamp; inputs by arrival."""
    if m.msgtype == bags.FACE_MOTION or m.topic.endswith("/avatar/audio"):
        s = stamp_to_s(m.msg.header.stamp)
        if s > 0:
            return s
    return m.t_ns / 1e9


def from_session(directory) -> Timeline:
    """A session directory of an af-dyadic-v1 dataset (with its ground truth)."""
    import soundfile as sf

    d = Path(directory)
    load = lambda name: np.load(d / f"{name}.npy", allow_pickle=False)  # noqa: E731
    meta = json.loads((d / "meta.json").read_text())
    ua, _ = sf.read(d / "user_audio.wav", dtype="float32")
    aa, _ = sf.read(d / "avatar_audio.wav", dtype="float32")
    vis = load("avatar_viseme_targets") if (d / "avatar_viseme_targets.npy").is_file() else None
    events = {k: meta.get(k, []) for k in ("avatar_speaking", "user_speaking", "backchannel", "user_smiles")}
    return Timeline(ua, aa, load("user_motion"), load("avatar_motion"), load("user_present"), vis, events, d.name)


def metrics(tl: Timeline) -> dict:
    """The evaluation's per-session metrics where their ground truth exists."""
    from ..generation.evaluation import EvalSession, session_metrics

    if tl.avatar_motion is None or tl.user_motion is None:
        return {"note": "needs both the user's and the avatar's face motion"}
    events = tl.events or annotate(tl.avatar_audio, tl.user_audio, tl.avatar_motion, tl.user_motion,
                                   tl.user_present)
    visemes = tl.visemes if tl.visemes is not None else np.zeros((tl.frames, 3), np.float32)
    session = EvalSession(SimpleNamespace(user_motion=tl.user_motion, frames=tl.frames), visemes,
                          list(events.get("backchannel", [])), list(events.get("avatar_speaking", [])))
    out = {k: (float(v) if isinstance(v, (float, np.floating)) else v)
           for k, v in session_metrics(tl.avatar_motion, session).items()}
    if tl.visemes is None:
        for k in ("lip_sync_corr", "jaw_corr", "av_offset_frames"):
            out.pop(k, None)
        # not a metric of the evaluation: how the jaw follows the avatar's own voice
        env = np.sqrt(np.mean(tl.avatar_audio[:tl.frames * HOP].reshape(tl.frames, HOP) ** 2, axis=1))
        jaw = tl.avatar_motion[:, M.index("jawOpen")]
        if env.std() > 0 and jaw.std() > 0:
            out["jaw_vs_voice_envelope_corr"] = float(np.corrcoef(env, jaw)[0, 1])
    out["frames"] = tl.frames
    out["avatar_speaking_s"] = sum(e - s for s, e in events.get("avatar_speaking", [])) / FPS
    out["user_speaking_s"] = sum(e - s for s, e in events.get("user_speaking", [])) / FPS
    tl.events = events
    return out


def plot(tl: Timeline, out, report: dict | None = None):
    """Write the timeline figure (PNG) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = tl.frames
    t = np.arange(n) / FPS
    ta = np.arange(n * HOP) / SAMPLE_RATE
    events = tl.events or (annotate(tl.avatar_audio, tl.user_audio, tl.avatar_motion, tl.user_motion, tl.user_present)
                           if tl.avatar_motion is not None and tl.user_motion is not None else {})
    colours = {"user": "#1f77b4", "avatar": "#d95f02", "truth": "#555555"}
    rows = [("voices", None), ("who speaks", None), ("mouth open (jawOpen)", ["jawOpen"]),
            ("smile", ["mouthSmileLeft", "mouthSmileRight"]), ("head nod (pitch, rad)", ["head_pitch"]),
            ("head turn (yaw, rad)", ["head_yaw"])]
    fig, axes = plt.subplots(len(rows), 1, figsize=(14, 11), sharex=True,
                             gridspec_kw={"height_ratios": [2, 0.7, 1.3, 1.3, 1.3, 1.3]})
    plt.rcParams.update({"font.size": 11})
    step = max(1, ta.size // 20000)  # enough points for the eye, few for the file
    ax = axes[0]
    ax.plot(ta[::step], tl.user_audio[::step] + 1.0, color=colours["user"], lw=0.6, label="user voice")
    ax.plot(ta[::step], tl.avatar_audio[::step] - 1.0, color=colours["avatar"], lw=0.6, label="avatar voice")
    ax.set_yticks([1, -1], ["user", "avatar"])
    ax.set_ylim(-2.1, 2.1)
    ax = axes[1]
    for y, key, who in ((1, "user_speaking", "user"), (0, "avatar_speaking", "avatar")):
        for s, e in events.get(key, []):
            ax.axvspan(s / FPS, e / FPS, ymin=y / 2 + 0.05, ymax=y / 2 + 0.45, color=colours[who], alpha=0.8)
    for f in events.get("backchannel", []):
        ax.axvline(f / FPS, color="black", lw=1.5, ls=":")
    ax.set_yticks([0.25, 0.75], ["avatar speaks", "user speaks"])
    ax.set_ylim(0, 1)
    for ax, (label, channels) in zip(axes[2:], rows[2:]):
        for who, motion in (("user", tl.user_motion), ("avatar", tl.avatar_motion)):
            if motion is not None:
                ax.plot(t, motion[:, M.indices(channels)].mean(axis=1), color=colours[who], lw=1.5, label=who)
        if channels == ["jawOpen"] and tl.visemes is not None:
            ax.plot(t, tl.visemes[:n, 0], color=colours["truth"], lw=1, ls="--", label="lip-sync target")
        for s, e in events.get("avatar_speaking", []):  # speaking vs listening at a glance
            ax.axvspan(s / FPS, e / FPS, color=colours["avatar"], alpha=0.08)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", ncol=2, fontsize=10)
    axes[2].legend(loc="upper right", ncol=3, fontsize=10)
    axes[-1].set_xlabel("time (s)")
    title = f"{tl.title}: {n / FPS:.1f} s"
    if report:
        keys = [k for k in ("lip_sync_corr", "jaw_vs_voice_envelope_corr", "smile_react_corr",
                            "backchannel_response_rate", "chance_response_rate") if k in report]
        title += "\n" + ",  ".join(f"{k} {report[k]:.2f}" for k in keys if isinstance(report[k], float)
                                   and math.isfinite(report[k]))
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_report(tl: Timeline, report: dict, path) -> Path:
    path = Path(path)
    lines = [f"# Session {tl.title}", "", f"- frames: {tl.frames} ({tl.frames / FPS:.1f} s at {FPS} fps)"]
    lines += [f"- note: {n}" for n in tl.notes]
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in report.items()]
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"metrics": report, "notes": tl.notes}, indent=1))
    return path


def main_timeline(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing timeline", description=__doc__.split("\n")[0])
    p.add_argument("sources", nargs="+", help="bags (streams merged, first bag wins) or one dataset session directory")
    p.add_argument("--out", default="timeline.png", help="figure to write (PNG); the report goes beside it (.md, .json)")
    p.add_argument("--namespace", default="")
    a = p.parse_args(argv)
    try:
        first = Path(a.sources[0])
        tl = from_session(first) if (first / "meta.json").is_file() else from_bags(a.sources, a.namespace)
        report = metrics(tl)
    except (ValueError, bags.BagError, FileNotFoundError) as exc:
        print(f"avatar-forcing timeline: {exc}")
        return 1
    fig = plot(tl, a.out, report)
    md = write_report(tl, report, Path(a.out).with_suffix(".md"))
    print(md.read_text())
    print(f"wrote {fig}, {md} and {md.with_suffix('.json')}")
    return 0
