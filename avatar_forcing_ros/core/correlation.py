"""Correlations over time, shared by the evaluation's metrics and the tracker's measurement
(corpus/perceived.py)."""
from __future__ import annotations

import numpy as np


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
