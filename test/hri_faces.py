"""Faces of known geometry as ROS4HRI FacialLandmarks: the 68 dlib/OpenPose points + 2 pupils
of an average adult face (template millimetres, outer eye corners 90 mm apart, the proportions
of perception's template), with a smile, an open jaw or raised brows, placed in an image."""
from __future__ import annotations

import numpy as np

_JAW = [(68 * np.cos(np.pi - k * np.pi / 16), 10 + 105 * np.sin(np.pi - k * np.pi / 16)) for k in range(17)]
_BROWS = [(-50, -15), (-42, -19), (-33, -23), (-24, -21), (-14, -19),
          (14, -19), (24, -21), (33, -23), (42, -19), (50, -15)]
_NOSE = [(0, -5), (0, 10), (0, 24), (0, 38), (-12, 42), (-6, 44), (0, 45), (6, 44), (12, 42)]
_EYES = [(-45, 0), (-37, -4.5), (-24, -4.5), (-16, 0), (-24, 4.5), (-37, 4.5),
         (16, 0), (24, -4.5), (37, -4.5), (45, 0), (37, 4.5), (24, 4.5)]
_MOUTH = [(-26, 71.5), (-16, 66), (-6, 64), (0, 65), (6, 64), (16, 66), (26, 71.5),
          (16, 78), (6, 81), (0, 82), (-6, 81), (-16, 78),
          (-20, 71.5), (-8, 70), (0, 70.5), (8, 70), (20, 71.5), (8, 71.5), (0, 71.5), (-8, 71.5)]
_PUPILS = [(-30.5, -1.45), (30.5, -1.45)]
TEMPLATE_MM = np.array(_JAW + _BROWS + _NOSE + _EYES + _MOUTH + _PUPILS, np.float64)
assert TEMPLATE_MM.shape == (70, 2)


def face_points(smile: float = 0.0, jaw: float = 0.0, brows: float = 0.0) -> np.ndarray:
    """(70, 2) template millimetres (x to the image's right, y down) of a frontal face.
    ``smile`` 1: lip corners 6 mm up and 3 mm out; ``jaw`` 1: lower lip and chin 30 mm down;
    ``brows`` 1: brows 6 mm up."""
    p = TEMPLATE_MM.copy()
    for i, side in ((48, -1), (54, 1), (60, -1), (64, 1)):
        p[i] += (3 * smile * side, -6 * smile)
    lower = [7, 8, 9, 55, 56, 57, 58, 59, 65, 66, 67]
    p[lower, 1] += 30 * jaw
    p[17:27, 1] -= 6 * brows
    return p


def landmarks_msg(points_mm: np.ndarray, centre=(0.5, 0.5), face_fraction: float = 0.25,
                  width: int = 640, height: int = 480, stamp=None, plain: bool = False):
    """hri_msgs/FacialLandmarks of a face whose outer eye corners span ``face_fraction`` of the
    image width x 90/136, centred (eye midpoint) at ``centre`` (normalised). ``plain``: the same
    fields on plain objects (no hri_msgs needed)."""
    px_per_mm = face_fraction * width / 136.0
    xy = np.asarray(centre) * (width, height) + points_mm * px_per_mm
    if plain:
        from types import SimpleNamespace

        return SimpleNamespace(width=width, height=height, landmarks=[
            SimpleNamespace(x=float(x / width), y=float(y / height), c=1.0) for x, y in xy])
    from hri_msgs.msg import FacialLandmarks, NormalizedPointOfInterest2D

    msg = FacialLandmarks(width=width, height=height)
    if stamp is not None:
        msg.header.stamp = stamp
    msg.landmarks = [NormalizedPointOfInterest2D(x=float(x / width), y=float(y / height), c=1.0) for x, y in xy]
    return msg
