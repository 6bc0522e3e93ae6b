"""Toy dyadic sessions with known relations, for tests and benchmarks (never for shipping).

The avatar's jaw follows the energy of its own audio features, its smile copies the user's
smile a few frames later and its head pitch dips (a nod) after the user's audio stops.
"""
from __future__ import annotations

import numpy as np

from ...core.motion import AF_MOTION_V1
from .train import SessionArrays

JAW = AF_MOTION_V1.index("jawOpen")
SMILE_L = AF_MOTION_V1.index("mouthSmileLeft")
SMILE_R = AF_MOTION_V1.index("mouthSmileRight")
PITCH = AF_MOTION_V1.index("head_pitch")


def _segments(rng, T, mean_on, mean_off):
    x = np.zeros(T, dtype=np.float32)
    t, on = 0, bool(rng.integers(0, 2))
    while t < T:
        n = int(rng.exponential(mean_on if on else mean_off)) + 3
        x[t:t + n] = float(on)
        t, on = t + n, not on
    return x


def toy_session(frames: int, seed: int, smile_delay: int = 5) -> SessionArrays:
    rng = np.random.default_rng(seed)
    T = frames
    talk = _segments(rng, T, 30, 20)                   # avatar speaking
    energy = talk * (0.5 + 0.5 * np.abs(np.sin(np.arange(T) * 0.7 + rng.uniform(0, 6))))
    avatar_audio = rng.normal(0, 0.3, (T, 41)).astype(np.float32) + energy[:, None] * 3.0
    user_talk = _segments(rng, T, 25, 25)
    user_audio = rng.normal(0, 0.3, (T, 41)).astype(np.float32) + user_talk[:, None] * 3.0
    user_smile = _segments(rng, T, 20, 40)
    user_motion = np.zeros((T, 28), dtype=np.float32)
    user_motion[:, SMILE_L] = user_motion[:, SMILE_R] = user_smile * 0.8
    motion = np.zeros((T, 28), dtype=np.float32)
    motion[:, JAW] = 0.6 * energy + rng.normal(0, 0.02, T)
    lagged = np.concatenate([np.zeros(smile_delay, np.float32), user_smile[:-smile_delay]])
    motion[:, SMILE_L] = motion[:, SMILE_R] = 0.7 * lagged
    stops = np.flatnonzero((user_talk[:-1] == 1) & (user_talk[1:] == 0)) + 1
    for s in stops:  # a nod: pitch dips then returns over ~12 frames
        k = np.arange(min(12, T - s))
        motion[s:s + k.size, PITCH] -= 0.15 * np.sin(np.pi * k / 12)
    motion[:, PITCH] += rng.normal(0, 0.01, T)
    motion = AF_MOTION_V1.clip(motion)
    return SessionArrays(avatar_audio, user_audio, user_motion, np.ones(T, np.float32), motion, f"toy{seed}")


def toy_sessions(n: int, frames: int, seed: int = 0) -> list[SessionArrays]:
    return [toy_session(frames, seed * 1000 + i) for i in range(n)]
