"""The motion space: one named, versioned vector per video frame.

The user's face (perception), the avatar's face (generator) and the renderer input all use
the same vector, so the model learns "how I move given how you move". The channel order of a
released space is frozen: a change makes a new id (``af-motion-v2``), never a silent reorder.

Conventions of ``af-motion-v1`` (all as seen in the image, the viewer's frame):
- head_yaw > 0: the nose turns toward the image's right; head_pitch > 0: the nose turns up;
  head_roll > 0: the face rotates clockwise in the image. Radians.
- head_tx > 0: the face moves right; head_ty > 0: the face moves down (image y); in face widths.
- head_scale: log of the face size relative to neutral (0 = neutral, > 0 = closer).
- gaze_yaw > 0: the eyes look toward the image's right; gaze_pitch > 0: up. Radians, relative
  to the head.
- Expression coefficients in [0, 1], named after ARKit blendshapes. Left/Right are the
  *face's own* left and right, as ARKit names them (mouthSmileLeft is on the image's right
  for a face looking at the camera).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Channel:
    name: str
    low: float
    high: float
    neutral: float
    group: str  # "pose", "gaze", "mouth", "eyes", "brows", "cheeks"


class MotionSpace:
    """An ordered, named set of channels with ranges and a neutral value."""

    def __init__(self, space_id: str, channels: list[Channel]):
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"{space_id}: duplicate channel names")
        self.id = space_id
        self.channels = tuple(channels)
        self.names = tuple(names)
        self.dim = len(channels)
        self.low = np.array([c.low for c in channels], dtype=np.float32)
        self.high = np.array([c.high for c in channels], dtype=np.float32)
        self._neutral = np.array([c.neutral for c in channels], dtype=np.float32)
        self._index = {n: i for i, n in enumerate(names)}

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.id} has no channel {name!r}") from None

    def indices(self, names) -> np.ndarray:
        return np.array([self.index(n) for n in names], dtype=np.int64)

    def group(self, group: str) -> np.ndarray:
        """Indices of the channels in one group (e.g. "mouth")."""
        idx = [i for i, c in enumerate(self.channels) if c.group == group]
        if not idx:
            raise KeyError(f"{self.id} has no channel group {group!r}")
        return np.array(idx, dtype=np.int64)

    def neutral(self) -> np.ndarray:
        return self._neutral.copy()

    def clip(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, self.low, self.high).astype(np.float32, copy=False)

    def sanitize(self, values) -> tuple[np.ndarray, int]:
        """Coerce input to a finite vector within range.

        Returns (vector, number of non-finite entries replaced by neutral). A wrong length is
        a ValueError: the caller logs and drops the message rather than guessing the layout.
        """
        v = np.asarray(values, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"{self.id} expects {self.dim} values, got {v.shape[0]}")
        bad = ~np.isfinite(v)
        n_bad = int(bad.sum())
        if n_bad:
            v = np.where(bad, self._neutral, v)
        return self.clip(v), n_bad

    def as_dict(self, values: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.names, np.asarray(values).reshape(-1))}

    def from_dict(self, mapping: dict[str, float]) -> np.ndarray:
        """Neutral vector with the named channels set (unknown names are an error)."""
        v = self.neutral()
        for name, value in mapping.items():
            v[self.index(name)] = value
        return self.clip(v)

    def __repr__(self) -> str:
        return f"MotionSpace({self.id!r}, dim={self.dim})"


_POSE = [
    Channel("head_yaw", -1.2, 1.2, 0.0, "pose"),
    Channel("head_pitch", -1.0, 1.0, 0.0, "pose"),
    Channel("head_roll", -1.0, 1.0, 0.0, "pose"),
    Channel("head_tx", -2.0, 2.0, 0.0, "pose"),
    Channel("head_ty", -2.0, 2.0, 0.0, "pose"),
    Channel("head_scale", -1.0, 1.0, 0.0, "pose"),
    Channel("gaze_yaw", -0.8, 0.8, 0.0, "gaze"),
    Channel("gaze_pitch", -0.6, 0.6, 0.0, "gaze"),
]
_EXPRESSION_GROUPS = {
    "mouth": ["jawOpen", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
              "mouthFrownLeft", "mouthFrownRight", "mouthStretchLeft", "mouthStretchRight"],
    "eyes": ["eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight"],
    "brows": ["browInnerUp", "browDownLeft", "browDownRight", "browOuterUpLeft",
              "browOuterUpRight"],
    "cheeks": ["cheekSquintLeft", "cheekSquintRight"],
}

AF_MOTION_V1 = MotionSpace(
    "af-motion-v1",
    _POSE + [Channel(n, 0.0, 1.0, 0.0, g) for g, names in _EXPRESSION_GROUPS.items() for n in names],
)

# The latent of the paper's released network (generation/official): identity-relative motion,
# 512 unnamed dimensions, decoded by its own image decoder (renderer "avatarforcing").
AVATARFORCING_LATENT_512 = MotionSpace(
    "avatarforcing-latent-512", [Channel(f"z{i}", -1e4, 1e4, 0.0, "latent") for i in range(512)])

_SPACES = {s.id: s for s in (AF_MOTION_V1, AVATARFORCING_LATENT_512)}


def get_motion_space(space_id: str) -> MotionSpace:
    try:
        return _SPACES[space_id]
    except KeyError:
        raise KeyError(f"unknown motion space {space_id!r}; known: {sorted(_SPACES)}") from None
