"""The user as the robot sees them: a corpus copy whose user motion went through perception.

    avatar-forcing perceive-corpus --data corpus/test --out corpus/test_perceived --max-sessions 30
    avatar-forcing measure-tracker --data corpus/test_perceived     # the tracker figures again

Training data holds the simulator's exact user motion; at run time the generator gets what
the perception node reads from a camera (mediapipe's face mesh): late by a frame or so, noisy,
calibrated against a running median, and with frames where no face is found. Here each
session's USER motion is drawn frame by frame on the photo portrait (render/portrait.py, the
shipped astronaut photo unless another is given) at 25 fps, and the very estimator the node
builds (pipeline.build_estimator with the node's parameters from config/avatar_forcing.yaml)
reads every image in time order with its frame time. The copy's ``user_motion`` and
``user_present`` are what it published: values and confidence. A frame with no face found is
what the node sends then too: confidence 0 and the last values decaying toward neutral
(``no_face_decay_s``, 0.5 s: over a few frames practically held). Everything else is the
source's; the simulator's user motion is kept beside it as ``user_motion_true.npy`` and
``user_present_true.npy`` (the loader ignores extra files), and ``dataset.json`` says what was
done under ``generator.perception``.

What this measures is the renderer and the tracker together: a photo warp is not a person
(a flattened head turns less than it is told, see render/portrait.py), so the gains of head
pose are partly the renderer's. Lag, noise, calibration offsets and dropouts are the tracker's.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..core.motion import AF_MOTION_V1
from .dataset import (FPS, FRAME_KEYS, SAMPLES_PER_FRAME, SEGMENT_KEYS, DatasetError, DyadicSession,
                      fresh_directory, read_json, write_index, load_dataset, save_session)

PERCEIVER = "af-perceived-v1"
TRUE_MOTION, TRUE_PRESENT = "user_motion_true.npy", "user_present_true.npy"
DEFAULT_SIZE = 256  # a face ~110 px wide: a webcam's 640x480 view of a user at about a metre
# channel groups the tracker figures are summarised over (and TrackerNoise draws per group)
GROUPS = {
    "pose": [n for n in AF_MOTION_V1.names if n.startswith("head_")],
    "gaze": ["gaze_yaw", "gaze_pitch"],
    "jaw": ["jawOpen"],
    "expression": [n for n in AF_MOTION_V1.names[8:] if n != "jawOpen"],
}


def node_perception_parameters() -> dict:
    """The perception node's parameters as the shipped config gives them (no ROS needed)."""
    from ..pipeline import load_node_parameters
    return load_node_parameters()["perception"]


class Perceiver:
    """Renders af-motion-v1 frames on the portrait and reads them back with the node's estimator.

    One renderer for all sessions (the photo's set-up is the slow part); a fresh estimator per
    session: a new user, auto-calibration and mediapipe's tracking start over."""

    def __init__(self, size: int = DEFAULT_SIZE, portrait: str | None = None, params: dict | None = None):
        import cv2
        cv2.setNumThreads(1)  # the build machines are shared; one frame at a time anyway
        from ..render.portrait import PortraitRenderer
        self.params = dict(params or node_perception_parameters())
        self.renderer = PortraitRenderer(image_path=portrait, width=size, height=size)
        self.size = int(size)
        # no user in view: the portrait's frame with the face area blanked would still hold a
        # face outline, so an empty mid-grey frame stands for the empty room
        self.empty = np.full((self.size, self.size, 3), 128, np.uint8)
        self.seconds = 0.0  # rendering + perception, for the frames-per-second figure
        self.frames = 0

    def settings(self) -> dict:
        return {"perceiver": PERCEIVER, "renderer": "portrait", "portrait": self.renderer.source,
                "size": [self.size, self.size], "fps": FPS, "estimator": "pipeline.build_estimator",
                "node_parameters": {k: self.params[k] for k in ("calibration_frames", "no_face_decay_s",
                                                                "motion_encoder")},
                "absent_user": "empty grey frame"}

    def perceive(self, motion: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, 28) motion, (T,) presence of the true user -> what perception publishes for each
        frame: values (T, 28) and confidence (T,)."""
        from ..pipeline import build_estimator
        motion = np.asarray(motion, np.float32)
        T = motion.shape[0]
        values = np.zeros((T, AF_MOTION_V1.dim), np.float32)
        confidence = np.zeros(T, np.float32)
        t0 = time.perf_counter()
        estimator = build_estimator(self.params)
        try:
            for t in range(T):
                rgb = self.renderer.render(motion[t]) if present[t] >= 0.5 else self.empty
                obs = estimator.estimate(rgb, t / FPS)
                values[t], confidence[t] = obs.values, obs.confidence
        finally:
            estimator.close()
        self.seconds += time.perf_counter() - t0
        self.frames += T
        return values, confidence

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _cut(session: DyadicSession, frames: int | None) -> DyadicSession:
    """The session's first ``frames`` frames (annotations cut to fit), or the session itself."""
    T = session.frames
    if not frames or frames >= T:
        return session
    n = int(frames)
    meta = dict(session.meta)
    for key in SEGMENT_KEYS:
        meta[key] = [[a, min(b, n)] for a, b in meta[key] if a < n]
    for key in FRAME_KEYS:
        meta[key] = [f for f in meta[key] if f < n]
    a = n * SAMPLES_PER_FRAME
    return DyadicSession(session.name, session.avatar_audio[:a], session.user_audio[:a],
                         session.avatar_motion[:n], session.user_motion[:n], session.user_present[:n],
                         session.avatar_viseme_targets[:n], meta)


def perceive_corpus(data, out, max_sessions: int | None = None, max_frames: int | None = None,
                    size: int = DEFAULT_SIZE, portrait: str | None = None, log=print) -> dict:
    """Write the perceived copy of dataset ``data`` at ``out`` (new or empty directory) and
    its tracker figures (``out/tracker_stats.json``). Returns {"settings", "frames", "seconds",
    "fps", "stats"}."""
    if max_frames is not None and max_frames < FPS:
        raise ValueError(f"max_frames must be at least {FPS} (a second), got {max_frames}")
    index = read_json(Path(data) / "dataset.json")
    sessions = load_dataset(data)[:max_sessions]
    root = fresh_directory(out)
    perceiver = Perceiver(size, portrait)
    settings = perceiver.settings()
    trues, seen = [], []
    for k, s in enumerate(sessions):
        s = _cut(s, max_frames)
        values, confidence = perceiver.perceive(s.user_motion, s.user_present)
        meta = {**s.meta, "perception": settings}
        copy = DyadicSession(s.name, s.avatar_audio, s.user_audio, s.avatar_motion, values, confidence,
                             s.avatar_viseme_targets, meta)
        save_session(root / s.name, copy)
        np.save(root / s.name / TRUE_MOTION, np.ascontiguousarray(s.user_motion, np.float32))
        np.save(root / s.name / TRUE_PRESENT, np.ascontiguousarray(s.user_present, np.float32))
        trues.append((s.user_motion, s.user_present))
        seen.append((values, confidence))
        if log:
            log(f"{s.name}: {s.frames} frames, {perceiver.fps:.1f} frames/s so far ({k + 1}/{len(sessions)})")
    config = {"source": "perceived", "from": str(data), "from_generator": index.get("generator", {}),
              "n_sessions": len(sessions), "max_frames": max_frames, "perception": settings}
    write_index(root, [s.name for s in sessions], config)
    stats = tracker_stats(trues, seen)
    stats["speed"] = {"frames": perceiver.frames, "seconds": round(perceiver.seconds, 2),
                      "frames_per_second": round(perceiver.fps, 1), "threads": 1}
    (root / "tracker_stats.json").write_text(json.dumps(stats, indent=1))
    return {"settings": settings, "frames": perceiver.frames, "seconds": perceiver.seconds,
            "fps": perceiver.fps, "stats": stats}


def load_true_user(directory, session_name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The simulator's user motion and presence kept in a perceived copy, or None (not one)."""
    d = Path(directory) / session_name
    if not (d / TRUE_MOTION).is_file():
        return None
    return np.load(d / TRUE_MOTION).astype(np.float32), np.load(d / TRUE_PRESENT).astype(np.float32)


# --- the tracker's figures ----------------------------------------------------------------
def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a boolean sequence."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    d = np.diff(m)
    return list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))


def _lagged(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(x[t], y[t + lag]) pairs."""
    return (x[: len(x) - lag], y[lag:]) if lag >= 0 else (x[-lag:], y[: len(y) + lag])


def _spread(values, within) -> float:
    """Spread of a figure over channels (1.4826 MAD: robust) and over sessions (median sd)."""
    v = np.asarray(values, np.float64)
    mad = 1.4826 * np.median(np.abs(v - np.median(v)))
    return float(np.hypot(mad, np.median(within)))


def tracker_stats(trues: list, seen: list, max_lag: int = 6, min_std: float = 0.01,
                  min_corr: float = 0.7) -> dict:
    """Perceived vs true user motion, per channel and per group (GROUPS).

    trues / seen: per session (motion (T, 28), presence (T,)). A frame is a dropout when the
    true user is there and perception found no face (confidence 0). Per channel: ``lag`` (frames
    of the largest cross-correlation of perceived after true, correlations averaged over
    sessions), ``corr`` there; with perceived[t + lag] = bias + gain * true[t] fitted over the
    frames with a face: ``gain``, ``bias`` (pooled fit), ``gain_sd``/``bias_sd`` (spread of the
    per-session fits: calibration differs per session), ``noise_std`` (residual std) and
    ``noise_ac1`` (lag-1 autocorrelation of the residual: 0 white, near 1 slow wander).
    Channels whose true motion hardly moves (std < min_std) get no gain (the fit would be noise).
    The overall and group ``lag`` is the median over channels with corr >= min_corr."""
    from ..core.correlation import lagged_correlation
    lags = np.arange(-max_lag, max_lag + 1)
    per_channel = {}
    found_all = []
    for c, name in enumerate(AF_MOTION_V1.names):
        corr = np.zeros(len(lags))
        weight = 0
        for (m, p), (v, conf) in zip(trues, seen):
            x, y = m[:, c].astype(np.float64), v[:, c].astype(np.float64)
            if x.std() < 1e-6 or y.std() < 1e-6:
                continue
            corr += len(x) * lagged_correlation(x, y, lags)
            weight += len(x)
        corr = corr / weight if weight else corr
        lag = int(lags[int(np.argmax(corr))]) if weight else 0
        xs, ys, fits, res_ac = [], [], [], []
        for (m, p), (v, conf) in zip(trues, seen):
            x, y = _lagged(m[:, c].astype(np.float64), v[:, c].astype(np.float64), lag)
            ok = _lagged((p >= 0.5).astype(float), (conf > 0).astype(float), lag)
            keep = (ok[0] > 0) & (ok[1] > 0)
            x, y = x[keep], y[keep]
            if len(x) < 10:
                continue
            xs.append(x)
            ys.append(y)
            if x.std() >= min_std:
                g, b = np.polyfit(x, y, 1)
            else:
                g, b = 1.0, float(np.mean(y - x))
            fits.append((g, b))
            r = y - (g * x + b)
            if r.std() > 1e-9:
                res_ac.append(float(np.corrcoef(r[:-1], r[1:])[0, 1]))
        x, y = np.concatenate(xs), np.concatenate(ys)
        moving = x.std() >= min_std
        g, b = np.polyfit(x, y, 1) if moving else (1.0, float(np.mean(y - x)))
        fits = np.array(fits)
        per_channel[name] = {
            "lag": lag, "corr": round(float(corr.max()), 4) if weight else None,
            "true_std": round(float(x.std()), 4), "seen_std": round(float(y.std()), 4),
            "gain": round(float(g), 4) if moving else None,
            "gain_sd": round(float(fits[:, 0].std()), 4) if moving else None,
            "bias": round(float(b), 4), "bias_sd": round(float(fits[:, 1].std()), 4),
            "noise_std": round(float((y - (g * x + b)).std()), 4),
            "noise_ac1": round(float(np.mean(res_ac)), 3) if res_ac else None}
    for (m, p), (v, conf) in zip(trues, seen):
        found_all.append((conf[p >= 0.5] > 0))
    found = np.concatenate(found_all)
    lost_runs = [r for f in found_all for r in _runs(~f)]
    present = np.concatenate([conf[conf > 0] for _, conf in seen])
    groups = {}
    for gname, names in GROUPS.items():
        rows = [per_channel[n] for n in names]
        gains = [r for r in rows if r["gain"] is not None]
        tracked = [r for r in rows if r["corr"] is not None and r["corr"] >= min_corr]
        groups[gname] = {
            "channels": len(rows), "moving_channels": len(gains), "tracked_channels": len(tracked),
            # the lag of the channels perception follows well: on the others the cross-correlation
            # peak of a slow or cross-talking channel wanders
            "lag": int(np.median([r["lag"] for r in tracked])) if tracked else 0,
            "corr": round(float(np.median([r["corr"] for r in rows if r["corr"] is not None] or [0.0])), 3),
            # medians and robust spreads: a few expression channels are mostly cross-talk
            "gain": round(float(np.median([r["gain"] for r in gains])), 3) if gains else 1.0,
            "gain_sd": round(_spread([r["gain"] for r in gains], [r["gain_sd"] for r in gains]), 3) if gains else 0.0,
            "bias": round(float(np.median([r["bias"] for r in rows])), 4),
            "bias_sd": round(_spread([r["bias"] for r in rows], [r["bias_sd"] for r in rows]), 4),
            "noise_std": round(float(np.median([r["noise_std"] for r in rows])), 4),
            # no residual to correlate (an exact reading): 0, not the NaN of an empty median
            "noise_ac1": round(float(np.median([r["noise_ac1"] for r in rows if r["noise_ac1"] is not None]
                                               or [0.0])), 3)}
    tracked = [r["lag"] for r in per_channel.values() if r["corr"] is not None and r["corr"] >= min_corr]
    return {"sessions": len(trues), "frames": int(sum(len(m) for m, _ in trues)),
            "lag": int(np.median(tracked)) if tracked else 0, "lag_channels": len(tracked),
            "dropout_fraction": round(float(1.0 - found.mean()), 5) if found.size else 0.0,
            "dropouts": len(lost_runs),
            "dropout_mean_frames": round(float(np.mean(lost_runs)), 2) if lost_runs else 0.0,
            "dropout_median_frames": float(np.median(lost_runs)) if lost_runs else 0.0,
            "confidence_when_found": round(float(np.median(present)), 4) if present.size else 0.0,
            "groups": groups, "channels": per_channel, "crosstalk": fit_crosstalk(trues, seen)}


def fit_crosstalk(trues: list, seen: list, ridge: float = 1e-3) -> dict:
    """Every perceived channel read linearly from all 28 true channels (around neutral), over
    the frames with a face: perceived = bias + weights @ (true - neutral) + residual. A channel's
    own gain misses what the tracker mixes in from the others: on the portrait the head's pitch
    follows its other pose channels, mouthFrown the mouth, browDown the brows (R² of the own
    gain 0.00-0.15, of all channels 0.6-0.8; benchmarks/results/tracker-channels-2026-12-07).
    Ridge-regularised (``ridge`` times the mean variance of the true channels) because the
    true channels move together (the two smiles). Per channel: ``r2`` of the fit, the
    residual's ``noise_std`` and ``noise_ac1`` (per session, averaged)."""
    neutral = AF_MOTION_V1.neutral().astype(np.float64)
    xs, ys = [], []
    for (m, p), (v, conf) in zip(trues, seen):
        keep = (np.asarray(p) >= 0.5) & (np.asarray(conf) > 0)
        if keep.sum() >= 10:
            xs.append(np.asarray(m, np.float64)[keep] - neutral)
            ys.append(np.asarray(v, np.float64)[keep])
    if not xs:
        raise ValueError("no frames with a face to fit the tracker's cross-talk on")
    x, y = np.concatenate(xs), np.concatenate(ys)
    D = x.shape[1]
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    gram = xc.T @ xc
    lam = ridge * np.trace(gram) / D
    weights = np.linalg.solve(gram + lam * np.eye(D), xc.T @ yc).T  # (perceived, true)
    bias = ym - weights @ xm
    resid = y - (x @ weights.T + bias)
    r2 = 1.0 - (resid ** 2).sum(0) / np.maximum((yc ** 2).sum(0), 1e-12)
    residuals = [b - (a @ weights.T + bias) for a, b in zip(xs, ys)]  # per session: smoothness is within one
    ac1 = []
    for c in range(D):
        vals = [float(np.corrcoef(r[:-1, c], r[1:, c])[0, 1]) for r in residuals if r[:, c].std() > 1e-9]
        ac1.append(float(np.mean(vals)) if vals else 0.0)
    return {"ridge": ridge, "weights": np.round(weights, 5).tolist(), "bias": np.round(bias, 5).tolist(),
            "noise_std": np.round(resid.std(0), 5).tolist(), "noise_ac1": np.round(ac1, 4).tolist(),
            "r2": np.round(r2, 4).tolist()}


def stats_of_copy(directory) -> dict:
    """tracker_stats of a perceived copy (its true user motion is stored beside it)."""
    trues, seen = [], []
    for s in load_dataset(directory):
        true = load_true_user(directory, s.name)
        if true is None:
            raise DatasetError(f"{directory}/{s.name}: no {TRUE_MOTION}: not a perceived copy")
        trues.append(true)
        seen.append((s.user_motion, s.user_present))
    return tracker_stats(trues, seen)


def stats_table(stats: dict) -> str:
    lines = [f"{stats['sessions']} sessions, {stats['frames']} frames; lag {stats['lag']} frames (median of "
             f"{stats['lag_channels']} well-tracked channels); no face in "
             f"{100 * stats['dropout_fraction']:.2f} % of the frames ({stats['dropouts']} dropouts, mean "
             f"{stats['dropout_mean_frames']} frames); confidence when found {stats['confidence_when_found']}",
             f"{'group':<11}{'lag':>4}{'corr':>7}{'gain':>7}{'±':>6}{'bias':>8}{'±':>7}{'noise':>8}{'ac1':>6}"]
    for name, g in stats["groups"].items():
        lines.append(f"{name:<11}{g['lag']:>4}{g['corr'] or 0:>7.3f}{g['gain']:>7.3f}{g['gain_sd']:>6.3f}"
                     f"{g['bias']:>8.4f}{g['bias_sd']:>7.4f}{g['noise_std']:>8.4f}{g['noise_ac1']:>6.2f}")
    lines.append(f"{'channel':<18}{'lag':>4}{'corr':>7}{'gain':>7}{'bias':>8}{'noise':>8}{'ac1':>6}")
    for name, c in stats["channels"].items():
        lines.append(f"{name:<18}{c['lag']:>4}{c['corr'] or 0:>7.3f}"
                     f"{c['gain'] if c['gain'] is not None else float('nan'):>7.3f}{c['bias']:>8.4f}"
                     f"{c['noise_std']:>8.4f}{c['noise_ac1'] if c['noise_ac1'] is not None else float('nan'):>6.2f}")
    return "\n".join(lines)


# --- the commands ---------------------------------------------------------------------------
def main_perceive(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing perceive-corpus",
                                description="Copy a dyadic corpus with the user's motion as perception reads it "
                                            "from the rendered portrait.")
    p.add_argument("--data", required=True, help="af-dyadic-v1 dataset to copy")
    p.add_argument("--out", required=True, help="directory of the copy (new or empty)")
    p.add_argument("--max-sessions", type=int, default=None)
    p.add_argument("--max-frames", type=int, default=None, help="cut sessions to this many frames")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="rendered frame width and height (px)")
    p.add_argument("--portrait", default=None, help="photo of the user (default: the shipped astronaut)")
    p.add_argument("--stats", default=None, help="also write the tracker figures here (JSON); they are "
                                                 "always written to OUT/tracker_stats.json")
    a = p.parse_args(argv)
    try:
        r = perceive_corpus(a.data, a.out, a.max_sessions, a.max_frames, a.size, a.portrait)
    except (DatasetError, ValueError, FileNotFoundError) as e:
        print(f"avatar-forcing perceive-corpus: {e}")
        return 1
    if a.stats:
        Path(a.stats).write_text(json.dumps(r["stats"], indent=1))
    print(stats_table(r["stats"]))
    print(f"perceived {r['frames']} frames in {r['seconds']:.1f} s: {r['fps']:.1f} frames/s "
          f"(render + perception, one thread) -> {a.out}")
    return 0


def main_measure(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing measure-tracker",
                                description="The tracker's figures (lag, gain, bias, noise, dropouts) of a "
                                            "perceived corpus copy.")
    p.add_argument("--data", required=True, help="a copy made by perceive-corpus")
    p.add_argument("--json", default=None, help="write the figures here")
    a = p.parse_args(argv)
    try:
        stats = stats_of_copy(a.data)
    except DatasetError as e:
        print(f"avatar-forcing measure-tracker: {e}")
        return 1
    if a.json:
        Path(a.json).write_text(json.dumps(stats, indent=1))
    print(stats_table(stats))
    return 0
