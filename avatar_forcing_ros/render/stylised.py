"""A flat, cartoon face for robot face screens, drawn with OpenCV from one af-motion-v1 vector.

Geometry lives in *face units* (1 unit = the face width; x right, y down, z toward the
viewer, origin at the face centre). Each frame the feature outlines are built for the
current expression, lifted onto an ellipsoid (so features near the cheeks sit deeper),
rotated by yaw/pitch, projected orthographically, then rolled, scaled and moved in the
image. One projection of all points per frame keeps it well above screen refresh on a core.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..core.motion import AF_MOTION_V1

_M = AF_MOTION_V1
_I = {n: _M.index(n) for n in _M.names}

# Layout in face units; the face is an ellipse of half-axes (FACE_A, FACE_B).
FACE_A, FACE_B = 0.5, 0.62
FACE_DEPTH = 0.38         # how far the front of the face bulges toward the viewer
EYE_X, EYE_Y = 0.19, -0.06
EYE_RX, EYE_RY = 0.085, 0.058
PUPIL_R = 0.034
BROW_Y, BROW_INNER_X, BROW_OUTER_X = -0.19, 0.075, 0.28
NOSE_Y = 0.1
MOUTH_Y, MOUTH_HALF_W = 0.25, 0.14
JAW_DROP = 0.17           # lower-lip drop at jawOpen = 1
FACE_SIZE = 0.6           # face width as a fraction of min(width, height) at head_scale 0

_SHIFT = 4                # fixed-point bits for sub-pixel anti-aliased drawing
_ONE = 1 << _SHIFT
_T = np.linspace(0.0, 1.0, 17)
_BUMP = np.sin(np.pi * _T)


def _colour(name, value):
    c = tuple(int(x) for x in value)
    if len(c) != 3 or not all(0 <= x <= 255 for x in c):
        raise ValueError(f"{name} must be three integers in 0..255 (RGB), got {value!r}")
    return c


def _lerp(a, b, t):
    return a + (b - a) * t


class StylisedFaceRenderer:
    """render(values (28,)) -> (height, width, 3) uint8 RGB image of a stylised face."""

    def __init__(self, width=480, height=480, background=(20, 20, 30),
                 face_colour=(250, 212, 170), feature_colour=(70, 45, 40),
                 eye_colour=(250, 250, 250), pupil_colour=(25, 35, 60),
                 mouth_colour=(95, 20, 35), teeth_colour=(240, 240, 232),
                 cheek_colour=(245, 150, 140), line_width=0.012):
        if int(width) != width or int(height) != height or width < 16 or height < 16:
            raise ValueError(f"width and height must be integers >= 16, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.background = _colour("background", background)
        self.face_colour = _colour("face_colour", face_colour)
        self.feature_colour = _colour("feature_colour", feature_colour)
        self.eye_colour = _colour("eye_colour", eye_colour)
        self.pupil_colour = _colour("pupil_colour", pupil_colour)
        self.mouth_colour = _colour("mouth_colour", mouth_colour)
        self.teeth_colour = _colour("teeth_colour", teeth_colour)
        self.cheek_colour = _colour("cheek_colour", cheek_colour)
        if not 0.0 < line_width < 0.1:
            raise ValueError(f"line_width is in face widths and must be in (0, 0.1), got {line_width}")
        self.line_width = float(line_width)
        self.dropped_values = 0  # non-finite channels replaced by neutral, for diagnostics
        self._canvas = np.empty((self.height, self.width, 3), np.uint8)
        self._canvas[:] = self.background

    # ---------------------------------------------------------------- public helpers
    def pixels_per_unit(self, head_scale=0.0):
        return FACE_SIZE * min(self.width, self.height) * float(np.exp(head_scale))

    def _box(self, x0, y0, x1, y1):
        s = self.pixels_per_unit()
        cx, cy = self.width / 2, self.height / 2
        return (int(np.floor(cx + x0 * s)), int(np.floor(cy + y0 * s)),
                int(np.ceil(cx + x1 * s)), int(np.ceil(cy + y1 * s)))

    def mouth_box(self):
        """(x0, y0, x1, y1) pixels where the mouth is drawn at neutral head pose, any expression.

        End-to-end tests measure mouth opening (dark interior pixels) inside this box.
        """
        return self._box(-MOUTH_HALF_W * 1.5, MOUTH_Y - 0.08, MOUTH_HALF_W * 1.5, MOUTH_Y + JAW_DROP + 0.05)

    def eye_box(self, side):
        """(x0, y0, x1, y1) pixels of one eye at neutral head pose; side is the face's own
        "left" (image right) or "right" (image left), as ARKit names them."""
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        ex = EYE_X if side == "left" else -EYE_X
        return self._box(ex - EYE_RX * 1.15, EYE_Y - EYE_RY * 1.6, ex + EYE_RX * 1.15, EYE_Y + EYE_RY * 1.3)

    def close(self):
        pass

    # ---------------------------------------------------------------- geometry
    def _eye(self, side, v):
        """Outlines of one eye in face units: sclera, pupil, lid covers, lash line."""
        sx = 1.0 if side == "Left" else -1.0   # the face's left eye is on the image's right
        cx = sx * EYE_X
        blink = v[_I["eyeBlink" + side]]
        wide = v[_I["eyeWide" + side]]
        squint = v[_I["cheekSquint" + side]]
        x = cx + EYE_RX * (2 * _T - 1)
        closed = EYE_Y + 0.25 * EYE_RY * _BUMP            # lids meet slightly below the centre
        up_open = EYE_Y - EYE_RY * (1.0 + 0.45 * wide) * _BUMP
        low_open = EYE_Y + EYE_RY * (0.9 - 0.5 * squint) * _BUMP
        o = 1.0 - blink
        upper = _lerp(closed, up_open, o)
        lower = _lerp(closed, low_open, min(1.0, 3.0 * o))  # the lower lid moves only at the end
        sclera = np.concatenate([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]])
        # pupil follows gaze, kept inside the eye's corners so the lid covers can hide it
        gx = np.clip(np.sin(v[_I["gaze_yaw"]]) * EYE_RX * 1.1, -(EYE_RX - PUPIL_R * 1.1), EYE_RX - PUPIL_R * 1.1)
        gy = np.clip(-np.sin(v[_I["gaze_pitch"]]) * EYE_RY * 1.6, -EYE_RY, EYE_RY)
        ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        r = PUPIL_R * (1.0 - 0.15 * wide)
        pupil = np.stack([cx + gx + r * np.cos(ang), EYE_Y + gy + r * np.sin(ang)], 1)
        top = EYE_Y - EYE_RY * 1.5 - PUPIL_R
        bottom = EYE_Y + EYE_RY * 1.2 + PUPIL_R
        x0, x1 = x[0], x[-1]
        lid_up = np.concatenate([[[x0, top], [x1, top]], np.stack([x, upper], 1)[::-1]])
        lid_low = np.concatenate([np.stack([x, lower], 1), [[x1, bottom], [x0, bottom]]])
        lash = np.stack([x, upper], 1)
        return sclera, pupil, lid_up, lid_low, lash

    def _brow(self, side, v):
        sx = 1.0 if side == "Left" else -1.0
        inner_up = v[_I["browInnerUp"]]
        down = v[_I["browDown" + side]]
        outer_up = v[_I["browOuterUp" + side]]
        wide = v[_I["eyeWide" + side]]
        t = np.linspace(0.0, 1.0, 7)
        x = sx * _lerp(BROW_INNER_X, BROW_OUTER_X, t)
        y = (BROW_Y - 0.025 * np.sin(np.pi * t)                # resting arch
             - 0.06 * inner_up * (1 - t) ** 1.5                 # inner ends rise (worry)
             - 0.06 * outer_up * t ** 1.5                       # outer ends rise (surprise)
             + 0.045 * down * (1 - 0.6 * t)                      # whole brow drops, inner more
             - 0.02 * wide)
        h = 0.022 * (1.0 - 0.4 * t)                              # thicker at the inner end
        return np.concatenate([np.stack([x, y - h / 2], 1), np.stack([x, y + h / 2], 1)[::-1]])

    def _mouth(self, v):
        """Upper and lower lip curves (corner to corner) in face units."""
        g = lambda n: v[_I[n]]
        jaw, funnel, pucker = g("jawOpen"), g("mouthFunnel"), g("mouthPucker")
        narrow = 1.0 - 0.45 * pucker - 0.3 * funnel
        # image left is the face's right
        xl = -MOUTH_HALF_W * narrow * (1 + 0.35 * g("mouthStretchRight") + 0.12 * g("mouthSmileRight"))
        xr = MOUTH_HALF_W * narrow * (1 + 0.35 * g("mouthStretchLeft") + 0.12 * g("mouthSmileLeft"))
        yl = MOUTH_Y - 0.06 * g("mouthSmileRight") + 0.05 * g("mouthFrownRight")
        yr = MOUTH_Y - 0.06 * g("mouthSmileLeft") + 0.05 * g("mouthFrownLeft")
        roundness = max(funnel, pucker)
        bump = _BUMP ** (1.0 - 0.6 * roundness)                  # rounder opening when lips round
        x = _lerp(xl, xr, _T)
        base = MOUTH_Y + _lerp(yl - MOUTH_Y, yr - MOUTH_Y, _T) * (2 * _T - 1) ** 2  # corners bend, middle stays
        open_up = 0.02 * jaw + 0.035 * funnel + 0.01 * pucker
        open_low = JAW_DROP * jaw + 0.045 * funnel + 0.012 * pucker
        upper = np.stack([x, base - open_up * bump], 1)
        lower = np.stack([x, base + open_low * bump], 1)
        teeth_h = min(0.5 * (open_up + open_low), 0.028)   # upper teeth show under the upper lip
        teeth = np.stack([x, base - (open_up - teeth_h) * bump], 1)
        return upper, lower, teeth, open_up + open_low

    # ---------------------------------------------------------------- projection
    def _project(self, pts, v, extra_z=None):
        """(N, 2) face units -> (N, 2) int32 fixed-point pixels, after head rotation."""
        x, y = pts[:, 0], pts[:, 1]
        z = FACE_DEPTH * np.sqrt(np.clip(1.0 - (x / FACE_A) ** 2 - (y / FACE_B) ** 2, 0.0, 1.0))
        if extra_z is not None:
            z = z + extra_z
        yaw, pitch = v[_I["head_yaw"]], v[_I["head_pitch"]]  # roll: in _to_pixels
        # yaw > 0 turns the nose (z) toward +x; pitch > 0 turns it up (-y)
        x1 = x * np.cos(yaw) + z * np.sin(yaw)
        z1 = -x * np.sin(yaw) + z * np.cos(yaw)
        y1 = y * np.cos(pitch) - z1 * np.sin(pitch)
        return self._to_pixels(np.stack([x1, y1], 1), v)

    def _to_pixels(self, xy, v):
        roll = v[_I["head_roll"]]
        c, s = np.cos(roll), np.sin(roll)  # y points down, so this turns clockwise on screen
        px = c * xy[:, 0] - s * xy[:, 1] + v[_I["head_tx"]]
        py = s * xy[:, 0] + c * xy[:, 1] + v[_I["head_ty"]]
        k = self.pixels_per_unit(v[_I["head_scale"]])
        out = np.stack([self.width / 2 + k * px, self.height / 2 + k * py], 1)
        return np.round(out * _ONE).astype(np.int32)

    # ---------------------------------------------------------------- drawing
    def render(self, values):
        v, n_bad = _M.sanitize(values)
        self.dropped_values += n_bad
        v = v.astype(np.float64)
        img = self._canvas
        img[:] = self.background
        aa = cv2.LINE_AA
        k = self.pixels_per_unit(v[_I["head_scale"]])
        lw = max(1, int(round(self.line_width * k)))

        # head silhouette: an ellipsoid's outline only turns with roll
        ang = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        outline = np.stack([FACE_A * np.cos(ang), FACE_B * np.sin(ang)], 1)
        cv2.fillPoly(img, [self._to_pixels(outline, v)], self.face_colour, aa, _SHIFT)

        for side in ("Left", "Right"):
            sclera, pupil, lid_up, lid_low, lash = self._eye(side, v)
            cv2.fillPoly(img, [self._project(sclera, v)], self.eye_colour, aa, _SHIFT)
            cv2.fillPoly(img, [self._project(pupil, v)], self.pupil_colour, aa, _SHIFT)
            cv2.fillPoly(img, [self._project(lid_up, v), self._project(lid_low, v)], self.face_colour, aa, _SHIFT)
            cv2.polylines(img, [self._project(lash, v)], False, self.feature_colour, lw, aa, _SHIFT)
            squint = v[_I["cheekSquint" + side]]
            if squint > 0.02:
                sx = 1.0 if side == "Left" else -1.0
                cheek = np.stack([sx * (EYE_X + 0.03) + 0.07 * np.cos(ang[::4]),
                                  EYE_Y + 0.16 - 0.04 * squint + 0.035 * squint * np.sin(ang[::4])], 1)
                cv2.fillPoly(img, [self._project(cheek, v)], self.cheek_colour, aa, _SHIFT)
            cv2.fillPoly(img, [self._project(self._brow(side, v), v)], self.feature_colour, aa, _SHIFT)

        # nose: a short arc standing out of the face, so yaw reads clearly
        nose = np.stack([0.035 * (2 * _T[4:13] - 1), NOSE_Y + 0.01 * _BUMP[4:13]], 1)
        cv2.polylines(img, [self._project(nose, v, extra_z=0.06)], False, self.feature_colour, lw, aa, _SHIFT)

        upper, lower, teeth, opening = self._mouth(v)
        if opening * k > 1.0:
            cavity = np.concatenate([upper, lower[::-1]])
            cv2.fillPoly(img, [self._project(cavity, v)], self.mouth_colour, aa, _SHIFT)
            cv2.fillPoly(img, [self._project(np.concatenate([upper, teeth[::-1]]), v)], self.teeth_colour, aa, _SHIFT)
            cv2.polylines(img, [self._project(cavity, v)], True, self.feature_colour, lw, aa, _SHIFT)
        else:
            cv2.polylines(img, [self._project(upper, v)], False, self.feature_colour, lw, aa, _SHIFT)
        return img.copy()
