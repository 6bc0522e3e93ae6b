"""Evaluation of motion models on a held-out dyadic dataset.

    avatar-forcing evaluate --data corpus/test --checkpoint models/af_forcing_v1 --out report

Metrics (all on af-motion-v1 at 25 fps):
- lip sync: Pearson correlation of the generated mouth coefficients (jawOpen, mouthFunnel,
  mouthPucker) with the phoneme-derived viseme targets, and the audio-visual offset in frames
  (the lag of the largest correlation; > 0 means the mouth is late).
- reactiveness: largest lagged correlation (lags 0..1 s) of the user's smile with the avatar's
  smile and of the user's head-pitch velocity with the avatar's; the rate of nods in the
  second after annotated back-channel moments, beside the rate at random moments (chance).
- diversity: std across sampling seeds for the same inputs; std across sessions of the mean.
- Fréchet distance between Gaussian fits of motion-window statistics (per-channel mean, std,
  mean absolute velocity over 1 s windows) of generated and real motion.
Models side by side: the learned model (streaming), the procedural baseline, the same network
sampled non-causally over a full window, and the learned model after DPO when given.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import linalg

from ..core.motion import AF_MOTION_V1
from ..core.motion_model import BlockConditions, MotionModel

log = logging.getLogger("avatar_forcing.evaluate")

MOUTH = ("jawOpen", "mouthFunnel", "mouthPucker")
JAW = AF_MOTION_V1.index("jawOpen")
PITCH = AF_MOTION_V1.index("head_pitch")
SMILE = AF_MOTION_V1.indices(["mouthSmileLeft", "mouthSmileRight"])


# --- metric primitives ---------------------------------------------------------------------
def pearson(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def lagged_correlation(x, y, lags) -> np.ndarray:
    """corr(x[t], y[t + lag]) for each lag: y responding to x after ``lag`` frames."""
    x, y = np.asarray(x), np.asarray(y)
    out = []
    for lag in lags:
        if lag >= 0:
            a, b = x[: len(x) - lag], y[lag:]
        else:
            a, b = x[-lag:], y[: len(y) + lag]
        out.append(pearson(a, b) if len(a) > 2 else 0.0)
    return np.array(out)


def best_lag(x, y, max_lag: int, min_lag: int | None = None) -> tuple[int, float]:
    """(lag, correlation) at the largest lagged correlation of y after x."""
    lags = np.arange(-max_lag if min_lag is None else min_lag, max_lag + 1)
    c = lagged_correlation(x, y, lags)
    i = int(np.argmax(c))
    return int(lags[i]), float(c[i])


def nod_detected(pitch: np.ndarray, start: int, frames: int, threshold: float) -> bool:
    """A nod: within ``frames`` frames from ``start`` the head pitch dips and comes back up,
    the dip deeper than ``threshold`` radians below the lower of the highest points before
    and after it (pitch > 0 is nose up). Slow drift, which never comes back, is no nod."""
    seg = np.asarray(pitch[start:start + frames], np.float64)
    if seg.size < 3:
        return False
    before = np.maximum.accumulate(seg)
    after = np.maximum.accumulate(seg[::-1])[::-1]
    return float((np.minimum(before, after) - seg).max()) > threshold


def response_rate(pitch, moments, frames: int = 25, threshold: float = 0.05) -> float:
    moments = [int(m) for m in moments if 0 <= m < len(pitch) - 1]
    if not moments:
        return float("nan")
    return float(np.mean([nod_detected(pitch, m, frames, threshold) for m in moments]))


def window_features(motion: np.ndarray, window: int = 25, stride: int = 12) -> np.ndarray:
    """(n_windows, 3D): per-channel mean, std and mean absolute velocity of each window."""
    feats = []
    for s in range(0, len(motion) - window + 1, stride):
        w = motion[s:s + window]
        feats.append(np.concatenate([w.mean(0), w.std(0), np.abs(np.diff(w, axis=0)).mean(0)]))
    return np.array(feats, dtype=np.float64)


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature vectors."""
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    ca = np.cov(feats_a, rowvar=False) + eps * np.eye(feats_a.shape[1])
    cb = np.cov(feats_b, rowvar=False) + eps * np.eye(feats_b.shape[1])
    covmean = linalg.sqrtm(ca @ cb)
    if np.iscomplexobj(covmean):
        covmean = covmean.real  # numerical noise of sqrtm on near-singular products
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2.0 * covmean))


# --- sessions and generation ----------------------------------------------------------------
@dataclass
class EvalSession:
    arrays: "object"               # forcing.train.SessionArrays (features + real motion)
    visemes: np.ndarray            # (T, 3) jawOpen, mouthFunnel, mouthPucker targets
    backchannel: list = field(default_factory=list)
    avatar_speaking: list = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.arrays.frames


def load_eval_sessions(path, max_sessions: int | None = None, max_frames: int | None = None) -> list[EvalSession]:
    from ..corpus.dataset import load_dataset
    from .forcing.train import SessionArrays, session_arrays
    out = []
    for s in load_dataset(path)[:max_sessions]:
        a = session_arrays(s)
        meta = getattr(s, "meta", {}) or {}
        vis = np.asarray(s.avatar_viseme_targets, np.float32)
        if max_frames:
            n = max_frames
            a = SessionArrays(a.avatar_audio[:n], a.user_audio[:n], a.user_motion[:n], a.user_present[:n],
                              a.avatar_motion[:n], a.name)
            vis = vis[:n]
        out.append(EvalSession(a, vis, [f for f in meta.get("backchannel", []) if f < a.frames],
                               meta.get("avatar_speaking", [])))
    return out


def generate(model: MotionModel, arrays, seed: int) -> np.ndarray:
    """Run a MotionModel over a session block by block, as the runtime would. (T', D), T'
    the largest multiple of the model's block length."""
    model.reset(seed)
    B = model.block_frames
    T = arrays.frames - arrays.frames % B
    out = [model.next_block(BlockConditions(s, arrays.avatar_audio[s:s + B], arrays.user_audio[s:s + B],
                                            arrays.user_motion[s:s + B], arrays.user_present[s:s + B]))
           for s in range(0, T, B)]
    return np.concatenate(out, axis=0)


def generate_window(net, arrays, seed: int, guidance: float, window: int | None = None) -> np.ndarray:
    """The same network sampled non-causally (bidirectional window re-sampled per block)."""
    import torch
    from .forcing.sampler import sample_window
    B = net.cfg.block_frames
    T = arrays.frames - arrays.frames % B
    with torch.no_grad():
        t = [torch.from_numpy(getattr(arrays, k)[:T])[None] for k in ("avatar_audio", "user_audio", "user_motion")]
        aa, ua, um = net.normalize_conditions(*t)
        x = sample_window(net, aa, ua, um, torch.from_numpy(arrays.user_present[:T])[None],
                          torch.Generator().manual_seed(seed), guidance, window=window)
        return AF_MOTION_V1.clip(net.denormalize_motion(x)[0].numpy())


# --- per-model evaluation -------------------------------------------------------------------
def speaking_mask(T: int, intervals) -> np.ndarray:
    m = np.zeros(T, bool)
    for a, b in intervals:
        m[max(0, int(a)):min(T, int(b))] = True
    return m


def session_metrics(motion: np.ndarray, s: EvalSession, max_lag: int = 25) -> dict:
    T = len(motion)
    a = s.arrays
    speak = speaking_mask(T, s.avatar_speaking)
    if speak.sum() < 10:
        speak = np.ones(T, bool)  # no annotation: score lip sync over the whole session
    mouth_idx = AF_MOTION_V1.indices(MOUTH)
    lip = [pearson(motion[speak, i], s.visemes[:T][speak, k]) for k, i in enumerate(mouth_idx)]
    av_offset, _ = best_lag(s.visemes[:T, 0], motion[:, JAW], 10)
    user_smile = a.user_motion[:T, SMILE].mean(1)
    smile_lag, smile_corr = best_lag(user_smile, motion[:, SMILE].mean(1), max_lag, min_lag=0)
    user_nod = np.diff(a.user_motion[:T, PITCH])
    nod_lag, nod_corr = best_lag(user_nod, np.diff(motion[:, PITCH]), max_lag, min_lag=0)
    # chance: the same detector at random moments while the avatar listens (not speaking)
    rng = np.random.default_rng(0)
    bc = [f for f in s.backchannel if f < T - 1]
    listening = np.flatnonzero(~speaking_mask(T, s.avatar_speaking)[: max(1, T - 25)])
    chance_moments = rng.choice(listening, size=max(20, 2 * len(bc))) if listening.size else []
    return {"lip_sync_corr": float(np.mean(lip)), "jaw_corr": lip[0], "av_offset_frames": av_offset,
            "smile_react_corr": smile_corr, "smile_react_lag": smile_lag,
            "nod_react_corr": nod_corr, "nod_react_lag": nod_lag,
            "backchannel_response_rate": response_rate(motion[:, PITCH], bc),
            "chance_response_rate": response_rate(motion[:, PITCH], chance_moments)}


def evaluate_motions(motions: dict[int, list[np.ndarray]], sessions: list[EvalSession]) -> dict:
    """motions[seed][i]: generated motion of session i. Returns the averaged metrics."""
    seeds = sorted(motions)
    per = [session_metrics(motions[seeds[0]][i], s) for i, s in enumerate(sessions)]
    out = {k: float(np.nanmean([p[k] for p in per])) for k in per[0]}
    if len(seeds) > 1:
        stds = [np.stack([motions[sd][i] for sd in seeds]).std(axis=0).mean() for i in range(len(sessions))]
        out["diversity_across_seeds"] = float(np.mean(stds))
    out["diversity_across_sessions"] = float(np.stack([m.mean(0) for m in motions[seeds[0]]]).std(0).mean())
    gen = np.concatenate([window_features(m) for m in motions[seeds[0]]])
    real = np.concatenate([window_features(s.arrays.avatar_motion[:len(m)]) for s, m in zip(sessions, motions[seeds[0]])])
    out["frechet_distance"] = frechet_distance(gen, real)
    return out


def markdown_report(results: dict, info: dict) -> str:
    keys = ["lip_sync_corr", "jaw_corr", "av_offset_frames", "smile_react_corr", "smile_react_lag",
            "nod_react_corr", "nod_react_lag", "backchannel_response_rate", "chance_response_rate",
            "diversity_across_seeds", "diversity_across_sessions", "frechet_distance", "seconds_per_block"]
    names = list(results)
    lines = ["# Avatar Forcing evaluation", "", *(f"- {k}: {v}" for k, v in info.items()), "",
             "| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        cells = []
        for n in names:
            v = results[n].get(k)
            cells.append("–" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_models(models: dict, sessions: list[EvalSession], seeds=(0, 1, 2)) -> dict:
    """models: name -> callable(arrays, seed) -> motion. Adds the real motion as a reference."""
    results = {"ground_truth": evaluate_motions({0: [s.arrays.avatar_motion for s in sessions]}, sessions)}
    for name, fn in models.items():
        t0 = time.time()
        motions = {sd: [fn(s.arrays, sd) for s in sessions] for sd in seeds}
        n_blocks = sum(len(m) for m in motions[seeds[0]]) * len(seeds) / 2
        results[name] = evaluate_motions(motions, sessions)
        results[name]["seconds_per_block"] = (time.time() - t0) / max(1.0, n_blocks)
        log.info("%s: %s", name, results[name])
    return results


def main_evaluate(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing evaluate", description="Evaluate motion models on held-out data")
    p.add_argument("--data", required=True, help="held-out af-dyadic-v1 dataset directory")
    p.add_argument("--checkpoint", help="learned model checkpoint directory")
    p.add_argument("--dpo-checkpoint", help="the same model after DPO, for before/after")
    p.add_argument("--out", required=True, help="report path prefix: writes <out>.md and <out>.json")
    p.add_argument("--sessions", type=int, default=None, help="evaluate at most this many sessions")
    p.add_argument("--max-frames", type=int, default=None, help="cut sessions to this many frames")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--guidance", type=float, default=None)
    p.add_argument("--no-window", action="store_true", help="skip the slow non-causal window baseline")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .procedural import ProceduralMotionModel
    sessions = load_eval_sessions(args.data, args.sessions, args.max_frames)
    models: dict = {}
    block = 2
    if args.checkpoint:
        from .forcing.learned_model import LearnedMotionModel
        learned = LearnedMotionModel(args.checkpoint, guidance_scale=args.guidance, threads=args.threads)
        block = learned.block_frames
        models["learned_streaming"] = lambda a, sd: generate(learned, a, sd)
        if not args.no_window:
            models["learned_noncausal_window"] = lambda a, sd: generate_window(learned.net, a, sd, learned.guidance_scale)
    procedural = ProceduralMotionModel(fps=25, block_frames=block, seed=0)
    models["procedural"] = lambda a, sd: generate(procedural, a, sd)
    if args.dpo_checkpoint:
        from .forcing.learned_model import LearnedMotionModel
        dpo = LearnedMotionModel(args.dpo_checkpoint, guidance_scale=args.guidance, threads=args.threads)
        models["learned_after_dpo"] = lambda a, sd: generate(dpo, a, sd)
    results = evaluate_models(models, sessions, tuple(range(args.seeds)))
    info = {"data": args.data, "sessions": len(sessions), "frames": sum(s.frames for s in sessions),
            "checkpoint": args.checkpoint, "dpo_checkpoint": args.dpo_checkpoint, "seeds": args.seeds,
            "guidance": learned.guidance_scale if args.checkpoint else None, "threads": args.threads,
            "command": "avatar-forcing evaluate " + " ".join(argv if argv is not None else sys.argv[2:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"info": info, "results": results}, indent=2))
    out.with_suffix(".md").write_text(markdown_report(results, info))
    print(markdown_report(results, info))
    return 0
