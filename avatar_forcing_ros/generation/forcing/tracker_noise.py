"""What the face tracker does to the user's motion, as a training augmentation.

Training sees the simulator's exact user motion; the running node sees what mediapipe reads
from a camera. ``TrackerNoise.apply`` turns one training window of the first into something
like the second, with its own random draws per window around the figures measured by

    avatar-forcing perceive-corpus --data <protocol>/test --out <dir> --max-sessions 30

(corpus/perceived.py: the protocol's test corpus, af-eval-v2 split test seed 2, 30 sessions of
20 s = 15000 frames, the user drawn on the astronaut portrait at 256 px and read back by the
perception node's estimator; figures in ``<dir>/tracker_stats.json``). Per channel group
(corpus/perceived.GROUPS: head pose, gaze, jaw, other expressions):
- lag: the measured one plus 0..``extra_lag`` frames (the copy has no camera or transport
  latency, which the node has; UserMotionTrack then takes the newest observation not after a
  frame), the same for the whole window, values and presence shifted later, padded with the
  first frame;
- calibration: per channel a gain and an offset drawn around the measured ones;
- noise: Gaussian, as large as the measured residual, AR(1)-smoothed with the residual's
  measured lag-1 autocorrelation, its size drawn per window (x0.5..1.5);
- dropouts: spans with no face: presence 0 and the values the node publishes then (the last
  ones decaying toward neutral with ``decay_tau_s``, as FaceMotionEstimator does), at a rate
  drawn per window up to twice the configured one. Where a face is seen the presence is the
  tracker's confidence.
Everything stays finite and inside af-motion-v1's range.

``TrackerNoise.from_file(tracker_stats.json)`` takes the figures channel by channel instead
(``avatar-forcing train --tracker-stats``), from a copy perceived from training sessions, and
with its cross-talk table (perceived.fit_crosstalk) each channel is read from all 28: the
tracker's errors are mostly other channels mixed in, not independent noise
(benchmarks/results/tracker-channels-2026-12-07).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.motion import AF_MOTION_V1
from ...corpus.perceived import GROUPS

# the channel groups the tracker was measured over: each channel's group index
GROUP_NAMES = tuple(GROUPS)
_GROUP_OF = np.array([next(i for i, g in enumerate(GROUP_NAMES) if n in GROUPS[g]) for n in AF_MOTION_V1.names],
                     dtype=np.int64)
FPS = 25.0


@dataclass(frozen=True)
class TrackerNoise:
    # per group, in GROUP_NAMES order: pose, gaze, jaw, expression (or per channel, 28 values:
    # from_stats). Measured (docstring's command, benchmarks/results/tracker-2026-11-29/
    # tracker_stats.json, "groups"): medians over the group's channels, spreads over channels
    # and sessions
    gain: tuple = (0.783, 0.312, 0.882, 0.871)
    gain_sd: tuple = (0.315, 0.275, 0.241, 0.538)
    bias: tuple = (0.0, 0.0099, 0.0063, 0.0487)
    bias_sd: tuple = (0.020, 0.0613, 0.0235, 0.0618)
    noise_std: tuple = (0.027, 0.0725, 0.0791, 0.1033)
    noise_ac1: tuple = (0.84, 0.57, 0.73, 0.67)
    lag_frames: int = 0             # measured: median of the 14 channels tracked with r >= 0.7 (13 at 0)
    extra_lag: int = 2              # + 0..2 frames of camera and transport latency (not measured here)
    # the rendered portrait never lost the face (0 of 15000 frames): no dropouts by default; a
    # real room has them (turning away, occlusion, leaving), so set a rate for that
    dropout_fraction: float = 0.0
    dropout_mean_frames: float = 5.0  # not measured (no dropouts to measure)
    confidence: float = 1.0         # measured: median confidence with a face found
    decay_tau_s: float = 0.5        # FaceMotionEstimator.decay_tau_s (no_face_decay_s)
    # the tracker's cross-talk (perceived.fit_crosstalk): 28 rows of 28 weights, each perceived
    # channel read from all true channels around neutral. When given it replaces the own gain
    # (each row scaled per window by a factor drawn around 1 with the channel's relative gain
    # spread), and bias / noise_std / noise_ac1 are that fit's
    crosstalk: tuple | None = None

    def __post_init__(self):
        """The figures checked and spread to the 28 channels once (apply runs per training
        window): a wrong length or a value that is not finite is an error here, not mid-training."""
        per = {}
        for name in ("gain", "gain_sd", "bias", "bias_sd", "noise_std", "noise_ac1"):
            v = np.asarray(getattr(self, name), np.float64)
            if v.shape == (len(GROUP_NAMES),):
                v = v[_GROUP_OF]
            elif v.shape != (AF_MOTION_V1.dim,):
                raise ValueError(f"tracker figure {name!r} needs {len(GROUP_NAMES)} values (per group) or "
                                 f"{AF_MOTION_V1.dim} (per channel), got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"tracker figure {name!r} is not finite for every channel")
            per[name] = v
        if self.crosstalk is not None:
            w = np.asarray(self.crosstalk, np.float64)
            if w.shape != (AF_MOTION_V1.dim, AF_MOTION_V1.dim) or not np.all(np.isfinite(w)):
                raise ValueError(f"crosstalk needs {AF_MOTION_V1.dim}x{AF_MOTION_V1.dim} finite weights, "
                                 f"got shape {w.shape}")
            per["crosstalk"] = w
        object.__setattr__(self, "_channels", per)  # frozen: derived once, not a field

    @classmethod
    def from_stats(cls, stats: dict, extra_lag: int = 2, crosstalk: bool = True) -> "TrackerNoise":
        """The tracker as ``perceived.tracker_stats`` measured it, channel by channel (the group
        medians of the defaults hide channels that differ: on the portrait the head's pitch is
        read at a gain of 0.24 where the pose group's median is 0.78, and a few expression
        channels are mostly cross-talk). A channel whose true motion hardly moved has no gain
        measured: it passes with gain 1. A negative lag (a cross-correlation peak before the
        motion) counts as 0; dropouts take the measured rate and span when there were any.
        With ``crosstalk`` and a "crosstalk" table in the figures (perceived.fit_crosstalk), each
        channel is read from all channels instead, with that fit's bias and residual noise."""
        channels = stats.get("channels") if isinstance(stats, dict) else None
        missing = [n for n in AF_MOTION_V1.names if not isinstance(channels, dict) or n not in channels]
        if missing:
            raise ValueError(f"tracker figures lack channels {missing[:4]}{'...' if len(missing) > 4 else ''} "
                             "(expected perceive-corpus / measure-tracker JSON with a 'channels' table)")

        def column(key, absent):  # checked for length and finiteness by __post_init__
            return tuple(float(absent if channels[n].get(key) is None else channels[n][key])
                         for n in AF_MOTION_V1.names)
        moving = [channels[n].get("gain") is not None for n in AF_MOTION_V1.names]
        gain_sd = tuple(s if m else 0.0 for s, m in zip(column("gain_sd", 0.0), moving))
        lost = float(stats.get("dropout_fraction", 0.0) or 0.0)
        span = float(stats.get("dropout_mean_frames", 0.0) or 0.0)
        fit = {"bias": column("bias", 0.0), "noise_std": column("noise_std", 0.0),
               "noise_ac1": column("noise_ac1", 0.0), "crosstalk": None}
        table = stats.get("crosstalk") if crosstalk else None
        if table is not None:
            try:
                weights = tuple(tuple(float(v) for v in row) for row in table["weights"])
                fit = {k: tuple(float(v) for v in table[k]) for k in ("bias", "noise_std", "noise_ac1")}
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"tracker figures: a crosstalk table needs weights, bias, noise_std and "
                                 f"noise_ac1 ({e!r})") from None
            fit["crosstalk"] = weights
        return cls(gain=column("gain", 1.0), gain_sd=gain_sd, bias_sd=column("bias_sd", 0.0),
                   lag_frames=max(0, int(stats.get("lag", 0))), extra_lag=int(extra_lag),
                   dropout_fraction=lost, dropout_mean_frames=span if span > 0 else cls.dropout_mean_frames,
                   confidence=float(stats.get("confidence_when_found", 1.0) or 1.0), **fit)

    @classmethod
    def from_file(cls, path) -> "TrackerNoise":
        """``from_stats`` of a tracker_stats.json (what perceive-corpus writes beside its copy)."""
        try:
            stats = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"tracker figures {path}: {e}") from None
        return cls.from_stats(stats)

    def apply(self, user_motion: np.ndarray, user_present: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One window (T, 28) float32 and (T,) -> the same as a tracker would have reported it."""
        x = np.asarray(user_motion, np.float64)
        present = np.asarray(user_present, np.float64)
        T, D = x.shape
        if D != AF_MOTION_V1.dim or present.shape != (T,):
            raise ValueError(f"expected ({T}, {AF_MOTION_V1.dim}) motion and ({T},) presence, "
                             f"got {x.shape} and {present.shape}")
        neutral = AF_MOTION_V1.neutral().astype(np.float64)
        f = self._channels
        # calibration: gain and offset per channel, around neutral (the space's zero)
        gain = rng.normal(f["gain"], f["gain_sd"])
        bias = rng.normal(f["bias"], f["bias_sd"])
        if self.crosstalk is None:  # the draws above in this order: the built-in figures' stream stays
            y = neutral + np.clip(gain, 0.0, None) * (x - neutral) + bias
        else:
            spread = np.clip(f["gain_sd"] / np.maximum(np.abs(f["gain"]), 0.1), 0.0, 0.5)
            scale = np.clip(rng.normal(1.0, spread), 0.0, None)
            y = (x - neutral) @ f["crosstalk"].T * scale + bias
        # noise: AR(1) with the measured smoothness, stationary variance noise_std^2
        a = np.clip(f["noise_ac1"], 0.0, 0.99)
        sd = f["noise_std"] * rng.uniform(0.5, 1.5)
        z = rng.standard_normal((T, D))
        e = np.empty((T, D))
        e[0] = z[0]
        k = np.sqrt(1.0 - a * a)
        for t in range(1, T):
            e[t] = a * e[t - 1] + k * z[t]
        y += sd * e
        y = AF_MOTION_V1.clip(y).astype(np.float64)
        seen = present >= 0.5
        conf = np.where(seen, self.confidence * present, 0.0)
        # dropouts: spans the tracker loses the face
        if self.dropout_fraction > 0:
            lost = _dropout_mask(T, rng.uniform(0.0, 2.0 * self.dropout_fraction), self.dropout_mean_frames, rng)
            conf[lost] = 0.0
            seen &= ~lost
        y = _decay_where_lost(y, seen, neutral, np.exp(-1.0 / (FPS * self.decay_tau_s)))
        # lag: the tracker's reading of frame t arrives at t + lag
        lag = int(self.lag_frames + rng.integers(0, self.extra_lag + 1))
        if lag > 0:
            lag = min(lag, T)
            y = np.concatenate([np.repeat(y[:1], lag, 0), y[:T - lag]])
            conf = np.concatenate([np.repeat(conf[:1], lag), conf[:T - lag]])
        return AF_MOTION_V1.clip(y), np.clip(conf, 0.0, 1.0).astype(np.float32)


def _dropout_mask(T: int, fraction: float, mean_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Spans of geometric length (mean ``mean_frames``) starting so that about ``fraction`` of
    the frames are covered."""
    lost = np.zeros(T, bool)
    if fraction <= 0 or T == 0:
        return lost
    mean_frames = max(1.0, float(mean_frames))
    fraction = min(fraction, 0.95)
    p_start = fraction / (mean_frames * (1.0 - fraction) + fraction)  # per frame outside a span
    t = 0
    while t < T:
        if rng.random() < p_start:
            n = int(rng.geometric(1.0 / mean_frames))
            lost[t:t + n] = True
            t += n
        else:
            t += 1
    return lost


def _decay_where_lost(y: np.ndarray, seen: np.ndarray, neutral: np.ndarray, keep: float) -> np.ndarray:
    """Where no face is seen, the last seen values decay toward neutral by ``keep`` per frame
    (the node's output then); from the window's first value when it starts without one."""
    out = y.copy()
    last = y[0].copy()
    for t in range(len(y)):
        if seen[t]:
            last = y[t]
        else:
            last = neutral + (last - neutral) * keep
            out[t] = last
    return out
