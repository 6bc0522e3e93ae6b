"""Perception: the user's face in a camera frame -> one af-motion-v1 vector.

``FaceTracker`` runs mediapipe's face mesh (0.10.21, model inside the wheel) in tracking mode
with iris refinement: 478 landmarks per frame. ``FaceMotionEstimator`` turns them into the 28
channels of ``AF_MOTION_V1`` (see motion.py for the sign conventions, all in viewer terms):

- head pose: ``cv2.solvePnP`` (SQPNP) of 12 rigid landmarks against ``RIGID_FACE_MM``, a
  hand-made average adult face (mediapipe's canonical model is not shipped in Python), with a
  pinhole camera from the image size. tx/ty in face widths, scale = log(neutral distance /
  distance).
- expressions and gaze: the landmarks' 3D (mediapipe's x, y and relative depth) are aligned
  onto the same rigid template (similarity fit), so every distance below is in template
  millimetres: independent of face size, position and head pose. Coefficients are changes of
  those distances from the user's neutral, divided by the change that means "fully on".
- neutral: until calibrated, pose is absolute (angles vs facing the camera, tx/ty vs the image
  centre, scale vs a face spanning ``neutral_face_fraction`` of the image width) and
  expressions are measured from ``DEFAULT_NEUTRAL_FEATURES``. ``calibrate(frames)`` sets the
  user's own neutral (pose included) to the median over the frames; by default the running
  median of the first ``auto_calibration_frames`` confident frames does it automatically.
- no face: confidence 0, face_present False, the last values decay toward neutral with time
  constant ``decay_tau_s``.

Mediapipe's tracking mode crops each frame around the last landmarks, so on a still picture the
landmarks alternate by a fraction of a millimetre (about 0.1 on the finest coefficients) and
a sudden change settles over a frame or two. No smoothing is applied here: a consumer that
wants it filters over time.

Confidence: the Python face mesh hides its presence score (it only reports a face above
``min_tracking_confidence``), so confidence is a plausibility score of the found face: share of
landmarks inside the image, face size in pixels and how well the rigid template fits.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .imaging import ImageFormatError
from .motion import AF_MOTION_V1, MotionSpace

# Rigid landmarks (mediapipe face-mesh indices) and a hand-made average adult face in mm:
# x to the image's right for a frontal face, y down, z away from the camera (the camera's own
# axes, so a frontal face has the identity rotation); origin between the inner eye corners.
# Proportions from common anthropometry (outer canthi 90 mm apart, inner 32 mm, nose tip 35 mm
# in front of them, face breadth ~136 mm), depths checked against mediapipe's own relative
# depth on a frontal face. Only points the jaw, lips, lids and brows do not move.
RIGID_FACE_MM = {
    33: (-45.0, -2.0, 8.0),    # outer eye corner, face's right (image left)
    133: (-16.0, 0.0, 0.0),    # inner eye corner, face's right
    362: (16.0, 0.0, 0.0),     # inner eye corner, face's left
    263: (45.0, -2.0, 8.0),    # outer eye corner, face's left
    168: (0.0, -5.0, -17.0),   # nose bridge between the eyes
    151: (0.0, -34.0, -18.0),  # mid forehead
    1: (0.0, 38.0, -35.0),     # nose tip
    2: (0.0, 47.0, -18.0),     # below the nose tip
    98: (-20.0, 38.0, -10.0),  # nostril wing, face's right
    327: (20.0, 38.0, -10.0),  # nostril wing, face's left
    234: (-68.0, 12.0, 60.0),  # face side at the cheekbone, face's right
    454: (68.0, 12.0, 60.0),   # face side at the cheekbone, face's left
}
_RIGID_IDX = np.array(list(RIGID_FACE_MM), dtype=np.int64)
_RIGID_MM = np.array(list(RIGID_FACE_MM.values()), dtype=np.float64)
FACE_WIDTH_MM = 136.0  # 234 <-> 454: one "face width" for head_tx / head_ty

# Landmark groups, per side. "R" is the face's own right (image left), as ARKit names sides.
_EYE = {  # outer corner, inner corner, (upper lid, lower lid) pairs, iris centre
    "R": (33, 133, ((159, 145), (158, 153), (160, 144)), 468),
    "L": (263, 362, ((386, 374), (385, 380), (387, 373)), 473),
}
_BROW_INNER = {"R": (107, 66), "L": (336, 296)}
_BROW_OUTER = {"R": (70, 63), "L": (300, 293)}
_CHEEK = {"R": (117, 118, 50), "L": (346, 347, 280)}
_MOUTH_CORNER = {"R": 61, "L": 291}
_INNER_LIP_PAIRS = ((13, 14), (82, 87), (312, 317))  # upper, lower
_UPPER_LIP, _LOWER_LIP, _SUBNASALE = 0, 17, 2
_EYEBALL_RADIUS_MM = 12.0
_EYE_WIDTH_MM = 30.0  # iris travel is measured in eye widths; this turns it into mm

# Raw measurements (template mm, or ratios) that the coefficients are made from.
FEATURES = (
    "lip_gap", "mouth_width", "lip_protrusion",
    "corner_lift_R", "corner_lift_L", "half_width_R", "half_width_L",
    "eye_open_R", "eye_open_L", "iris_x_R", "iris_x_L", "iris_y_R", "iris_y_L",
    "brow_inner_R", "brow_inner_L", "brow_outer_R", "brow_outer_L", "cheek_R", "cheek_L",
)
_F = {n: i for i, n in enumerate(FEATURES)}
# Neutral defaults (used until calibrated): eyes, brows and cheeks as measured on the
# astronaut portrait, mouth as a relaxed closed mouth of the same face proportions; rounded.
DEFAULT_NEUTRAL_FEATURES = {
    "lip_gap": 1.0, "mouth_width": 52.0, "lip_protrusion": -7.0,
    "corner_lift_R": -1.0, "corner_lift_L": -1.0, "half_width_R": 26.0, "half_width_L": 26.0,
    "eye_open_R": 0.30, "eye_open_L": 0.30, "iris_x_R": 0.0, "iris_x_L": 0.0,
    "iris_y_R": -0.05, "iris_y_L": -0.05,
    "brow_inner_R": 20.0, "brow_inner_L": 20.0, "brow_outer_R": 17.0, "brow_outer_L": 17.0,
    "cheek_R": 19.0, "cheek_L": 19.0,
}
# Change from neutral that means "fully on" (mm, or ratio for eye_open): the coefficient scales.
_JAW_OPEN_MM = 30.0
_NARROW_MM = 14.0
_ROUND_MM = 8.0
_PROTRUDE_MM = 6.0
_SMILE_MM = 6.0
_FROWN_MM = 4.0
_STRETCH_MM = 6.0
_BROW_UP_MM = 6.0
_BROW_DOWN_MM = 4.0
_CHEEK_MM = 4.0
_BLINK_FRACTION = 0.75  # eye opening lost (of neutral) for a full blink
_WIDE_FRACTION = 0.5
# The same scales for other measurements of the user (core/humans.py: ROS4HRI landmarks).
FULLY_ON = {"jaw_open_mm": _JAW_OPEN_MM, "narrow_mm": _NARROW_MM, "round_mm": _ROUND_MM, "smile_mm": _SMILE_MM,
            "frown_mm": _FROWN_MM, "stretch_mm": _STRETCH_MM, "brow_up_mm": _BROW_UP_MM,
            "brow_down_mm": _BROW_DOWN_MM, "blink_fraction": _BLINK_FRACTION, "wide_fraction": _WIDE_FRACTION,
            "eye_width_mm": _EYE_WIDTH_MM, "eyeball_radius_mm": _EYEBALL_RADIUS_MM}


@dataclass
class FaceObservation:
    values: np.ndarray  # (28,) float32 in AF_MOTION_V1 order, in range
    confidence: float  # 0 when no face
    face_present: bool


@dataclass
class _Measurement:
    pose: np.ndarray  # (6,) yaw, pitch, roll (rad), position x, y, z of the face (mm, camera)
    features: np.ndarray  # (len(FEATURES),)
    confidence: float
    default_z: float  # distance (mm) at which the face spans neutral_face_fraction of the width


class FaceTracker:
    """mediapipe face mesh, one face, tracking mode, iris landmarks; created on first use.

    ``track(rgb)`` returns (478, 3) landmarks in pixels (x, y, relative depth in x's pixel
    scale) or None when no face is found. Call from one thread at a time; ``close()`` frees it.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 static_image_mode: bool = False):
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.static_image_mode = bool(static_image_mode)
        self._mesh = None
        self._closed = False

    def _ensure_mesh(self):
        if self._closed:
            raise RuntimeError("FaceTracker is closed")
        if self._mesh is None:
            import mediapipe as mp  # heavy import, only when a frame arrives
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=self.static_image_mode, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
        return self._mesh

    def track(self, rgb: np.ndarray) -> np.ndarray | None:
        rgb = _check_rgb(rgb)
        result = self._ensure_mesh().process(rgb)
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        lm = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y, p.z) for p in lm], dtype=np.float64)
        if pts.shape[0] < 478:
            return None  # no iris landmarks: cannot happen with refine_landmarks, never guess
        return pts * np.array([w, h, w])

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_rgb(rgb) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or a.shape[0] < 16 or a.shape[1] < 16:
        raise ImageFormatError(
            f"face tracking needs an HxWx3 uint8 RGB image of at least 16x16; got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def _similarity_to_template(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation R, scale s, translation t with template ~= s * points @ R + t (Umeyama)."""
    src = points[_RIGID_IDX]
    mu_s, mu_d = src.mean(0), _RIGID_MM.mean(0)
    a, b = src - mu_s, _RIGID_MM - mu_d
    u, sig, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = float((sig * np.diag(fix)).sum() / (a ** 2).sum())
    return rot, scale, mu_d - scale * mu_s @ rot


def _pose_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """Face-to-camera rotation -> (yaw, pitch, roll) in af-motion-v1 terms."""
    nose = -rot[:, 2]  # where the face points (toward the camera when frontal)
    yaw = math.atan2(nose[0], -nose[2])  # nose toward the image's right: > 0
    pitch = math.atan2(-nose[1], math.hypot(nose[0], nose[2]))  # nose up (image -y): > 0
    roll = math.atan2(rot[1, 0], rot[0, 0])  # face x-axis turning toward image +y: clockwise
    return yaw, pitch, roll


def _features(frontal: np.ndarray) -> np.ndarray:
    """Expression/gaze measurements from landmarks in template millimetres."""
    f = np.zeros(len(FEATURES))
    up = np.array([p[0] for p in _INNER_LIP_PAIRS])
    lo = np.array([p[1] for p in _INNER_LIP_PAIRS])
    f[_F["lip_gap"]] = np.mean(frontal[lo, 1] - frontal[up, 1])
    corner_r, corner_l = frontal[_MOUTH_CORNER["R"]], frontal[_MOUTH_CORNER["L"]]
    f[_F["mouth_width"]] = np.linalg.norm(corner_l[:2] - corner_r[:2])
    lips_z = 0.5 * (frontal[_UPPER_LIP, 2] + frontal[_LOWER_LIP, 2])
    f[_F["lip_protrusion"]] = frontal[_SUBNASALE, 2] - lips_z  # lips pushed toward the camera: up
    mid_x = frontal[_SUBNASALE, 0]
    lip_centre_y = frontal[13, 1]  # upper inner lip: moves least when the jaw opens
    for side, corner in (("R", corner_r), ("L", corner_l)):
        f[_F["corner_lift_" + side]] = lip_centre_y - corner[1]
        f[_F["half_width_" + side]] = abs(corner[0] - mid_x)
        outer, inner, lids, iris = _EYE[side]
        eye_w = np.linalg.norm(frontal[outer, :2] - frontal[inner, :2])
        lid_gap = np.mean([frontal[lo_, 1] - frontal[up_, 1] for up_, lo_ in lids])
        f[_F["eye_open_" + side]] = lid_gap / eye_w
        eye_mid = 0.5 * (frontal[outer, :2] + frontal[inner, :2])
        f[_F["iris_x_" + side]] = (frontal[iris, 0] - eye_mid[0]) / eye_w
        f[_F["iris_y_" + side]] = (frontal[iris, 1] - eye_mid[1]) / eye_w
        eye_line_y = eye_mid[1]
        f[_F["brow_inner_" + side]] = eye_line_y - frontal[list(_BROW_INNER[side]), 1].mean()
        f[_F["brow_outer_" + side]] = eye_line_y - frontal[list(_BROW_OUTER[side]), 1].mean()
        f[_F["cheek_" + side]] = frontal[list(_CHEEK[side]), 1].mean() - eye_line_y
    return f


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


class FaceMotionEstimator:
    """Camera frames -> af-motion-v1 observations of the user's face.

    Cheap to construct (mediapipe loads on the first frame). ``estimate`` is meant for one
    worker thread; ``calibrate``/``reset_calibration`` may come from another (a lock guards
    the state). ``focal_px`` defaults to the image width (about 53 degrees across).
    """

    def __init__(self, space: MotionSpace = AF_MOTION_V1, decay_tau_s: float = 0.5,
                 auto_calibration_frames: int = 50, min_calibration_confidence: float = 0.6,
                 focal_px: float | None = None, neutral_face_fraction: float = 0.25,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 tracker: FaceTracker | None = None):
        if space.id != AF_MOTION_V1.id:
            raise ValueError(f"FaceMotionEstimator measures {AF_MOTION_V1.id}, not {space.id}")
        if not decay_tau_s > 0:
            raise ValueError(f"decay_tau_s must be > 0, got {decay_tau_s}")
        if auto_calibration_frames < 0:
            raise ValueError(f"auto_calibration_frames must be >= 0, got {auto_calibration_frames}")
        if not 0 < neutral_face_fraction <= 1:
            raise ValueError(f"neutral_face_fraction must be in (0, 1], got {neutral_face_fraction}")
        self.space = space
        self.decay_tau_s = float(decay_tau_s)
        self.auto_calibration_frames = int(auto_calibration_frames)
        self.min_calibration_confidence = float(min_calibration_confidence)
        self.focal_px = focal_px
        self.neutral_face_fraction = float(neutral_face_fraction)
        self.tracker = tracker or FaceTracker(min_detection_confidence, min_tracking_confidence)
        self._lock = threading.RLock()  # tracker and neutral: one user at a time
        self._idx = {n: space.index(n) for n in space.names}
        self._neutral_values = space.neutral()
        self.reset_calibration()
        self._last_values = self._neutral_values.copy()
        self._last_time: float | None = None

    # --- calibration -----------------------------------------------------------------------
    def reset_calibration(self) -> None:
        """Forget the user's neutral: defaults again, and auto-calibration starts over."""
        with self._lock:
            self._neutral_pose: np.ndarray | None = None  # None: absolute (camera) pose
            self._neutral_features = np.array([DEFAULT_NEUTRAL_FEATURES[n] for n in FEATURES])
            self._calibration_samples: list[_Measurement] = []
            self._auto_done = self.auto_calibration_frames == 0

    @property
    def calibrated(self) -> bool:
        return self._neutral_pose is not None

    def calibrate(self, frames) -> int:
        """Take the user's neutral from RGB frames of a relaxed face looking at the camera.

        Returns how many frames had a confident face; none is a ValueError (nothing changes).
        Stops auto-calibration.
        """
        with self._lock:
            samples = []
            for rgb in frames:
                m = self._measure(rgb)
                if m is not None and m.confidence >= self.min_calibration_confidence:
                    samples.append(m)
            if not samples:
                raise ValueError("calibration failed: no confident face in any of the frames")
            self._set_neutral(samples)
            self._auto_done = True
            return len(samples)

    def _set_neutral(self, samples: list[_Measurement]) -> None:
        # median: a blink or a word during calibration does not become the neutral
        self._neutral_pose = np.median([m.pose for m in samples], axis=0)
        self._neutral_features = np.median([m.features for m in samples], axis=0)

    # --- per frame -------------------------------------------------------------------------
    def estimate(self, rgb: np.ndarray, timestamp: float) -> FaceObservation:
        timestamp = float(timestamp)
        if not math.isfinite(timestamp):
            raise ValueError(f"timestamp must be finite, got {timestamp}")
        with self._lock:
            m = self._measure(rgb)
            if m is None:
                values = self._decay(timestamp)
                obs = FaceObservation(values, 0.0, False)
            else:
                if not self._auto_done and m.confidence >= self.min_calibration_confidence:
                    self._calibration_samples.append(m)
                    self._set_neutral(self._calibration_samples)
                    if len(self._calibration_samples) >= self.auto_calibration_frames:
                        self._auto_done = True
                        self._calibration_samples = []
                obs = FaceObservation(self._values(m), m.confidence, True)
            self._last_values = obs.values
            if self._last_time is None or timestamp > self._last_time:
                self._last_time = timestamp
            return FaceObservation(obs.values.copy(), obs.confidence, obs.face_present)

    def _decay(self, timestamp: float) -> np.ndarray:
        dt = 0.0 if self._last_time is None else max(0.0, timestamp - self._last_time)
        keep = math.exp(-dt / self.decay_tau_s)
        return (self._neutral_values + (self._last_values - self._neutral_values) * keep).astype(np.float32)

    def _measure(self, rgb: np.ndarray) -> _Measurement | None:
        pts = self.tracker.track(rgb)
        if pts is None or not np.isfinite(pts).all():
            return None
        h, w = rgb.shape[:2]
        focal = float(self.focal_px or w)
        camera = np.array([[focal, 0, w / 2.0], [0, focal, h / 2.0], [0, 0, 1]])
        image_pts = np.ascontiguousarray(pts[_RIGID_IDX, :2])
        ok, rvec, tvec = cv2.solvePnP(_RIGID_MM, image_pts, camera, None, flags=cv2.SOLVEPNP_SQPNP)
        if not ok or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
            return None
        rot, _ = cv2.Rodrigues(rvec)
        yaw, pitch, roll = _pose_angles(rot)
        pose = np.array([yaw, pitch, roll, *tvec[:, 0]])

        # landmarks -> template millimetres, pose removed, for pose-free distances
        r_fit, s_fit, t_fit = _similarity_to_template(pts)
        frontal = s_fit * pts @ r_fit + t_fit
        features = _features(frontal)
        if not np.isfinite(features).all():
            return None

        reproj, _ = cv2.projectPoints(_RIGID_MM, rvec, tvec, camera, None)
        face_px = np.linalg.norm(pts[454, :2] - pts[234, :2])
        rms = float(np.sqrt(np.mean(np.sum((reproj[:, 0] - image_pts) ** 2, axis=1))))
        inside = np.mean((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h))
        fit = _clip01(1.0 - (rms / max(face_px, 1e-6) - 0.04) / 0.12)  # template misfit: not a face
        size = _clip01(face_px / 48.0)  # tiny faces: landmarks are guesses
        default_z = focal * FACE_WIDTH_MM / (self.neutral_face_fraction * w)
        return _Measurement(pose, features, float(inside * fit * size), default_z)

    def _values(self, m: _Measurement) -> np.ndarray:
        v = self._neutral_values.copy()
        ix = self._idx
        yaw, pitch, roll, x, y, z = m.pose
        if self._neutral_pose is None:  # absolute: image centre, default distance
            x0, y0, z0 = 0.0, 0.0, m.default_z
        else:
            y0_, p0, r0, x0, y0, z0 = self._neutral_pose
            yaw, pitch, roll = yaw - y0_, pitch - p0, _wrap(roll - r0)
        v[ix["head_yaw"]], v[ix["head_pitch"]], v[ix["head_roll"]] = yaw, pitch, roll
        v[ix["head_tx"]] = (x - x0) / FACE_WIDTH_MM
        v[ix["head_ty"]] = (y - y0) / FACE_WIDTH_MM
        v[ix["head_scale"]] = math.log(z0 / z)

        f, n = m.features, self._neutral_features
        d = f - n
        gx = np.mean([d[_F["iris_x_R"]], d[_F["iris_x_L"]]])
        gy = np.mean([d[_F["iris_y_R"]], d[_F["iris_y_L"]]])
        # iris off the eye's centre by d mm: the eyeball turned by asin(d / radius)
        v[ix["gaze_yaw"]] = math.asin(max(-1.0, min(1.0, gx * _EYE_WIDTH_MM / _EYEBALL_RADIUS_MM)))
        v[ix["gaze_pitch"]] = -math.asin(max(-1.0, min(1.0, gy * _EYE_WIDTH_MM / _EYEBALL_RADIUS_MM)))

        jaw = _clip01(d[_F["lip_gap"]] / _JAW_OPEN_MM)
        narrow = _clip01(-d[_F["mouth_width"]] / _NARROW_MM)
        rounded = _clip01(d[_F["lip_gap"]] / _ROUND_MM)
        v[ix["jawOpen"]] = jaw
        v[ix["mouthFunnel"]] = narrow * rounded
        v[ix["mouthPucker"]] = _clip01(narrow * (1.0 - rounded) + d[_F["lip_protrusion"]] / _PROTRUDE_MM)
        for side in ("Left", "Right"):
            s = side[0]
            lift = d[_F["corner_lift_" + s]]
            smile = _clip01(lift / _SMILE_MM)
            v[ix["mouthSmile" + side]] = smile
            v[ix["mouthFrown" + side]] = _clip01(-lift / _FROWN_MM)
            v[ix["mouthStretch" + side]] = _clip01(d[_F["half_width_" + s]] / _STRETCH_MM - smile)
            eye0 = max(n[_F["eye_open_" + s]], 1e-3)
            eye_d = d[_F["eye_open_" + s]] / eye0
            v[ix["eyeBlink" + side]] = _clip01(-eye_d / _BLINK_FRACTION)
            v[ix["eyeWide" + side]] = _clip01(eye_d / _WIDE_FRACTION)
            inner, outer = d[_F["brow_inner_" + s]], d[_F["brow_outer_" + s]]
            v[ix["browDown" + side]] = _clip01(-(inner + outer) / 2.0 / _BROW_DOWN_MM)
            v[ix["browOuterUp" + side]] = _clip01(outer / _BROW_UP_MM)
            v[ix["cheekSquint" + side]] = _clip01(-d[_F["cheek_" + s]] / _CHEEK_MM)
        v[ix["browInnerUp"]] = _clip01((d[_F["brow_inner_R"]] + d[_F["brow_inner_L"]]) / 2.0 / _BROW_UP_MM)
        values, _ = self.space.sanitize(v)
        return values

    # --- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        self.tracker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi
