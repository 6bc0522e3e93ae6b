"""A photo portrait animated by af-motion-v1: a landmark-driven image warp, no neural network.

At construction the portrait's face mesh (MediaPipe, 478 landmarks, with irises) is found
once and the image is cropped around the face. Each frame:
1. every expression coefficient adds its own landmark displacement pattern (linear, built
   once from the portrait's landmarks, in units of the interocular distance D);
2. gaze shifts the irises; head pose rotates the 3D mesh about the head centre and projects
   it back (orthographic), then moves and scales it;
3. a thin-plate spline through the moved landmarks (plus still anchors on the border and the
   shoulders) gives the backward map on a coarse grid, upsampled and applied by cv2.remap;
4. a dark mouth cavity with upper teeth is drawn inside the moved inner lips, and skin-coloured
   eyelids are drawn down over the eyes for blinks.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..core.motion import AF_MOTION_V1

_M = AF_MOTION_V1
_I = {n: _M.index(n) for n in _M.names}

# MediaPipe face-mesh indices. "Left"/"Right" are the face's own sides (as ARKit names them):
# the face's left appears on the image's right.
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS_UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
LIPS_UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
MOUTH_CORNER = {"Right": 61, "Left": 291}
# eye contours from the outer to the inner corner, upper and lower lids matched point by point
EYE_UPPER = {"Right": [33, 246, 161, 160, 159, 158, 157, 173, 133],
             "Left": [263, 466, 388, 387, 386, 385, 384, 398, 362]}
EYE_LOWER = {"Right": [33, 7, 163, 144, 145, 153, 154, 155, 133],
             "Left": [263, 249, 390, 373, 374, 380, 381, 382, 362]}
IRIS = {"Right": [468, 469, 470, 471, 472], "Left": [473, 474, 475, 476, 477]}
BROW = {"Right": [70, 63, 105, 66, 107, 46, 53, 52, 65, 55],
        "Left": [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]}
BROW_INNER = {"Right": [107, 66, 55, 65], "Left": [336, 296, 285, 295]}
BROW_OUTER = {"Right": [70, 63, 46, 53], "Left": [300, 293, 276, 283]}
CHEEK = {"Right": 205, "Left": 425}
NOSE = [1, 2, 4, 5, 6, 98, 168, 197, 327]

# the warp is driven by these landmarks (a dense enough subset; all 478 would be slower)
_CONTROL = sorted(set(FACE_OVAL + LIPS_UPPER_OUTER + LIPS_LOWER_OUTER + LIPS_UPPER_INNER
                      + LIPS_LOWER_INNER + sum(EYE_UPPER.values(), []) + sum(EYE_LOWER.values(), [])
                      + sum(IRIS.values(), []) + sum(BROW.values(), []) + NOSE
                      + list(CHEEK.values()) + [50, 280, 36, 266, 118, 347, 187, 411, 151, 9, 108, 337]))

_SHIFT = 4
_ONE = 1 << _SHIFT


def load_rgb(image_path):
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"portrait image not found: {image_path}")
    bgr = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"portrait image could not be decoded (not an image?): {image_path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def detect_face_mesh(rgb: np.ndarray, source: str) -> np.ndarray:
    """(478, 3) landmarks in pixels of ``rgb`` (z toward the viewer, same scale as x)."""
    import mediapipe as mp  # heavy; only the portrait renderer needs it here

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=1, min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(rgb))
    if not result.multi_face_landmarks:
        raise ValueError(f"no face found in portrait {source}: use a well-lit, roughly frontal "
                         f"photo with one face")
    h, w = rgb.shape[:2]
    pts = np.array([[p.x * w, p.y * h, -p.z * w] for p in result.multi_face_landmarks[0].landmark],
                   dtype=np.float64)
    return pts


def _tps_kernel(r2):
    # U(r) = r^2 log r, written with r^2 to skip a sqrt; 0 at r = 0
    r2 = np.maximum(r2, 1e-12, dtype=r2.dtype)
    return 0.5 * r2 * np.log(r2)


class PortraitRenderer:
    """render(values (28,)) -> (height, width, 3) uint8 RGB frame of the animated portrait."""

    def __init__(self, image_path=None, width=512, height=512, face_fraction=0.42,
                 grid_step=10, image=None, mouth_colour=(45, 12, 18), teeth_colour=(225, 220, 210),
                 lash_colour=(40, 28, 25), depth_factor=0.6, smoothing=1e-4):
        if int(width) != width or int(height) != height or width < 64 or height < 64:
            raise ValueError(f"width and height must be integers >= 64, got {width}x{height}")
        if not 0.1 <= face_fraction <= 0.9:
            raise ValueError(f"face_fraction must be in [0.1, 0.9], got {face_fraction}")
        self.width, self.height = int(width), int(height)
        if image is not None:
            source = "<image array>"
            rgb = np.asarray(image)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        elif image_path:
            source = str(image_path)
            rgb = load_rgb(source)
        else:
            from skimage import data
            source = "skimage.data.astronaut()"
            rgb = data.astronaut()
        self.source = source
        self.mouth_colour = tuple(int(c) for c in mouth_colour)
        self.teeth_colour = tuple(int(c) for c in teeth_colour)
        self.lash_colour = tuple(int(c) for c in lash_colour)
        self.depth_factor = float(depth_factor)
        self.smoothing = float(smoothing)
        self.dropped_values = 0

        # crop: a window of the output's aspect around the face, a little low to keep shoulders
        pts = detect_face_mesh(rgb, source)
        oval = pts[FACE_OVAL, :2]
        face_w = oval[:, 0].max() - oval[:, 0].min()
        centre = np.array([oval[:, 0].mean(), oval[:, 1].mean()])
        k = self.width * face_fraction / face_w
        centre[1] += 0.08 * self.height / k
        affine = np.array([[k, 0, self.width / 2 - k * centre[0]],
                           [0, k, self.height / 2 - k * centre[1]]])
        self.base = cv2.warpAffine(rgb, affine, (self.width, self.height), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
        self.landmarks = np.column_stack([pts[:, :2] * k + affine[:, 2], pts[:, 2] * k])  # (478, 3)
        lm = self.landmarks
        self.eye_distance = float(np.linalg.norm(lm[473, :2] - lm[468, :2]))
        self.face_width = float(face_w * k)
        # the head turns about an axis near the ears: at the depth of the face's side silhouette
        self.pivot = np.array([lm[FACE_OVAL, 0].mean(), lm[FACE_OVAL, 1].mean(),
                               np.percentile(lm[FACE_OVAL, 2], 15)])
        self.patterns, self._pattern_channels = self._expression_patterns()  # (20, 478, 2), (20,)
        self.lid_colours = {s: self._skin_above_eye(s) for s in ("Left", "Right")}

        # still anchors: the image border and a row across the shoulders
        n = 8
        t = np.linspace(0, 1, n, endpoint=False)
        W, H = self.width - 1, self.height - 1
        border = np.concatenate([np.column_stack([t * W, 0 * t]), np.column_stack([W + 0 * t, t * H]),
                                 np.column_stack([W - t * W, H + 0 * t]), np.column_stack([0 * t, H - t * H])])
        chin_y = lm[152, 1]
        shoulders_y = min(H, chin_y + 0.6 * self.face_width)
        shoulders = np.column_stack([np.linspace(0.1 * W, 0.9 * W, 7), np.full(7, shoulders_y)])
        ring = self._ring(1.35)
        self.anchors = np.concatenate([border, shoulders, ring])

        # coarse grid on which the spline is evaluated, then upsampled to full size
        self.grid_step = int(grid_step)
        gx = np.arange(0, self.width + self.grid_step, self.grid_step, dtype=np.float64)
        gy = np.arange(0, self.height + self.grid_step, self.grid_step, dtype=np.float64)
        self._grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)   # (G, 2)
        self._grid_shape = (len(gy), len(gx))
        self._scale = float(max(self.width, self.height))
        self._grid_unit = (self._grid / self._scale).astype(np.float32)
        self._grid_sq = (self._grid_unit ** 2).sum(1)[:, None]
        full_x, full_y = np.meshgrid(np.arange(self.width, dtype=np.float32),
                                     np.arange(self.height, dtype=np.float32))
        self._identity = (full_x, full_y)

    # ------------------------------------------------------------------ set-up helpers
    def _ring(self, factor):
        """Still points on a ring around the face oval, so hair and background stay put."""
        lm = self.landmarks
        c = lm[FACE_OVAL, :2].mean(0)
        ring = c + factor * (lm[FACE_OVAL[::3], :2] - c)
        # none under the jaw: the chin must be free to drop when the mouth opens
        keep = (ring[:, 0] > 0) & (ring[:, 0] < self.width - 1) & (ring[:, 1] > 0) & (ring[:, 1] < lm[13, 1])
        return ring[keep]

    def _skin_above_eye(self, side):
        lm = self.landmarks
        upper = lm[EYE_UPPER[side], :2]
        brow = lm[BROW[side][5:], :2].mean(0)
        pts = upper[2:7] + 0.35 * (brow - upper[2:7])
        xs = np.clip(pts[:, 0].round().astype(int), 0, self.width - 1)
        ys = np.clip(pts[:, 1].round().astype(int), 0, self.height - 1)
        return tuple(int(c) for c in np.median(self.base[ys, xs], axis=0))

    def _expression_patterns(self):
        """One (478, 2) displacement pattern per expression channel, in pixels at value 1."""
        lm = self.landmarks[:, :2]
        D = self.eye_distance
        names = _M.names
        pats = {n: np.zeros_like(lm) for n in names if _M.channels[_I[n]].group not in ("pose", "gaze")}

        def gauss(centre, sigma):
            return np.exp(-((lm - centre) ** 2).sum(1) / (2 * (sigma * D) ** 2))[:, None]

        mouth = 0.5 * (lm[13] + lm[14])
        half_w = 0.5 * abs(lm[291, 0] - lm[61, 0])
        lower_lip = np.array(LIPS_LOWER_INNER[1:-1] + LIPS_LOWER_OUTER[1:-1])
        upper_lip = np.array(LIPS_UPPER_INNER[1:-1] + LIPS_UPPER_OUTER[1:-1])

        # jaw: the lower lip, chin and lower face drop; the lower lip less toward the corners
        below = np.clip((lm[:, 1] - mouth[1]) / (0.3 * D), 0, 1) * np.exp(-((lm[:, 0] - mouth[0]) / (1.1 * D)) ** 2)
        w = below.copy()
        w[lower_lip] = np.clip(1 - ((lm[lower_lip, 0] - mouth[0]) / half_w) ** 2, 0, 1) ** 0.6
        w[upper_lip] = 0.0
        pats["jawOpen"][:, 1] = 0.42 * D * w
        pats["jawOpen"][upper_lip, 1] -= 0.03 * D

        for side, sx in (("Left", 1.0), ("Right", -1.0)):
            corner = lm[MOUTH_CORNER[side]]
            cheek = lm[CHEEK[side]]
            near_corner = gauss(corner, 0.35)
            pats["mouthSmile" + side] = near_corner * np.array([0.12 * sx * D, -0.14 * D]) \
                + gauss(cheek, 0.4) * np.array([0.02 * sx * D, -0.06 * D])
            pats["mouthFrown" + side] = near_corner * np.array([0.0, 0.12 * D])
            pats["mouthStretch" + side] = gauss(corner, 0.3) * np.array([0.15 * sx * D, 0.02 * D])
            pats["eyeWide" + side][EYE_UPPER[side][1:-1], 1] = -0.07 * D
            pats["eyeWide" + side] += gauss(lm[BROW[side]].mean(0), 0.3) * np.array([0, -0.04 * D])
            brow_c = lm[BROW[side]].mean(0)
            down = gauss(brow_c, 0.35) * np.array([0, 0.09 * D])
            down[np.array(BROW_INNER[side])] *= 1.4
            pats["browDown" + side] = down
            pats["browOuterUp" + side] = gauss(lm[BROW_OUTER[side]].mean(0), 0.3) * np.array([0, -0.12 * D])
            pats["cheekSquint" + side] = gauss(cheek, 0.35) * np.array([0, -0.07 * D])
            pats["cheekSquint" + side][EYE_LOWER[side][1:-1], 1] -= 0.04 * D
        inner = 0.5 * (lm[BROW_INNER["Left"]].mean(0) + lm[BROW_INNER["Right"]].mean(0))
        pats["browInnerUp"] = (gauss(lm[BROW_INNER["Left"]].mean(0), 0.25) + gauss(lm[BROW_INNER["Right"]].mean(0), 0.25)
                               + 0.3 * gauss(inner, 0.4)) * np.array([0, -0.1 * D])

        # rounded lips: corners pulled toward the middle; funnel also opens the lips a little
        toward_mouth = (mouth - lm) * gauss(mouth, 0.55)
        pats["mouthPucker"] = toward_mouth * np.array([0.4, 0.15])
        pats["mouthFunnel"] = toward_mouth * np.array([0.25, 0.0])
        pats["mouthFunnel"][upper_lip, 1] -= 0.06 * D
        pats["mouthFunnel"][lower_lip, 1] += 0.1 * D
        # blinks are drawn as eyelids, not warped
        expr = [n for n in names if _M.channels[_I[n]].group not in ("pose", "gaze")]
        return np.stack([pats[n] for n in expr]), np.array([_I[n] for n in expr])

    # ------------------------------------------------------------------ per frame
    def moved_landmarks(self, v):
        """(478, 2) landmark positions in the output image for a sanitised motion vector."""
        lm = self.landmarks.copy()
        lm[:, :2] += np.tensordot(v[self._pattern_channels], self.patterns, axes=1)
        D = self.eye_distance
        for side in ("Left", "Right"):
            shift = np.array([np.sin(v[_I["gaze_yaw"]]) * 0.22 * D, -np.sin(v[_I["gaze_pitch"]]) * 0.12 * D])
            lm[IRIS[side], :2] += shift
        yaw, pitch, roll = v[_I["head_yaw"]], v[_I["head_pitch"]], v[_I["head_roll"]]
        p = lm - self.pivot
        # a flattened head: full parallax would push far-side features onto the silhouette,
        # which a 2D warp can only fold, not hide
        x, y, z = p[:, 0], p[:, 1], p[:, 2] * self.depth_factor
        # same conventions as the motion space: yaw > 0 nose to image right, pitch > 0 nose up,
        # roll > 0 clockwise on screen (y points down)
        x, z = x * np.cos(yaw) + z * np.sin(yaw), -x * np.sin(yaw) + z * np.cos(yaw)
        y = y * np.cos(pitch) - z * np.sin(pitch)
        x, y = x * np.cos(roll) - y * np.sin(roll), x * np.sin(roll) + y * np.cos(roll)
        s = np.exp(v[_I["head_scale"]])
        out = np.column_stack([x, y]) * s + self.pivot[:2]
        out += np.array([v[_I["head_tx"]], v[_I["head_ty"]]]) * self.face_width
        return out

    def _backward_map(self, moved):
        """Full-size (map_x, map_y) float32: for each output pixel, where to sample the portrait."""
        ctrl_dst = np.concatenate([moved[_CONTROL], self.anchors]) / self._scale
        ctrl_src = np.concatenate([self.landmarks[_CONTROL, :2], self.anchors]) / self._scale
        n = len(ctrl_dst)
        K = _tps_kernel(((ctrl_dst[:, None] - ctrl_dst[None]) ** 2).sum(-1))
        K[np.diag_indices(n)] += self.smoothing  # keeps crowded points (lips, far cheek) from folding
        P = np.column_stack([np.ones(n), ctrl_dst])
        A = np.zeros((n + 3, n + 3))
        A[:n, :n], A[:n, n:], A[n:, :n] = K, P, P.T
        rhs = np.zeros((n + 3, 2))
        rhs[:n] = ctrl_src - ctrl_dst
        coef = np.linalg.solve(A, rhs)
        g = self._grid_unit                                            # (G, 2) float32
        c = ctrl_dst.astype(np.float32)
        r2 = self._grid_sq + (c ** 2).sum(1)[None] - 2.0 * (g @ c.T)   # (G, n) squared distances
        Kg = _tps_kernel(r2)
        disp = Kg @ coef[:n].astype(np.float32) + coef[n].astype(np.float32) + g @ coef[n + 1:].astype(np.float32)
        disp = (disp * self._scale).reshape(*self._grid_shape, 2).astype(np.float32)
        # the coarse grid covers [0, (cells-1)*step]; resize maps its corners onto the image's
        gh, gw = self._grid_shape
        cover_w, cover_h = (gw - 1) * self.grid_step, (gh - 1) * self.grid_step
        full = cv2.resize(disp, (cover_w + 1, cover_h + 1), interpolation=cv2.INTER_LINEAR)
        full = full[: self.height, : self.width]
        return self._identity[0] + full[..., 0], self._identity[1] + full[..., 1]

    def render(self, values):
        v, n_bad = _M.sanitize(values)
        self.dropped_values += n_bad
        v = v.astype(np.float64)
        moved = self.moved_landmarks(v)
        if not np.any(moved != self.landmarks[:, :2]):
            frame = self.base.copy()  # neutral: the crop itself, untouched by resampling
        else:
            map_x, map_y = self._backward_map(moved)
            frame = cv2.remap(self.base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self._draw_mouth(frame, moved, v)
        self._draw_eyelids(frame, moved, v)
        return frame

    def _draw_mouth(self, frame, moved, v):
        upper = moved[LIPS_UPPER_INNER]
        lower = moved[LIPS_LOWER_INNER]
        neutral_gap = self.landmarks[LIPS_LOWER_INNER, 1] - self.landmarks[LIPS_UPPER_INNER, 1]
        gap = (lower - upper)[:, 1]
        # only what opened beyond the portrait's own mouth is drawn as new cavity
        if (gap - neutral_gap).max() < 1.0:
            return
        cavity = np.concatenate([upper, lower[::-1]])
        cv2.fillPoly(frame, [np.round(cavity * _ONE).astype(np.int32)], self.mouth_colour, cv2.LINE_AA, _SHIFT)
        teeth_h = np.minimum(0.35 * gap, 0.09 * self.eye_distance) * np.sin(np.linspace(0, np.pi, len(gap))) ** 0.5
        teeth = np.concatenate([upper, (upper + np.column_stack([np.zeros_like(teeth_h), teeth_h]))[::-1]])
        cv2.fillPoly(frame, [np.round(teeth * _ONE).astype(np.int32)], self.teeth_colour, cv2.LINE_AA, _SHIFT)

    def _draw_eyelids(self, frame, moved, v):
        for side in ("Left", "Right"):
            blink = v[_I["eyeBlink" + side]]
            if blink < 0.02:
                continue
            upper = moved[EYE_UPPER[side]]
            lower = moved[EYE_LOWER[side]]
            # the lid edge comes down to the lower lid; reaching 95% already reads as shut
            edge = upper + min(1.0, blink / 0.95) * (lower - upper)
            lift = np.array([0.0, 0.03 * self.eye_distance])  # cover the lash line of the open eye too
            lid = np.concatenate([upper - lift, edge[::-1]])
            cv2.fillPoly(frame, [np.round(lid * _ONE).astype(np.int32)], self.lid_colours[side], cv2.LINE_AA, _SHIFT)
            thickness = max(1, int(round(0.03 * self.eye_distance)))
            cv2.polylines(frame, [np.round(edge * _ONE).astype(np.int32)], False, self.lash_colour, thickness, cv2.LINE_AA, _SHIFT)

    def close(self):
        pass
