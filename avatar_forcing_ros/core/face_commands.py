"""Commands to the avatar's face: an expression to show and a point to look at, blended into
what the motion model generates.

A robot's dialogue manager says how the face should feel (ROS4HRI's hri_msgs/Expression: a
named expression or valence/arousal, with a confidence) and where it should look (a
geometry_msgs/PointStamped). Neither replaces the model: the model keeps lip-syncing, blinking
and reacting, and the command is an offset on top of its frames.

- Expression: an offset on the smile, frown, brow, eye-lid and cheek channels (never jawOpen,
  funnel or pucker: the mouth stays the speech's). A positive offset ``o`` moves a [0, 1]
  channel toward 1 (``v + o (1 - v)``), a negative one scales it down (``v (1 + o)``), so the
  model's own movement of the channel stays visible and nothing leaves its range. "sad"
  suppresses the model's mirrored smile, "happy" lifts it.
- Look-at: a direction, split between the head (``look_at_head_share``) and the eyes, added to
  the model's head and gaze angles (its drift, nods and saccades go on around the target).
- Both follow their command with a time constant (first-order, in message time), so a new
  command blends in instead of jumping; the look-at target is let go after ``look_at_hold_s``
  without a new point (0: held until the next).

Directions: the look-at point is in the avatar face's own frame, REP-103 (x forward, out of
the screen toward the people in front of it; y to the face's own left; z up). The face's own
left is the image's right, so a point to the face's left (y > 0) turns head_yaw and gaze_yaw
positive (af-motion-v1's "toward the image's right"); a point above (z > 0) turns them up.

Pure Python (no rclpy): the generator node and the offline replay drive the same object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .motion import MotionSpace


def _both(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


def _face(**parts) -> dict[str, float]:
    """Offsets from short names: smile, frown, stretch, blink, wide, squint (both sides),
    inner (browInnerUp), outer (browOuterUp both), down (browDown both); anything else is a
    channel name."""
    both = {"smile": "mouthSmile", "frown": "mouthFrown", "stretch": "mouthStretch", "blink": "eyeBlink",
            "wide": "eyeWide", "squint": "cheekSquint", "outer": "browOuterUp", "down": "browDown"}
    out: dict[str, float] = {}
    for key, value in parts.items():
        if key in both:
            out.update(_both(both[key], value))
        elif key == "inner":
            out["browInnerUp"] = value
        else:
            out[key] = value
    return out


# hri_msgs/Expression's named expressions -> offsets (a negative smile suppresses the model's
# own). Hand-set from FACS descriptions of each emotion (e.g. sadness: inner brow raiser +
# lip corner depressor; surprise: brow raisers + upper lid raiser).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": _face(smile=0.75, squint=0.4),
    "sad": _face(smile=-0.9, frown=0.65, inner=0.7, blink=0.15),
    "angry": _face(smile=-0.9, down=0.8, frown=0.3, stretch=0.2),
    "surprised": _face(inner=0.7, outer=0.7, wide=0.7),
    "disgusted": _face(smile=-0.9, down=0.45, frown=0.4, squint=0.5),
    "scared": _face(smile=-0.9, inner=0.75, outer=0.4, wide=0.8, stretch=0.5),
    "pleading": _face(smile=-0.5, inner=0.85, frown=0.2),
    "vulnerable": _face(smile=-0.5, inner=0.55, frown=0.2),
    "despaired": _face(smile=-0.9, inner=0.85, frown=0.6, blink=0.2),
    "guilty": _face(smile=-0.7, inner=0.4, frown=0.3, blink=0.25),
    "disappointed": _face(smile=-0.8, frown=0.5, inner=0.3),
    "embarrassed": _face(smile=0.3, inner=0.35, blink=0.2),
    "horrified": _face(smile=-0.9, wide=0.9, inner=0.8, outer=0.6, stretch=0.6),
    "skeptical": {**_face(smile=-0.3), "browDownLeft": 0.5, "browOuterUpRight": 0.6, "mouthSmileRight": 0.2},
    "annoyed": _face(smile=-0.7, down=0.5, frown=0.3),
    "furious": _face(smile=-1.0, down=1.0, frown=0.5, stretch=0.4, wide=0.3),
    "suspicious": _face(smile=-0.5, down=0.4, blink=0.35),
    "rejected": _face(smile=-0.8, frown=0.5, inner=0.5),
    "bored": _face(smile=-0.5, blink=0.4),
    "tired": _face(smile=-0.3, blink=0.5, inner=0.1),
    "asleep": _face(smile=-0.5, blink=1.0),
    "confused": {"browDownLeft": 0.5, "browInnerUp": 0.4, "browOuterUpRight": 0.4},
    "amazed": _face(smile=0.3, wide=0.7, outer=0.7, inner=0.6),
    "excited": _face(smile=0.8, squint=0.4, wide=0.5, outer=0.5),
}
# Channels an expression never touches: the speech's.
SPEECH_CHANNELS = ("jawOpen", "mouthFunnel", "mouthPucker")


def valence_arousal_offsets(valence: float, arousal: float) -> dict[str, float]:
    """Offsets of a point of the valence/arousal plane (both in [-1, 1]): pleasant lifts the
    smile and cheeks, unpleasant frowns and raises the inner brows; aroused widens the eyes and
    raises the brows, calm lowers the lids."""
    v, a = float(valence), float(arousal)
    out: dict[str, float] = {}
    if v > 0:
        out.update(_face(smile=0.8 * v, squint=0.4 * v))
    elif v < 0:
        out.update(_face(smile=0.9 * v, frown=-0.65 * v, inner=-0.6 * v))
    if a > 0:
        out.update(_face(wide=0.6 * a, outer=0.4 * a))
    elif a < 0:
        out.update(_face(blink=-0.45 * a))
    return out


class CommandError(ValueError):
    """A command that cannot be followed; its first argument is the drop counter's reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


@dataclass
class FaceCommandSettings:
    expression_time_constant_s: float = 0.3
    look_at_time_constant_s: float = 0.25
    look_at_head_share: float = 0.6   # of a look-at angle turned by the head; the eyes do the rest
    look_at_hold_s: float = 5.0       # a target without a new point for this long is let go (0: held)
    look_at_frames: tuple = ("avatar_face",)


class _Smoothed:
    """A vector that follows its target with a time constant, in message time."""

    def __init__(self, dim: int):
        self.value = np.zeros(dim, np.float64)
        self.target = np.zeros(dim, np.float64)
        self.t: float | None = None

    def advance(self, t: float, tau: float) -> np.ndarray:
        if self.t is not None and t > self.t:
            k = math.exp(-(t - self.t) / tau) if tau > 0 else 0.0
            self.value = self.target + (self.value - self.target) * k
        if self.t is None or t > self.t:
            self.t = t
        return self.value

    def set(self, target: np.ndarray, t: float, tau: float) -> None:
        self.advance(t, tau)  # what was reached so far stays where it is
        self.target = np.asarray(target, np.float64)


class FaceCommands:
    """The commanded expression and gaze target, and their blend into generated frames."""

    def __init__(self, space: MotionSpace, settings: FaceCommandSettings | None = None):
        self.space = space
        self.settings = settings or FaceCommandSettings()
        look = ["head_yaw", "head_pitch", "gaze_yaw", "gaze_pitch"]
        missing = [n for n in (*SPEECH_CHANNELS, *look) if n not in space.names]
        # a model of another space (the official network's latent) has no channels to bias:
        # its commands are refused and counted, its frames pass unchanged
        self.unsupported = f"motion space {space.id} has no {missing[0]} channel" if missing else ""
        self._expression = _Smoothed(space.dim)
        self._look = _Smoothed(4)  # head yaw, head pitch, gaze yaw, gaze pitch offsets
        self._look_idx = [] if missing else space.indices(look)
        self._look_until: float | None = None
        self._unit = (space.low >= 0.0) & (space.high <= 1.0)  # coefficient channels
        self.expression = "neutral"  # what is being shown, for diagnostics
        self.look_at = "none"

    # -- commands ---------------------------------------------------------------------------

    def set_expression(self, expression: str, valence: float, arousal: float, confidence: float,
                       now: float) -> str:
        """Take an Expression's fields at ``now``; returns what is shown (a name or "v=.. a=..").
        An unknown name or a non-finite number is a CommandError (the last command stays)."""
        if self.unsupported:
            raise CommandError("face commands unsupported by the model", self.unsupported)
        name = (expression or "").strip().lower()
        numbers = {"valence": valence, "arousal": arousal, "confidence": confidence}
        bad = [k for k, x in numbers.items() if not math.isfinite(float(x))]
        if bad:
            raise CommandError("expression not finite", f"{', '.join(bad)} not finite")
        if name:
            if name not in EXPRESSIONS:
                raise CommandError("expression unknown", f"{expression!r}; known: {', '.join(EXPRESSIONS)}")
            offsets, shown = EXPRESSIONS[name], name
        else:
            v, a = (float(np.clip(x, -1.0, 1.0)) for x in (valence, arousal))
            offsets, shown = valence_arousal_offsets(v, a), f"valence {v:+.2f} arousal {a:+.2f}"
        # confidence scales the expression; 0 is the message's default (unset): full strength
        c = float(np.clip(confidence, 0.0, 1.0)) or 1.0
        target = np.zeros(self.space.dim)
        for channel, o in offsets.items():
            target[self.space.index(channel)] = c * o
        self._expression.set(target, now, self.settings.expression_time_constant_s)
        self.expression = shown if c == 1.0 else f"{shown} (confidence {c:.2f})"
        return self.expression

    def set_look_at(self, x: float, y: float, z: float, frame_id: str, now: float) -> tuple[float, float]:
        """Take a point in the avatar's frame at ``now``; returns its (yaw, pitch) in radians
        (yaw > 0: the face's left, pitch > 0: up). A point in another frame, non-finite or at
        the face itself is a CommandError."""
        if self.unsupported:
            raise CommandError("face commands unsupported by the model", self.unsupported)
        if frame_id not in self.settings.look_at_frames:
            raise CommandError("look-at point in an unknown frame",
                               f"frame_id {frame_id!r}; look_at_frames: {', '.join(self.settings.look_at_frames)}")
        p = np.array([x, y, z], np.float64)
        if not np.isfinite(p).all():
            raise CommandError("look-at point not finite", f"({x}, {y}, {z})")
        if np.linalg.norm(p) < 1e-6:
            raise CommandError("look-at point at the face", "(0, 0, 0) has no direction")
        yaw = math.atan2(p[1], p[0])
        pitch = math.atan2(p[2], math.hypot(p[0], p[1]))
        self.look_towards(yaw, pitch, now)
        return yaw, pitch

    def look_towards(self, yaw: float, pitch: float, now: float) -> None:
        """Look in a direction (radians, the face's left and up positive)."""
        if self.unsupported:
            return
        self._look.set(self._split(yaw, pitch), now, self.settings.look_at_time_constant_s)
        self._look_until = now + self.settings.look_at_hold_s if self.settings.look_at_hold_s > 0 else None
        self.look_at = f"yaw {math.degrees(yaw):+.0f} deg, pitch {math.degrees(pitch):+.0f} deg"

    def release_look(self, now: float) -> None:
        """Let the look-at target go: back to the model's own head and gaze."""
        self._look.set(np.zeros(4), now, self.settings.look_at_time_constant_s)
        self._look_until, self.look_at = None, "none"

    def _split(self, yaw: float, pitch: float) -> np.ndarray:
        """Head and gaze offsets of a direction: the head takes its share, the eyes the rest up to
        their range, and the head whatever the eyes cannot reach."""
        out = np.zeros(4)
        share = float(np.clip(self.settings.look_at_head_share, 0.0, 1.0))
        for k, angle in enumerate((yaw, pitch)):
            head_i, gaze_i = self._look_idx[k], self._look_idx[2 + k]
            gaze = float(np.clip((1 - share) * angle, self.space.low[gaze_i], self.space.high[gaze_i]))
            head = float(np.clip(angle - gaze, self.space.low[head_i], self.space.high[head_i]))
            out[k], out[2 + k] = head, gaze
        return out

    def restart_clock(self, now: float) -> None:
        """The clock jumped back (a looped bag): carry on from ``now`` as it stands."""
        for smoothed in (self._expression, self._look):
            if smoothed.t is not None:
                smoothed.t = now
        if self._look_until is not None:
            self._look_until = now + self.settings.look_at_hold_s

    # -- blend --------------------------------------------------------------------------------

    def apply(self, values: np.ndarray, t: float) -> np.ndarray:
        """A generated frame with the commands blended in at its time ``t``, within range."""
        expr = self._expression.advance(t, self.settings.expression_time_constant_s)
        if self._look_until is not None and t >= self._look_until:
            self._look.set(np.zeros(4), self._look_until, self.settings.look_at_time_constant_s)
            self._look_until, self.look_at = None, "none"
        look = self._look.advance(t, self.settings.look_at_time_constant_s)
        if not expr.any() and not look.any():
            return values
        v = np.asarray(values, np.float64).copy()
        up = self._unit & (expr > 0)
        down = self._unit & (expr < 0)
        v[up] += expr[up] * (1.0 - v[up])
        v[down] *= 1.0 + expr[down]
        v[self._look_idx] += look
        return self.space.clip(v.astype(np.float32))

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """(expression offsets (D,), look-at offsets (head yaw, head pitch, gaze yaw, gaze pitch))
        as last advanced."""
        return self._expression.value.copy(), self._look.value.copy()
