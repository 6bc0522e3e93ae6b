"""A photo portrait animated by af-motion-v1: a landmark-driven image warp, no neural network.

At construction the portrait's face mesh (MediaPipe, 478 landmarks, with irises) is found
once (no face, or more than one, is a ValueError), the image is cropped around the face, and
the rest image is made: the photo's mouth state is read from its landmarks and its lips are
warped shut from their own texture (portrait_mouth.py). Each frame:
1. the eyes are redrawn in the rest image: the iris is moved inside the eye opening for gaze
   (the white behind it was filled at load time), and for blinks the upper lid's own skin and
   lashes are slid down over the eye, column by column;
2. every expression coefficient adds its own landmark displacement pattern (linear, built
   once from the portrait's landmarks, in units of the interocular distance D); head pose
   rotates the 3D mesh about the head centre and projects it back (orthographic), then moves
   and scales it. The hair ring around the face follows the head a little, the background
   ring and the shoulders stay: a small parallax of face against background;
3. a thin-plate spline through the moved landmarks (plus those anchors) gives the backward
   map on a coarse grid, upsampled and applied by cv2.remap;
4. where the lips have parted, the inside of the mouth is drawn between the moved inner lips:
   shaded cavity, tongue, and teeth (the photo's own where it shows them).
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from ..core.motion import AF_MOTION_V1
from .portrait_mouth import (LIPS_LOWER_INNER, LIPS_LOWER_OUTER, LIPS_UPPER_INNER, LIPS_UPPER_OUTER,
                             MouthInterior, analyse_mouth, close_lips, closed_lip_landmarks, luminance,
                             refine_inner_lips)

_M = AF_MOTION_V1
_I = {n: _M.index(n) for n in _M.names}

# MediaPipe face-mesh indices. "Left"/"Right" are the face's own sides (as ARKit names them):
# the face's left appears on the image's right.
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
MOUTH_CORNER = {"Right": 61, "Left": 291}
# eye contours from the outer to the inner corner, upper and lower lids matched point by point
EYE_UPPER = {"Right": [33, 246, 161, 160, 159, 158, 157, 173, 133],
             "Left": [263, 466, 388, 387, 386, 385, 384, 398, 362]}
EYE_LOWER = {"Right": [33, 7, 163, 144, 145, 153, 154, 155, 133],
             "Left": [263, 249, 390, 373, 374, 380, 381, 382, 362]}
EYE_RING = {"Right": [113, 225, 224, 223, 222, 221, 189, 226, 31, 228, 229, 230, 231, 232, 233, 244],
            "Left": [342, 445, 444, 443, 442, 441, 413, 446, 261, 448, 449, 450, 451, 452, 453, 464]}
IRIS = {"Right": [468, 469, 470, 471, 472], "Left": [473, 474, 475, 476, 477]}
BROW = {"Right": [70, 63, 105, 66, 107, 46, 53, 52, 65, 55],
        "Left": [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]}
BROW_INNER = {"Right": [107, 66, 55, 65], "Left": [336, 296, 285, 295]}
BROW_OUTER = {"Right": [70, 63, 46, 53], "Left": [300, 293, 276, 283]}
CHEEK = {"Right": 205, "Left": 425}
NOSE = [1, 2, 4, 5, 6, 98, 168, 197, 327]

# the warp is driven by these landmarks (a dense enough subset; all 478 would be slower).
# The irises are not among them: gaze is drawn in the eye, not warped.
_CONTROL = sorted(set(FACE_OVAL + LIPS_UPPER_OUTER + LIPS_LOWER_OUTER + LIPS_UPPER_INNER
                      + LIPS_LOWER_INNER + sum(EYE_UPPER.values(), []) + sum(EYE_LOWER.values(), [])
                      + sum(EYE_RING.values(), []) + sum(BROW.values(), []) + NOSE
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
    """(478, 3) landmarks in pixels of ``rgb`` (z toward the viewer, same scale as x).

    A photo without a face, or with more than one, is a ValueError naming the source."""
    import mediapipe as mp  # heavy; only the portrait renderers need it here

    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True,
                                         max_num_faces=2, min_detection_confidence=0.5) as mesh:
        result = mesh.process(np.ascontiguousarray(rgb))
    faces = result.multi_face_landmarks or []
    if not faces:
        raise ValueError(f"no face found in portrait {source}: use a well-lit, roughly frontal "
                         f"photo with one face")
    if len(faces) > 1:
        raise ValueError(f"{len(faces)} faces found in portrait {source}: use a photo with one face "
                         f"(or crop it to one)")
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h, -p.z * w] for p in faces[0].landmark], dtype=np.float64)


def _tps_kernel(r2):
    # U(r) = r^2 log r, written with r^2 to skip a sqrt; 0 at r = 0
    r2 = np.maximum(r2, 1e-12, dtype=r2.dtype)
    return 0.5 * r2 * np.log(r2)


class ThinPlateWarp:
    """Backward maps of an image of fixed size from control points (output -> source)."""

    def __init__(self, width, height, grid_step=10, smoothing=1e-4):
        self.width, self.height = int(width), int(height)
        self.grid_step = int(grid_step)
        self.smoothing = float(smoothing)
        gx = np.arange(0, self.width + self.grid_step, self.grid_step, dtype=np.float64)
        gy = np.arange(0, self.height + self.grid_step, self.grid_step, dtype=np.float64)
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)       # (G, 2)
        self._grid_shape = (len(gy), len(gx))
        self._scale = float(max(self.width, self.height))
        self._grid_unit = (grid / self._scale).astype(np.float32)
        self._grid_sq = (self._grid_unit ** 2).sum(1)[:, None]
        full_x, full_y = np.meshgrid(np.arange(self.width, dtype=np.float32),
                                     np.arange(self.height, dtype=np.float32))
        self._identity = (full_x, full_y)

    def backward_map(self, dst, src):
        """Full-size (map_x, map_y) float32: for each output pixel, where to sample the source,
        from (n, 2) control points at ``dst`` in the output that show ``src`` of the source."""
        ctrl_dst = np.asarray(dst, np.float64) / self._scale
        ctrl_src = np.asarray(src, np.float64) / self._scale
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


class _Eye:
    """One eye of the rest image: a box around it, the iris lifted out of the white, and the
    lid geometry for blinks (all in rest-image pixels)."""

    def __init__(self, base, lm, side):
        upper, lower = lm[EYE_UPPER[side], :2], lm[EYE_LOWER[side], :2]
        iris = lm[IRIS[side], :2]
        centre = iris[0]
        self.radius = float(np.linalg.norm(iris[1:] - centre, axis=1).mean())
        self.width = float(np.linalg.norm(upper[0] - upper[-1]))
        opening_h = float((lower[:, 1] - upper[:, 1]).max())
        pad = int(np.ceil(max(self.radius, 0.5 * self.width))) + 2
        h, w = base.shape[:2]
        x0, y0 = np.floor(np.minimum(upper.min(0), lower.min(0))).astype(int) - pad
        x1, y1 = np.ceil(np.maximum(upper.max(0), lower.max(0))).astype(int) + pad
        y0 -= int(np.ceil(1.2 * opening_h))  # room for the lid skin slid down in a blink
        self.box = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
        x0, y0, x1, y1 = self.box
        roi = base[y0:y1, x0:x1].astype(np.float32)
        off = np.array([x0, y0], np.float64)
        opening = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(opening, [np.round((np.concatenate([upper, lower[::-1]]) - off) * _ONE).astype(np.int32)],
                     255, cv2.LINE_AA, _SHIFT)
        self.opening = opening.astype(np.float32) / 255.0
        disc = np.zeros(roi.shape[:2], np.uint8)
        cv2.circle(disc, tuple(np.round((centre - off) * _ONE).astype(int)), int(round(1.08 * self.radius * _ONE)),
                   255, -1, cv2.LINE_AA, _SHIFT)
        disc = disc.astype(np.float32) / 255.0
        self.iris_alpha = disc * self.opening                             # the visible iris
        self.iris = roi.copy()
        # the white without the iris: each row filled across the iris from the white on either
        # side (keeps the shadow under the lid), then softened
        big = np.zeros(roi.shape[:2], np.uint8)
        cv2.circle(big, tuple(np.round(centre - off).astype(int)), int(np.ceil(1.25 * self.radius)), 1, -1)
        remove = big.astype(bool) & (self.opening > 0.02)
        known = (self.opening > 0.6) & ~big.astype(bool)
        white = roi.copy()
        for r in np.flatnonzero(remove.any(1)):
            cols, ref = np.flatnonzero(remove[r]), np.flatnonzero(known[r])
            if len(ref) == 0:
                ref_r = np.flatnonzero(known.any(1))
                if len(ref_r) == 0:
                    continue
                near = ref_r[np.argmin(np.abs(ref_r - r))]
                ref, src_row = np.flatnonzero(known[near]), roi[near]
            else:
                src_row = roi[r]
            for ch in range(3):
                white[r, cols, ch] = np.interp(cols, ref, src_row[ref, ch])
        soft = cv2.GaussianBlur(white, (0, 0), max(0.6, 0.15 * self.radius))
        fill = cv2.GaussianBlur(remove.astype(np.float32), (0, 0), 1.0)[..., None]
        self.white = roi * (1 - fill) + soft * fill
        self.sclera_colour = np.median(roi[known].reshape(-1, 3), axis=0) if known.any() else np.full(3, 200.0)
        if known.any():
            lum = roi[known] @ np.array([0.299, 0.587, 0.114], np.float32)
            self.sclera_colour = np.median(roi[known][lum >= np.percentile(lum, 60)], axis=0)
        # lid geometry per column of the box: upper lid, lower lid, the crease above
        xs = np.arange(x0, x1, dtype=np.float64)
        order_u = np.argsort(upper[:, 0])
        order_l = np.argsort(lower[:, 0])
        self.lid_cols = (xs >= upper[:, 0].min()) & (xs <= upper[:, 0].max())
        self.y_up = np.interp(xs, upper[order_u, 0], upper[order_u, 1]) - y0
        self.y_lo = np.interp(xs, lower[order_l, 0], lower[order_l, 1]) - y0
        self.y_crease = self.y_up - 1.1 * opening_h
        self.lash_px = 0.25 * opening_h  # the dark band of lashes along the upper lid
        self.y_crease = np.maximum(self.y_crease, 0.0)
        gy, gx = np.mgrid[0:roi.shape[0], 0:roi.shape[1]].astype(np.float32)
        self._gx, self._gy = gx, gy

    def draw(self, src, shift, blink):
        """Redraw this eye in ``src`` (a copy of the rest image): iris moved by ``shift`` (px),
        upper lid slid down by ``blink`` of the way to the lower lid."""
        x0, y0, x1, y1 = self.box
        roi = self.white.copy() if np.any(shift) else self.iris.copy()
        if np.any(shift):
            m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
            size = (x1 - x0, y1 - y0)
            iris = cv2.warpAffine(self.iris, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            a = cv2.warpAffine(self.iris_alpha, m, size, flags=cv2.INTER_LINEAR) * self.opening
            roi = roi * (1 - a[..., None]) + iris * a[..., None]
        if blink > 0.01:
            # rows from the crease to the new lid edge show the lid from the crease to its edge:
            # the skin stretched, the lash band above the edge at its own width. A full blink
            # tucks the lashes just past the lower lid's edge.
            edge = (self.y_up + 1.1 * min(1.0, blink) * (self.y_lo - self.y_up))[None]
            c, u = self.y_crease[None], self.y_up[None]
            lash = np.minimum(self.lash_px, 0.5 * (u - c))
            gy = self._gy
            skin = c + (gy - c) * (u - lash - c) / np.maximum(edge - lash - c, 1e-3)
            lid = np.where(gy >= edge - lash, u - (edge - gy), skin)
            map_y = np.where((gy >= c) & (gy <= edge) & self.lid_cols[None], lid, gy)
            roi = cv2.remap(roi.astype(np.float32), self._gx, map_y.astype(np.float32), cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        src[y0:y1, x0:x1] = roi.round().clip(0, 255).astype(np.uint8)


class PortraitRenderer:
    """render(values (28,)) -> (height, width, 3) uint8 RGB frame of the animated portrait."""

    def __init__(self, image_path=None, width=512, height=512, face_fraction=0.42,
                 grid_step=10, image=None, depth_factor=0.6, smoothing=1e-4, hair_follow=0.5):
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
        self.depth_factor = float(depth_factor)
        self.hair_follow = float(hair_follow)
        self.dropped_values = 0

        # crop: a window of the output's aspect around the face, a little low to keep shoulders
        pts = detect_face_mesh(rgb, source)
        oval = pts[FACE_OVAL, :2]
        face_w = oval[:, 0].max() - oval[:, 0].min()
        centre = np.array([oval[:, 0].mean(), oval[:, 1].mean()])
        k = self.width * face_fraction / face_w
        centre[1] += 0.08 * self.height / k
        # a tight photo: zoom in until the window fits it (no made-up border), then keep the
        # window inside the photo (the face may sit off-centre)
        ph, pw = rgb.shape[:2]
        k = max(k, self.width / pw, self.height / ph)
        half_w, half_h = 0.5 * self.width / k, 0.5 * self.height / k
        centre[0] = min(max(centre[0], half_w), pw - half_w)
        centre[1] = min(max(centre[1], half_h), ph - half_h)
        affine = np.array([[k, 0, self.width / 2 - k * centre[0]],
                           [0, k, self.height / 2 - k * centre[1]]])
        photo = cv2.warpAffine(rgb, affine, (self.width, self.height),
                               flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        photo_lm = np.column_stack([pts[:, :2] * k + affine[:, 2], pts[:, 2] * k])  # (478, 3)
        D = float(np.linalg.norm(photo_lm[473, :2] - photo_lm[468, :2]))
        photo_lm = refine_inner_lips(photo, photo_lm, D)
        self.photo, self.photo_landmarks, self.eye_distance = photo, photo_lm, D
        self.face_width = float(face_w * k)
        self.warp = ThinPlateWarp(self.width, self.height, grid_step, smoothing)
        self.anchors, self.hair = self._anchors(photo_lm)

        # the rest image: the photo with its lips closed
        self.mouth = analyse_mouth(photo, photo_lm, D)
        self.landmarks = closed_lip_landmarks(photo_lm, self.mouth, D)
        if self.mouth.state == "closed":
            self.base = photo.copy()
        else:
            self.base = close_lips(photo, photo_lm, self.landmarks, self.warp, _CONTROL,
                                   np.concatenate([self.anchors, self.hair]), D)
        lm = self.landmarks
        self.eyes = {s: _Eye(self.base, lm, s) for s in ("Left", "Right")}
        sclera = 0.5 * (self.eyes["Left"].sclera_colour + self.eyes["Right"].sclera_colour)
        self.interior = MouthInterior(photo, photo_lm, self.mouth, D, sclera, self._lip_colour(photo, photo_lm))
        # the head turns about an axis near the ears: at the depth of the face's side silhouette
        self.pivot = np.array([lm[FACE_OVAL, 0].mean(), lm[FACE_OVAL, 1].mean(),
                               np.percentile(lm[FACE_OVAL, 2], 15)])
        self.patterns, self._pattern_channels = self._expression_patterns()  # (20, 478, 2), (20,)

    # ------------------------------------------------------------------ set-up helpers
    def _anchors(self, lm):
        """Still points (image border, shoulders, a ring well outside the face) and the hair
        ring (around the face oval, above the mouth) that follows the head partly."""
        n = 8
        t = np.linspace(0, 1, n, endpoint=False)
        W, H = self.width - 1, self.height - 1
        border = np.concatenate([np.column_stack([t * W, 0 * t]), np.column_stack([W + 0 * t, t * H]),
                                 np.column_stack([W - t * W, H + 0 * t]), np.column_stack([0 * t, H - t * H])])
        chin_y = lm[152, 1]
        shoulders_y = min(H, chin_y + 0.6 * self.face_width)
        shoulders = np.column_stack([np.linspace(0.1 * W, 0.9 * W, 7), np.full(7, shoulders_y)])
        return np.concatenate([border, shoulders, self._ring(lm, 1.75)]), self._ring(lm, 1.3)

    def _ring(self, lm, factor):
        """Points on a ring around the face oval, none under the jaw (the chin must be free to
        drop when the mouth opens) and none outside the image."""
        c = lm[FACE_OVAL, :2].mean(0)
        ring = c + factor * (lm[FACE_OVAL[::3], :2] - c)
        keep = (ring[:, 0] > 0) & (ring[:, 0] < self.width - 1) & (ring[:, 1] > 0) & (ring[:, 1] < lm[13, 1])
        return ring[keep]

    @staticmethod
    def _lip_colour(rgb, lm):
        lip = np.concatenate([lm[LIPS_LOWER_OUTER, :2], lm[LIPS_LOWER_INNER[::-1], :2]])
        mask = np.zeros(rgb.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(lip).astype(np.int32)], 1)
        px = rgb[mask.astype(bool)]
        return np.median(px, axis=0) if len(px) else np.array([170, 90, 90])

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
        pats["jawOpen"][:, 1] = 0.5 * D * w
        # the corners follow the jaw a little, down and in: an open mouth, not a crescent
        for side, sx in (("Left", 1.0), ("Right", -1.0)):
            pats["jawOpen"] += gauss(lm[MOUTH_CORNER[side]], 0.12) * np.array([-0.05 * sx * D, 0.12 * D])
        pats["jawOpen"][upper_lip, 1] -= 0.03 * D * np.clip(1 - ((lm[upper_lip, 0] - mouth[0]) / half_w) ** 2, 0, 1)

        for side, sx in (("Left", 1.0), ("Right", -1.0)):
            corner = lm[MOUTH_CORNER[side]]
            cheek = lm[CHEEK[side]]
            near_corner = gauss(corner, 0.35)
            pats["mouthSmile" + side] = near_corner * np.array([0.12 * sx * D, -0.17 * D]) \
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
        pats["browInnerUp"] = (gauss(lm[BROW_INNER["Left"]].mean(0), 0.25)
                               + gauss(lm[BROW_INNER["Right"]].mean(0), 0.25)
                               + 0.3 * gauss(inner, 0.4)) * np.array([0, -0.1 * D])

        # rounded lips: corners pulled toward the middle; funnel also opens the lips a little
        toward_mouth = (mouth - lm) * gauss(mouth, 0.55)
        pats["mouthPucker"] = toward_mouth * np.array([0.4, 0.15])
        pats["mouthFunnel"] = toward_mouth * np.array([0.25, 0.0])
        pats["mouthFunnel"][upper_lip, 1] -= 0.06 * D
        pats["mouthFunnel"][lower_lip, 1] += 0.1 * D
        # blinks and gaze are drawn in the eye, not warped
        expr = [n for n in names if _M.channels[_I[n]].group not in ("pose", "gaze")]
        return np.stack([pats[n] for n in expr]), np.array([_I[n] for n in expr])

    # ------------------------------------------------------------------ per frame
    def _rotate(self, pts, v, amount=1.0):
        """Head pose applied to (N, 3) points (z toward the viewer), ``amount`` of the angles."""
        yaw, pitch, roll = (amount * v[_I[n]] for n in ("head_yaw", "head_pitch", "head_roll"))
        p = pts - self.pivot
        # a flattened head: full parallax would push far-side features onto the silhouette,
        # which a 2D warp can only fold, not hide
        x, y, z = p[:, 0], p[:, 1], p[:, 2] * self.depth_factor
        # same conventions as the motion space: yaw > 0 nose to image right, pitch > 0 nose up,
        # roll > 0 clockwise on screen (y points down)
        x, z = x * np.cos(yaw) + z * np.sin(yaw), -x * np.sin(yaw) + z * np.cos(yaw)
        y = y * np.cos(pitch) - z * np.sin(pitch)
        x, y = x * np.cos(roll) - y * np.sin(roll), x * np.sin(roll) + y * np.cos(roll)
        s = np.exp(amount * v[_I["head_scale"]])
        out = np.column_stack([x, y]) * s + self.pivot[:2]
        return out + amount * np.array([v[_I["head_tx"]], v[_I["head_ty"]]]) * self.face_width

    def moved_landmarks(self, v):
        """(478, 2) landmark positions in the output image for a sanitised motion vector
        (irises not moved: gaze is drawn inside the eye)."""
        lm = self.landmarks.copy()
        lm[:, :2] += np.tensordot(v[self._pattern_channels], self.patterns, axes=1)
        return self._rotate(lm, v)

    def moved_hair(self, v):
        """(n, 2) positions of the hair ring's points: they follow the head by ``hair_follow``."""
        hair = self.hair
        return self._rotate(np.column_stack([hair, np.full(len(hair), self.pivot[2])]), v, self.hair_follow)

    def warp_maps(self, v, moved=None):
        """(map_x, map_y): where each output pixel samples the rest image for motion ``v``, or
        None when nothing moves."""
        moved = self.moved_landmarks(v) if moved is None else moved
        if not np.any(moved != self.landmarks[:, :2]):
            return None
        dst = np.concatenate([moved[_CONTROL], self.moved_hair(v), self.anchors])
        src = np.concatenate([self.landmarks[_CONTROL, :2], self.hair, self.anchors])
        return self.warp.backward_map(dst, src)

    def iris_shift(self, v, side):
        """Pixels the iris moves in the rest image for the gaze in ``v``: an eyeball of about
        0.4 eye widths radius turned by the gaze angles."""
        eye = self.eyes[side]
        r = 0.4 * eye.width
        return np.array([r * np.sin(v[_I["gaze_yaw"]]), -0.8 * r * np.sin(v[_I["gaze_pitch"]])])

    def render(self, values):
        v, n_bad = _M.sanitize(values)
        self.dropped_values += n_bad
        v = v.astype(np.float64)
        src = self.base
        gazing = v[_I["gaze_yaw"]] != 0 or v[_I["gaze_pitch"]] != 0
        blinking = {s: v[_I["eyeBlink" + s]] for s in ("Left", "Right")}
        if gazing or max(blinking.values()) > 0.01:
            src = self.base.copy()
            for side, eye in self.eyes.items():
                shift = self.iris_shift(v, side)
                if np.any(shift) or blinking[side] > 0.01:
                    eye.draw(src, shift, blinking[side])
        moved = self.moved_landmarks(v)
        maps = self.warp_maps(v, moved)
        if maps is None:
            frame = src.copy()  # no warp: the rest image itself, untouched by resampling
        else:
            frame = cv2.remap(src, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self.interior.draw(frame, moved[LIPS_UPPER_INNER], moved[LIPS_LOWER_INNER], v[_I["jawOpen"]])
        return frame

    def close(self):
        pass


__all__ = ["PortraitRenderer", "ThinPlateWarp", "detect_face_mesh", "load_rgb", "luminance", "FACE_OVAL",
           "EYE_UPPER", "EYE_LOWER", "IRIS", "LIPS_UPPER_INNER", "LIPS_LOWER_INNER", "LIPS_UPPER_OUTER",
           "LIPS_LOWER_OUTER"]
