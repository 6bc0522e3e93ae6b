"""The user from a robot's human-perception stack (ROS4HRI, REP-155) instead of our own camera.

A robot that runs hri_face_detect (or any ROS4HRI face detector) already tracks every face:
``/humans/faces/tracked`` lists the face ids, ``/humans/faces/<id>/landmarks`` gives each
face's 68 dlib/OpenPose landmarks + 2 pupils in normalised image coordinates,
``/humans/persons/<id>/engagement_status`` says who is engaged with the robot, and
``/humans/voices/<id>/audio`` carries each voice. ``HumanSource`` decides which person the
avatar is talking to and turns that person's landmarks into af-motion-v1, as the camera path
(core/perception.py) does from mediapipe's mesh:

- Landmarks -> motion (``LandmarkMotion``): roll from the eye line; the face de-rolled and
  scaled to template millimetres by the outer eye corners (90 mm apart, perception's
  template); yaw and pitch from the nose tip against the eyes (a 2D approximation: the tip is
  ~35 mm in front of the eye corners); tx/ty/scale from the face's centre and size in the
  image, as perception's uncalibrated pose. Expressions from the same measurements and "fully
  on" distances as perception (lip gap, lip-corner lift, mouth width, lid opening, brow
  heights, pupils): jaw, smile, frown, stretch, blink, wide, brows, gaze. Not measurable
  from 2D dlib points: cheekSquint and lip protrusion (pucker is width only). Each face has
  its own neutral: the median of its first ``calibration_frames`` frames (0: template defaults).
- Who is the user: among tracked faces with recent landmarks, an engaged person's face
  (ENGAGED over ENGAGING; among new candidates the one engaged longest), else the face that is
  the largest in the image; the current user is kept unless another is strictly better (two
  engaged people: the one being talked to stays the user until they disengage or vanish).
- A change of person crossfades the motion handed to the generator over ``switch_time_s``
  (no jump of the avatar's reaction) and is counted ("user switches").
- Voices: the audio of the selected person's voice (``/humans/persons/<id>/voice_id``, else a
  voice with the person's or the face's id) is the user's audio; other voices are not used.
- Ids appear and vanish: ``on_tracked`` returns which per-id topics to subscribe and drop, at
  most ``max_ids`` per kind (more are counted and ignored).

Pure Python, no rclpy: the generator node and the offline replay drive the same object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .motion import MotionSpace
from .perception import DEFAULT_NEUTRAL_FEATURES, FACE_WIDTH_MM, FULLY_ON

# what "fully on" means, as in the camera path
_JAW_OPEN_MM, _NARROW_MM, _ROUND_MM = FULLY_ON["jaw_open_mm"], FULLY_ON["narrow_mm"], FULLY_ON["round_mm"]
_SMILE_MM, _FROWN_MM, _STRETCH_MM = FULLY_ON["smile_mm"], FULLY_ON["frown_mm"], FULLY_ON["stretch_mm"]
_BROW_UP_MM, _BROW_DOWN_MM = FULLY_ON["brow_up_mm"], FULLY_ON["brow_down_mm"]
_BLINK_FRACTION, _WIDE_FRACTION = FULLY_ON["blink_fraction"], FULLY_ON["wide_fraction"]
_EYE_WIDTH_MM, _EYEBALL_RADIUS_MM = FULLY_ON["eye_width_mm"], FULLY_ON["eyeball_radius_mm"]

# hri_msgs/FacialLandmarks indices (dlib / OpenPose 68 + pupils). "R" is the face's own right
# (the image's left for a face looking at the camera), as ARKit and perception name sides.
N_LANDMARKS = 70
_EYE = {"R": (36, 39, ((37, 41), (38, 40)), 68), "L": (45, 42, ((44, 46), (43, 47)), 69)}  # outer, inner, lids, pupil
_BROW_INNER = {"R": (21, 20), "L": (22, 23)}
_BROW_OUTER = {"R": (17, 18), "L": (26, 25)}
_MOUTH_CORNER = {"R": 48, "L": 54}
_INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper, lower
_UPPER_INNER_LIP = 62
_NOSE_TIP = 30
_EYE_SPAN_MM = 90.0   # outer eye corners, as in perception's RIGID_FACE_MM (-45 .. 45)
_NOSE_DEPTH_MM = 35.0  # nose tip in front of the eye corners (perception's template)
_NOSE_DROP_MM = 38.0   # nose tip below the eye line (perception's template)
NEUTRAL_FACE_FRACTION = 0.25  # as perception: uncalibrated scale 0 at a face 1/4 of the image wide

FEATURES = ("lip_gap", "mouth_width", "corner_lift_R", "corner_lift_L", "half_width_R", "half_width_L",
            "eye_open_R", "eye_open_L", "iris_x_R", "iris_x_L", "iris_y_R", "iris_y_L",
            "brow_inner_R", "brow_inner_L", "brow_outer_R", "brow_outer_L")
_F = {n: i for i, n in enumerate(FEATURES)}
_DEFAULT = np.array([DEFAULT_NEUTRAL_FEATURES[n] for n in FEATURES])
POSE = ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "head_scale")

LARGER = 1.5  # without engagement, another face must be this much larger (area) to take over

# EngagementLevel.level
UNKNOWN, DISENGAGED, ENGAGING, ENGAGED, DISENGAGING = range(5)


class LandmarkError(ValueError):
    """Landmarks that are not a face (wrong count, non-finite, degenerate)."""


def landmark_points(msg) -> tuple[np.ndarray, np.ndarray]:
    """(70, 2) pixel coordinates and (70,) confidences of a FacialLandmarks (by fields)."""
    lms = list(msg.landmarks)
    if len(lms) != N_LANDMARKS:
        raise LandmarkError(f"{len(lms)} landmarks, expected {N_LANDMARKS}")
    w, h = float(msg.width or 1), float(msg.height or 1)
    xy = np.array([(p.x * w, p.y * h) for p in lms], np.float64)
    c = np.array([p.c for p in lms], np.float64)
    if not (np.isfinite(xy).all() and np.isfinite(c).all()):
        raise LandmarkError("non-finite landmark coordinates")
    return xy, c


def measure(xy: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """(pose (6,) in POSE order, uncalibrated; features (len(FEATURES),) in template mm)."""
    span = xy[_EYE["L"][0]] - xy[_EYE["R"][0]]
    span_px = float(np.hypot(*span))
    if span_px < 1e-6:
        raise LandmarkError("degenerate face (eye corners coincide)")
    roll = math.atan2(span[1], span[0])  # the face's left eye lower in the image: clockwise, > 0
    eye_mid = 0.5 * (xy[_EYE["L"][0]] + xy[_EYE["R"][0]])
    c, s = math.cos(-roll), math.sin(-roll)
    mm = ((xy - eye_mid) @ np.array([[c, s], [-s, c]])) * (_EYE_SPAN_MM / span_px)  # de-rolled, template mm
    nose = mm[_NOSE_TIP]
    yaw = math.asin(max(-1.0, min(1.0, nose[0] / _NOSE_DEPTH_MM)))
    pitch = math.asin(max(-1.0, min(1.0, (_NOSE_DROP_MM - nose[1]) / _NOSE_DEPTH_MM)))
    face_px = span_px * FACE_WIDTH_MM / _EYE_SPAN_MM / max(math.cos(yaw), 0.3)
    centre = xy[:68].mean(0)
    pose = np.array([yaw, pitch, roll, (centre[0] - width / 2) / face_px, (centre[1] - height / 2) / face_px,
                     math.log(face_px / (NEUTRAL_FACE_FRACTION * width))])

    f = np.zeros(len(FEATURES))
    up = [a for a, _ in _INNER_LIP_PAIRS]
    lo = [b for _, b in _INNER_LIP_PAIRS]
    f[_F["lip_gap"]] = np.mean(mm[lo, 1] - mm[up, 1])
    corner_r, corner_l = mm[_MOUTH_CORNER["R"]], mm[_MOUTH_CORNER["L"]]
    f[_F["mouth_width"]] = np.linalg.norm(corner_l - corner_r)
    mid_x = mm[_NOSE_TIP, 0]
    for side, corner in (("R", corner_r), ("L", corner_l)):
        f[_F["corner_lift_" + side]] = mm[_UPPER_INNER_LIP, 1] - corner[1]
        f[_F["half_width_" + side]] = abs(corner[0] - mid_x)
        outer, inner, lids, pupil = _EYE[side]
        eye_w = max(np.linalg.norm(mm[outer] - mm[inner]), 1e-6)
        f[_F["eye_open_" + side]] = np.mean([mm[b, 1] - mm[a, 1] for a, b in lids]) / eye_w
        centre_eye = 0.5 * (mm[outer] + mm[inner])
        f[_F["iris_x_" + side]] = (mm[pupil, 0] - centre_eye[0]) / eye_w
        f[_F["iris_y_" + side]] = (mm[pupil, 1] - centre_eye[1]) / eye_w
        f[_F["brow_inner_" + side]] = centre_eye[1] - mm[list(_BROW_INNER[side]), 1].mean()
        f[_F["brow_outer_" + side]] = centre_eye[1] - mm[list(_BROW_OUTER[side]), 1].mean()
    return pose, f


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


class LandmarkMotion:
    """One face's landmarks -> af-motion-v1, relative to its own neutral (see the module doc)."""

    def __init__(self, space: MotionSpace, calibration_frames: int = 30):
        self.space = space
        self.calibration_frames = int(calibration_frames)
        self._samples: list[tuple[np.ndarray, np.ndarray]] = []
        self._neutral_pose: np.ndarray | None = None
        self._neutral = _DEFAULT.copy()

    def values(self, xy: np.ndarray, conf: np.ndarray, width: float, height: float) -> tuple[np.ndarray, float]:
        """(motion (D,), confidence) of one frame's landmarks in pixels."""
        pose, f = measure(xy, width, height)
        if not (np.isfinite(pose).all() and np.isfinite(f).all()):
            raise LandmarkError("degenerate face geometry")
        if len(self._samples) < self.calibration_frames:
            self._samples.append((pose, f))
            self._neutral_pose = np.median([p for p, _ in self._samples], axis=0)
            self._neutral = np.median([x for _, x in self._samples], axis=0)
        # pupils a detector leaves out (confidence 0 at 0, 0) give no gaze
        pupils = conf[68] > 0 or conf[69] > 0 or xy[68:].any()
        confidence = float(conf[:68].mean()) if conf[:68].any() else 1.0
        return self._to_motion(pose, f, pupils), float(np.clip(confidence, 0.0, 1.0))

    def _to_motion(self, pose: np.ndarray, f: np.ndarray, pupils: bool) -> np.ndarray:
        sp = self.space
        v = sp.neutral()
        p = pose.copy()
        if self._neutral_pose is not None:
            p = p - self._neutral_pose
        for name, x in zip(POSE, p):
            v[sp.index(name)] = x
        d = f - self._neutral
        if pupils:
            gx = np.mean([d[_F["iris_x_R"]], d[_F["iris_x_L"]]])
            gy = np.mean([d[_F["iris_y_R"]], d[_F["iris_y_L"]]])
            v[sp.index("gaze_yaw")] = math.asin(max(-1.0, min(1.0, gx * _EYE_WIDTH_MM / _EYEBALL_RADIUS_MM)))
            v[sp.index("gaze_pitch")] = -math.asin(max(-1.0, min(1.0, gy * _EYE_WIDTH_MM / _EYEBALL_RADIUS_MM)))
        narrow = _clip01(-d[_F["mouth_width"]] / _NARROW_MM)
        rounded = _clip01(d[_F["lip_gap"]] / _ROUND_MM)
        v[sp.index("jawOpen")] = _clip01(d[_F["lip_gap"]] / _JAW_OPEN_MM)
        v[sp.index("mouthFunnel")] = narrow * rounded
        v[sp.index("mouthPucker")] = _clip01(narrow * (1.0 - rounded))
        for side in ("Left", "Right"):
            s = side[0]
            lift = d[_F["corner_lift_" + s]]
            smile = _clip01(lift / _SMILE_MM)
            v[sp.index("mouthSmile" + side)] = smile
            v[sp.index("mouthFrown" + side)] = _clip01(-lift / _FROWN_MM)
            v[sp.index("mouthStretch" + side)] = _clip01(d[_F["half_width_" + s]] / _STRETCH_MM - smile)
            eye0 = max(self._neutral[_F["eye_open_" + s]], 1e-3)
            eye_d = d[_F["eye_open_" + s]] / eye0
            v[sp.index("eyeBlink" + side)] = _clip01(-eye_d / _BLINK_FRACTION)
            v[sp.index("eyeWide" + side)] = _clip01(eye_d / _WIDE_FRACTION)
            inner, outer = d[_F["brow_inner_" + s]], d[_F["brow_outer_" + s]]
            v[sp.index("browDown" + side)] = _clip01(-(inner + outer) / 2.0 / _BROW_DOWN_MM)
            v[sp.index("browOuterUp" + side)] = _clip01(outer / _BROW_UP_MM)
        v[sp.index("browInnerUp")] = _clip01((d[_F["brow_inner_R"]] + d[_F["brow_inner_L"]]) / 2.0 / _BROW_UP_MM)
        values, _ = sp.sanitize(v)
        return values


@dataclass
class _Person:
    level: int = UNKNOWN
    engaged_since: float = math.inf
    face_id: str = ""
    voice_id: str = ""


@dataclass
class _Face:
    motion: LandmarkMotion
    area: float = 0.0  # landmark box area (px^2), for "the largest face"
    seen: float = -math.inf
    centre: tuple = (0.5, 0.5)  # eye midpoint, normalised image coordinates
    aspect: float = 0.75        # image height / width


@dataclass
class HumanSettings:
    calibration_frames: int = 30
    switch_time_s: float = 0.5
    max_ids: int = 16
    landmark_timeout_s: float = 1.0  # a face without landmarks for this long is not chosen
    camera_hfov_deg: float = 60.0    # horizontal field of view of the camera the landmarks are in


@dataclass
class Choice:
    """What ``on_landmarks`` hands on: the user's motion at ``stamp``."""
    values: np.ndarray
    confidence: float
    face_id: str


class HumanSource:
    """ROS4HRI's humans -> the one user the avatar talks to (see the module doc)."""

    KINDS = ("faces", "persons", "voices")

    def __init__(self, space: MotionSpace, settings: HumanSettings | None = None, telemetry=None):
        self.space = space
        self.settings = settings or HumanSettings()
        self.telemetry = telemetry
        self.tracked: dict[str, list[str]] = {k: [] for k in self.KINDS}
        self.faces: dict[str, _Face] = {}
        self.persons: dict[str, _Person] = {}
        self.selected: str = ""  # face id
        self.switches = 0
        self._last_out: np.ndarray | None = None
        self._fade_from: np.ndarray | None = None
        self._fade_start = 0.0

    # -- ids ----------------------------------------------------------------------------------

    def on_tracked(self, kind: str, ids, now: float) -> tuple[list[str], list[str]]:
        """A tracked-ids list of one kind; returns (ids to subscribe, ids to unsubscribe)."""
        unique = list(dict.fromkeys(i for i in ids if i))
        if len(unique) > self.settings.max_ids:
            self._drop(f"{kind} over max_ids", f"{len(unique)} tracked, following the first {self.settings.max_ids}")
            unique = unique[:self.settings.max_ids]
        old = self.tracked[kind]
        added = [i for i in unique if i not in old]
        removed = [i for i in old if i not in unique]
        self.tracked[kind] = unique
        if kind == "faces":
            for i in removed:
                self.faces.pop(i, None)
            for i in added:
                self.faces[i] = _Face(LandmarkMotion(self.space, self.settings.calibration_frames))
        elif kind == "persons":
            for i in removed:
                self.persons.pop(i, None)
            for i in added:
                self.persons[i] = _Person()
        self._set("tracked " + kind, len(unique))
        if removed or added:
            self._reselect(now)
        return added, removed

    def on_engagement(self, person_id: str, level: int, now: float) -> None:
        p = self.persons.get(person_id)
        if p is None:
            return
        level = int(level)
        if level in (ENGAGED, ENGAGING) and p.level not in (ENGAGED, ENGAGING):
            p.engaged_since = now
        elif level not in (ENGAGED, ENGAGING):
            p.engaged_since = math.inf
        p.level = level
        self._reselect(now)

    def on_person_face(self, person_id: str, face_id: str, now: float) -> None:
        if person_id in self.persons:
            self.persons[person_id].face_id = face_id
            self._reselect(now)

    def on_person_voice(self, person_id: str, voice_id: str) -> None:
        if person_id in self.persons:
            self.persons[person_id].voice_id = voice_id

    # -- who ----------------------------------------------------------------------------------

    def _face_of(self, person_id: str) -> str:
        p = self.persons[person_id]
        return p.face_id or person_id  # an anonymous person often carries its face's id

    def _rank(self, face_id: str, now: float) -> tuple:
        """Higher is a better user: engaged, then engaging, then the largest face; among engaged
        equals, the one engaged longest (the current user keeps it against an equal rank)."""
        face = self.faces[face_id]
        level, since = 0, math.inf
        for pid, p in self.persons.items():
            if self._face_of(pid) == face_id and p.level in (ENGAGED, ENGAGING):
                level, since = max(level, {ENGAGED: 2, ENGAGING: 1}[p.level]), min(since, p.engaged_since)
        fresh = now - face.seen <= self.settings.landmark_timeout_s
        return (fresh, level, face.area if not level else 0.0), -since

    def _reselect(self, now: float) -> None:
        candidates = [f for f in self.faces if self.faces[f].seen > -math.inf]
        if not candidates:
            if self.selected and self.selected not in self.faces:
                self._switch("", now)
            return
        best = max(candidates, key=lambda f: self._rank(f, now))
        current = self.selected if self.selected in self.faces else ""
        if current:
            rb, rc = self._rank(best, now)[0], self._rank(current, now)[0]
            if rb <= rc or (rb[:2] == rc[:2] and rb[2] < LARGER * rc[2]):
                return  # keep the current user unless another is strictly better
        if best != current:
            self._switch(best, now)

    def _switch(self, face_id: str, now: float) -> None:
        had = bool(self.selected)
        self.selected = face_id
        if had and face_id:
            self.switches += 1
            self._set("user switches", self.switches)
        if self._last_out is not None:
            self._fade_from, self._fade_start = self._last_out, now
        self._set("user face", face_id or "none")

    def voice_selected(self, voice_id: str) -> bool:
        """Whether a voice's audio is the selected user's."""
        if not self.selected:
            return False
        for pid, p in self.persons.items():
            if self._face_of(pid) == self.selected:
                return voice_id == (p.voice_id or pid) or voice_id == self.selected
        return voice_id == self.selected

    # -- landmarks -------------------------------------------------------------------------

    def on_landmarks(self, face_id: str, msg, now: float) -> Choice | None:
        """One face's landmarks at ``now``; the user's motion when it is the selected face (a
        crossfade from the previous user's for ``switch_time_s`` after a change), else None.
        Landmarks that are not a face raise LandmarkError (count and drop)."""
        face = self.faces.get(face_id)
        if face is None:
            return None  # not (or no longer) tracked
        xy, conf = landmark_points(msg)
        lo, hi = xy[:68].min(0), xy[:68].max(0)
        values, confidence = face.motion.values(xy, conf, float(msg.width or 1), float(msg.height or 1))
        face.area, face.seen = float(np.prod(hi - lo)), now
        w, h = float(msg.width or 1), float(msg.height or 1)
        eyes = 0.5 * (xy[_EYE["R"][0]] + xy[_EYE["L"][0]])
        face.centre, face.aspect = (eyes[0] / w, eyes[1] / h), h / w
        self._reselect(now)
        if face_id != self.selected:
            return None
        if self._fade_from is not None:
            a = (now - self._fade_start) / self.settings.switch_time_s if self.settings.switch_time_s > 0 else 1.0
            if a >= 1.0:
                self._fade_from = None
            else:
                values = self.space.clip(((1 - max(a, 0.0)) * self._fade_from + max(a, 0.0) * values).astype(np.float32))
        self._last_out = values
        return Choice(values, confidence, face_id)

    def direction(self, face_id: str) -> tuple[float, float] | None:
        """(yaw, pitch) of a face as seen from the camera (radians; the camera's left and up
        positive: a camera facing the way the avatar's face does, so they are the face's own
        left and up), from its last landmarks; None if the face is not tracked or never seen."""
        face = self.faces.get(face_id)
        if face is None or face.seen == -math.inf:
            return None
        t = math.tan(math.radians(self.settings.camera_hfov_deg) / 2)
        return (math.atan((0.5 - face.centre[0]) * 2 * t), math.atan((0.5 - face.centre[1]) * 2 * t * face.aspect))

    # -- telemetry -------------------------------------------------------------------------

    def _set(self, key, value) -> None:
        if self.telemetry is not None:
            self.telemetry.set(key, value)

    def _drop(self, reason, detail="") -> None:
        if self.telemetry is not None:
            self.telemetry.drop(reason, detail)


# -- out: the perceived face the REP-155 way ------------------------------------------------------

# hri_msgs/FacialActionUnits index (the AU code) <- af-motion-v1 channels, averaged, then scaled
# and clipped to [0, 1]. Sides: af-motion-v1's head_yaw > 0 turns the nose to the image's right,
# which is the person's own left for a face looking at the camera (FACS AU51 "head turn left");
# likewise gaze_yaw > 0 is AU61 "eyes turn left" and head_roll > 0 (clockwise in the image, the
# top of the head to the person's left) AU55 "head tilt left". Angles are in radians; the scale
# says which angle counts as full intensity (1).
FACS_MAP: dict[int, tuple[tuple[str, ...], float]] = {
    1: (("browInnerUp",), 1.0),                            # inner brow raiser
    2: (("browOuterUpLeft", "browOuterUpRight"), 1.0),     # outer brow raiser
    4: (("browDownLeft", "browDownRight"), 1.0),           # brow lowerer
    5: (("eyeWideLeft", "eyeWideRight"), 1.0),             # upper lid raiser
    6: (("cheekSquintLeft", "cheekSquintRight"), 1.0),     # cheek raiser
    12: (("mouthSmileLeft", "mouthSmileRight"), 1.0),      # lip corner puller
    15: (("mouthFrownLeft", "mouthFrownRight"), 1.0),      # lip corner depressor
    18: (("mouthPucker",), 1.0),                           # lip pucker
    20: (("mouthStretchLeft", "mouthStretchRight"), 1.0),  # lip stretcher
    22: (("mouthFunnel",), 1.0),                           # lip funneler
    25: (("jawOpen",), 1 / 0.1),                           # lips part: a tenth of a full jaw drop
    26: (("jawOpen",), 1.0),                               # jaw drop
    43: (("eyeBlinkLeft", "eyeBlinkRight"), 1.0),          # eyes closed
    51: (("head_yaw",), 1 / 0.5),                          # head turn left (0.5 rad = full)
    52: (("head_yaw",), -1 / 0.5),                         # head turn right
    53: (("head_pitch",), 1 / 0.4),                        # head up
    54: (("head_pitch",), -1 / 0.4),                       # head down
    55: (("head_roll",), 1 / 0.4),                         # head tilt left
    56: (("head_roll",), -1 / 0.4),                        # head tilt right
    61: (("gaze_yaw",), 1 / 0.4),                          # eyes turn left
    62: (("gaze_yaw",), -1 / 0.4),                         # eyes turn right
    63: (("gaze_pitch",), 1 / 0.3),                        # eyes up
    64: (("gaze_pitch",), -1 / 0.3),                       # eyes down
}
N_ACTION_UNITS = 99


def facial_action_units(space: MotionSpace, values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(intensity (99,), confidence (99,)) of hri_msgs/FacialActionUnits from one motion vector:
    the AUs of FACS_MAP in [0, 1] with the observation's confidence, the others 0 / 0."""
    intensity = np.zeros(N_ACTION_UNITS, np.float32)
    conf = np.zeros(N_ACTION_UNITS, np.float32)
    v = np.asarray(values, np.float64)
    for au, (channels, scale) in FACS_MAP.items():
        x = float(np.mean([v[space.index(c)] for c in channels])) * scale
        intensity[au] = min(1.0, max(0.0, x))
        conf[au] = float(np.clip(confidence, 0.0, 1.0))
    return intensity, conf


# The basic expressions a perceived face is told apart by (Ekman's six and neutral): the same
# prototypes the expression commands show, so a face made "sad" on command reads back as sad.
PERCEIVED_EXPRESSIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "scared")


def perceived_expression(space: MotionSpace, values: np.ndarray, confidence: float) -> tuple[str, float, float, float]:
    """(expression, valence, arousal, confidence) of hri_msgs/Expression for one perceived face
    (neutral-relative blendshapes): the nearest of PERCEIVED_EXPRESSIONS' prototypes on the
    expression channels (the speech and pose channels left out), valence from lip corners and
    cheeks against frown and brow lowering, arousal from wide eyes and raised brows against
    closing lids."""
    from .face_commands import EXPRESSIONS, SPEECH_CHANNELS

    names = [c.name for c in space.channels
             if c.low >= 0.0 and c.high <= 1.0 and c.name not in SPEECH_CHANNELS]
    v = np.asarray(values, np.float64)[space.indices(names)]
    best, best_d = "neutral", np.inf
    for name in PERCEIVED_EXPRESSIONS:
        proto = np.array([max(0.0, EXPRESSIONS[name].get(n, 0.0)) for n in names])
        d = float(np.linalg.norm(v - proto))
        if d < best_d:
            best, best_d = name, d

    def mean(*channels):
        return float(np.mean([values[space.index(c)] for c in channels]))

    valence = (mean("mouthSmileLeft", "mouthSmileRight") + 0.5 * mean("cheekSquintLeft", "cheekSquintRight")
               - mean("mouthFrownLeft", "mouthFrownRight") - 0.5 * mean("browDownLeft", "browDownRight"))
    arousal = (mean("eyeWideLeft", "eyeWideRight") + 0.5 * mean("browOuterUpLeft", "browOuterUpRight")
               - mean("eyeBlinkLeft", "eyeBlinkRight"))
    return (best, float(np.clip(valence, -1, 1)), float(np.clip(arousal, -1, 1)),
            float(np.clip(confidence, 0.0, 1.0)))
