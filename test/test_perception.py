"""perception.py on a real face: mediapipe on scikit-image's astronaut portrait and edits of it.

The edits (re-posing the head, opening the mouth, closing the eyes) are made here from the
portrait's own landmarks, so each test changes one thing and checks the channel that must
follow it.
"""
import math
import threading

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.transform import PiecewiseAffineTransform, warp

from avatar_forcing_ros.core.imaging import ImageFormatError
from avatar_forcing_ros.core.motion import AF_MOTION_V1 as SPACE
from avatar_forcing_ros.core.perception import FaceMotionEstimator, FaceObservation, FaceTracker

RIGHT_EYE = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)


# --- test images -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def portrait():
    """480x480 crop around the astronaut's face (about 175 px wide, near the centre)."""
    img = skimage.data.astronaut()
    return cv2.resize(np.ascontiguousarray(img[0:250, 100:350]), (480, 480), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def landmarks(portrait):
    with FaceTracker(static_image_mode=True) as tracker:
        lm = tracker.track(portrait)
    assert lm is not None and lm.shape == (478, 3)
    return lm


def turn_head(img, lm, yaw=0.0, pitch=0.0):
    """Re-pose the face: rotate its 3D landmarks (viewer conventions) and warp the picture to match."""
    h, w = img.shape[:2]
    centre = lm[:468].mean(0)
    cy, sy, cp, sp = math.cos(-yaw), math.sin(-yaw), math.cos(-pitch), math.sin(-pitch)
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # y is down: -yaw turns the nose right
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    moved = (lm[:468] - centre) @ (about_x @ about_y).T + centre
    frame = [(x, y) for x in np.linspace(0, w - 1, 6) for y in np.linspace(0, h - 1, 6)
             if x in (0, w - 1) or y in (0, h - 1)]  # the picture's border stays put
    tform = PiecewiseAffineTransform.from_estimate(np.vstack([moved[::2, :2], frame]),
                                                   np.vstack([lm[:468:2, :2], frame]))
    return warp(img, tform, output_shape=(h, w), mode="edge", preserve_range=True).astype(np.uint8)


def open_mouth(img, lm, drop_px=22):
    """Pull the lower lip and chin down by drop_px and paint the mouth's dark inside."""
    h, w = img.shape[:2]
    lips_meet = 0.5 * (lm[13, 1] + lm[14, 1])
    centre_x = 0.5 * (lm[61, 0] + lm[291, 0])
    half_face = 0.5 * (lm[454, 0] - lm[234, 0])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    across = np.exp(-((xx - centre_x) / (0.9 * half_face)) ** 2)
    below = np.clip((yy - lips_meet) / 4.0, 0, 1) * np.clip(1 - (yy - lm[152, 1] - drop_px) / (0.6 * half_face), 0, 1)
    out = cv2.remap(img, xx, yy - drop_px * across * below, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = [lm[i, :2] for i in UPPER_INNER_LIP] + [lm[i, :2] + (0, drop_px) for i in LOWER_INNER_LIP]
    cv2.fillPoly(out, [np.round(inside).astype(np.int32)], (45, 15, 20), lineType=cv2.LINE_AA)
    return out


def close_eyes(img, lm):
    """Paint skin-coloured lids over both eyes, with a dark lash line where the lids meet."""
    out = img.copy()
    for eye, cheek in ((RIGHT_EYE, 118), (LEFT_EYE, 347)):
        x, y = np.round(lm[cheek, :2]).astype(int)
        skin = np.median(img[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3), axis=0).tolist()
        outline = np.round(lm[list(eye), :2]).astype(np.int32)
        cv2.fillPoly(out, [outline], skin, lineType=cv2.LINE_AA)
        cv2.polylines(out, [outline], True, skin, 3, lineType=cv2.LINE_AA)
        lash = np.round(lm[list(eye[8:]) + [eye[0]], :2]).astype(np.int32)
        cv2.polylines(out, [lash], False, (60, 40, 35), 2, lineType=cv2.LINE_AA)
    return out


def move_brows(img, lm, up_px):
    """Lift (up_px > 0) or lower both brows, fading to nothing at the upper lids and the forehead."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shift = np.zeros((h, w), np.float32)
    for brow, lid in (((70, 63, 105, 66, 107), 159), ((300, 293, 334, 296, 336), 386)):
        pts = lm[list(brow), :2]
        left, right, brow_y = pts[:, 0].min() - 8, pts[:, 0].max() + 8, pts[:, 1].mean()
        gap = lm[lid, 1] - brow_y
        across = np.clip(np.minimum(xx - left, right - xx) / 8.0, 0, 1)
        along = np.where(yy > brow_y, np.clip((lm[lid, 1] - 3 - yy) / (gap - 3), 0, 1),
                         np.clip(1 - (brow_y - yy) / (2 * gap), 0, 1))
        shift += up_px * across * along
    return cv2.remap(img, xx, yy + shift, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def narrow_mouth(img, lm, amount=0.3):
    """Gather the lips toward the mouth's centre (amount: share of the width lost at the centre)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = 0.5 * (lm[61, 0] + lm[291, 0]), 0.5 * (lm[13, 1] + lm[14, 1])
    half = 0.5 * (lm[291, 0] - lm[61, 0])
    near = np.clip(1 - np.hypot((xx - cx) / (1.6 * half), (yy - cy) / (1.2 * half)), 0, 1) ** 0.7
    return cv2.remap(img, cx + (xx - cx) / (1 - amount * near), yy, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def look(img, lm, right=0.0, down=0.0):
    """Slide what is inside both eye openings by a fraction of the eye width: the irises move."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = img.copy()
    for eye, outer, inner in ((RIGHT_EYE, 33, 133), (LEFT_EYE, 263, 362)):
        eye_w = abs(lm[outer, 0] - lm[inner, 0])
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [np.round(lm[list(eye), :2]).astype(np.int32)], 255)
        moved = cv2.remap(img, xx - right * eye_w, yy - down * eye_w, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        out[inside > 0] = moved[inside > 0]
    return out


def affine(img, matrix):
    return cv2.warpAffine(img, np.float32(matrix), img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)


def rotate(img, degrees_clockwise):
    h, w = img.shape[:2]
    return affine(img, cv2.getRotationMatrix2D((w / 2, h / 2), -degrees_clockwise, 1.0))


def noise(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (480, 480, 3), dtype=np.uint8)


def observe(img, frames=2, **kwargs) -> FaceObservation:
    """A fresh estimator without calibration (absolute values), a few frames of one picture."""
    with FaceMotionEstimator(auto_calibration_frames=0, **kwargs) as est:
        for i in range(frames):
            obs = est.estimate(img, i / 25)
    return obs


def value(obs, name):
    return value_of(obs.values, name)


def value_of(values, name):
    return float(values[SPACE.index(name)])


# --- presence ----------------------------------------------------------------------------------
def test_face_is_found_in_the_astronaut_portrait(portrait):
    obs = observe(portrait)
    assert obs.face_present and obs.confidence > 0.8
    assert obs.values.shape == (SPACE.dim,) and obs.values.dtype == np.float32


def test_face_is_found_in_the_full_uncropped_photo():
    obs = observe(np.ascontiguousarray(skimage.data.astronaut()))
    assert obs.face_present and obs.confidence > 0.5


@pytest.mark.parametrize("picture", ["noise", "blank"])
def test_no_face_gives_zero_confidence_and_neutral_values(picture):
    img = noise() if picture == "noise" else np.full((480, 480, 3), 128, np.uint8)
    obs = observe(img)
    assert not obs.face_present and obs.confidence == 0.0
    np.testing.assert_array_equal(obs.values, SPACE.neutral())


def test_values_decay_toward_neutral_when_the_face_is_lost(portrait):
    tau = 0.5
    with FaceMotionEstimator(auto_calibration_frames=0, decay_tau_s=tau) as est:
        seen = est.estimate(portrait, 10.0).values
        distance = [np.abs(seen - SPACE.neutral()).sum()]
        lost = [est.estimate(noise(i), 10.0 + 0.1 * (i + 1)) for i in range(5)]
    assert all(not o.face_present and o.confidence == 0.0 for o in lost)
    distance += [np.abs(o.values - SPACE.neutral()).sum() for o in lost]
    assert distance[0] > 0.5  # the portrait is not neutral (smile, position)
    assert all(b < a for a, b in zip(distance, distance[1:]))
    # no jump: after 0.1 s the values kept exp(-0.1 / tau) of their distance from neutral
    np.testing.assert_allclose(lost[0].values, seen * math.exp(-0.1 / tau), rtol=1e-4, atol=1e-6)


# --- head pose ---------------------------------------------------------------------------------
def test_head_turned_right_gives_positive_yaw_and_its_mirror_negative(portrait, landmarks):
    turned = turn_head(portrait, landmarks, yaw=0.3)
    yaw = value(observe(turned), "head_yaw")
    yaw_mirrored = value(observe(np.ascontiguousarray(turned[:, ::-1])), "head_yaw")
    assert yaw > 0.12
    assert yaw_mirrored < -0.12


def test_mirrored_portrait_has_opposite_roll(portrait):
    roll = value(observe(portrait), "head_roll")
    roll_mirrored = value(observe(np.ascontiguousarray(portrait[:, ::-1])), "head_roll")
    assert roll > 0.02 and roll_mirrored < -0.02


def test_rotating_the_image_clockwise_increases_roll_by_the_angle(portrait):
    roll = value(observe(portrait), "head_roll")
    roll_cw = value(observe(rotate(portrait, 15)), "head_roll")
    roll_ccw = value(observe(rotate(portrait, -15)), "head_roll")
    assert roll_cw - roll == pytest.approx(math.radians(15), abs=0.06)
    assert roll_ccw - roll == pytest.approx(-math.radians(15), abs=0.06)


def test_head_tilted_up_gives_higher_pitch_than_tilted_down(portrait, landmarks):
    pitch = value(observe(portrait), "head_pitch")
    up = value(observe(turn_head(portrait, landmarks, pitch=0.25)), "head_pitch")
    down = value(observe(turn_head(portrait, landmarks, pitch=-0.25)), "head_pitch")
    assert up > pitch + 0.08
    assert down < pitch - 0.08


def test_face_moved_right_gives_positive_tx_and_moved_down_positive_ty(portrait):
    centred = observe(portrait)
    right = observe(affine(portrait, [[1, 0, 60], [0, 1, 0]]))
    down = observe(affine(portrait, [[1, 0, 0], [0, 1, 60]]))
    assert value(right, "head_tx") - value(centred, "head_tx") > 0.2
    assert abs(value(right, "head_ty") - value(centred, "head_ty")) < 0.05
    assert value(down, "head_ty") - value(centred, "head_ty") > 0.2


def test_face_scaled_up_gives_head_scale_of_the_log_ratio(portrait):
    centred = value(observe(portrait), "head_scale")
    zoom = cv2.getRotationMatrix2D((240, 240), 0, 1.3)
    closer = value(observe(affine(portrait, zoom)), "head_scale")
    assert closer - centred == pytest.approx(math.log(1.3), abs=0.08)


# --- expressions -------------------------------------------------------------------------------
def test_opening_the_mouth_raises_jaw_open(portrait, landmarks):
    closed = value(observe(portrait), "jawOpen")
    opened = value(observe(open_mouth(portrait, landmarks)), "jawOpen")
    assert opened > closed + 0.3


def test_closing_the_eyes_raises_both_blinks(portrait, landmarks):
    open_eyes = observe(portrait)
    shut = observe(close_eyes(portrait, landmarks))
    for side in ("Left", "Right"):
        assert value(open_eyes, "eyeBlink" + side) < 0.2
        assert value(shut, "eyeBlink" + side) > 0.7


def test_broad_smile_of_the_portrait_reads_as_smile_not_frown(portrait):
    obs = observe(portrait)
    for side in ("Left", "Right"):
        assert value(obs, "mouthSmile" + side) > 0.5
        assert value(obs, "mouthFrown" + side) == 0.0


def test_raised_brows_raise_inner_and_outer_brow_coefficients(portrait, landmarks):
    relaxed = observe(portrait, frames=3)
    raised = observe(move_brows(portrait, landmarks, 8), frames=3)
    for name in ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"):
        assert value(raised, name) > value(relaxed, name) + 0.3, name


def test_lowered_brows_read_as_brow_down_after_calibration(portrait, landmarks):
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        est.calibrate([portrait] * 4)
        lowered = move_brows(portrait, landmarks, -6)
        obs = [est.estimate(lowered, i / 25) for i in range(3)][-1]
    assert value(obs, "browDownLeft") > 0.15 and value(obs, "browDownRight") > 0.15
    assert value(obs, "browInnerUp") < 0.05


def test_narrowed_mouth_reads_as_pucker_after_calibration(portrait, landmarks):
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        est.calibrate([portrait] * 4)
        narrowed = narrow_mouth(portrait, landmarks, 0.3)
        obs = [est.estimate(narrowed, i / 25) for i in range(3)][-1]
    assert value(obs, "mouthPucker") > 0.3
    assert value(obs, "mouthStretchLeft") < 0.05 and value(obs, "mouthStretchRight") < 0.05


def test_irises_moved_right_give_positive_gaze_yaw_and_left_negative(portrait, landmarks):
    ahead = value(observe(portrait), "gaze_yaw")
    right = value(observe(look(portrait, landmarks, right=0.15), frames=3), "gaze_yaw")
    left = value(observe(look(portrait, landmarks, right=-0.15), frames=3), "gaze_yaw")
    assert right > ahead + 0.1
    assert left < ahead - 0.1


def test_irises_moved_up_give_higher_gaze_pitch_than_moved_down(portrait, landmarks):
    up = value(observe(look(portrait, landmarks, down=-0.08), frames=3), "gaze_pitch")
    down = value(observe(look(portrait, landmarks, down=0.08), frames=3), "gaze_pitch")
    assert up > down + 0.04


def test_every_value_is_finite_and_in_range(portrait, landmarks):
    pictures = [portrait, portrait[:, ::-1], rotate(portrait, 30), open_mouth(portrait, landmarks, 40),
                close_eyes(portrait, landmarks), affine(portrait, [[1, 0, 200], [0, 1, 0]]),
                cv2.resize(portrait, (120, 120)), noise()]
    for img in pictures:
        obs = observe(np.ascontiguousarray(img))
        assert np.isfinite(obs.values).all() and 0.0 <= obs.confidence <= 1.0
        assert (obs.values >= SPACE.low).all() and (obs.values <= SPACE.high).all()


def test_face_partly_out_of_frame_or_tiny_gets_lower_confidence(portrait):
    whole = observe(portrait).confidence
    cut = observe(cv2.warpAffine(portrait, np.float32([[1, 0, 200], [0, 1, 0]]), (480, 480)), frames=3)
    tiny = observe(cv2.resize(portrait, (80, 80), interpolation=cv2.INTER_AREA), frames=3)
    assert whole > 0.95
    assert cut.face_present and cut.confidence < whole - 0.1
    assert tiny.face_present and tiny.confidence < whole - 0.2


# --- calibration -------------------------------------------------------------------------------
def test_after_calibrating_on_the_portrait_its_values_are_near_neutral(portrait):
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        before = est.estimate(portrait, 0.0).values
        assert est.calibrate([portrait] * 6) == 6 and est.calibrated
        after = np.array([est.estimate(portrait, 0.04 * (i + 1)).values for i in range(4)])
    assert np.abs(before - SPACE.neutral()).max() > 0.3
    # the tracker jitters by a fraction of a millimetre frame to frame, ~0.1 on the finest channels
    np.testing.assert_allclose(after.mean(0), SPACE.neutral(), atol=0.05)
    np.testing.assert_allclose(after, np.broadcast_to(SPACE.neutral(), after.shape), atol=0.15)


def test_calibrated_estimator_still_sees_the_mouth_open(portrait, landmarks):
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        est.calibrate([portrait])
        mouth = open_mouth(portrait, landmarks)
        opened = [est.estimate(mouth, i / 25) for i in range(3)][-1]  # the tracker settles in a frame
    assert value(opened, "jawOpen") > 0.3


def test_auto_calibration_learns_the_neutral_from_the_first_frames(portrait, landmarks):
    with FaceMotionEstimator(auto_calibration_frames=3) as est:
        first = [est.estimate(portrait, i / 25).values for i in range(3)]
        assert est.calibrated
        mouth = open_mouth(portrait, landmarks)
        opened = [est.estimate(mouth, 0.2 + i / 25) for i in range(3)][-1]
    np.testing.assert_allclose(np.mean(first, axis=0), SPACE.neutral(), atol=0.05)
    for v in first:
        np.testing.assert_allclose(v, SPACE.neutral(), atol=0.15)
    assert value(opened, "jawOpen") > 0.3


def test_reset_calibration_returns_to_absolute_values(portrait):
    uncalibrated = observe(portrait).values
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        est.calibrate([portrait])
        est.reset_calibration()
        assert not est.calibrated
        for i in range(2):
            again = est.estimate(portrait, i / 25).values
    assert value_of(again, "head_scale") == pytest.approx(value_of(uncalibrated, "head_scale"), abs=0.03)
    assert value_of(again, "mouthSmileLeft") > 0.5
    np.testing.assert_allclose(again, uncalibrated, atol=0.15)  # frame-to-frame tracker jitter


def test_calibration_without_a_face_fails_and_keeps_the_neutral(portrait):
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        with pytest.raises(ValueError, match="no confident face"):
            est.calibrate([noise(1), noise(2)])
        assert not est.calibrated


# --- bad input and lifetime --------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.zeros((480, 480), np.uint8), np.zeros((480, 480, 4), np.uint8),
                                 np.zeros((480, 480, 3), np.float32), np.zeros((0, 0, 3), np.uint8)])
def test_image_that_is_not_rgb8_is_rejected_clearly(bad):
    with FaceMotionEstimator() as est:
        with pytest.raises(ImageFormatError, match="HxWx3 uint8 RGB"):
            est.estimate(bad, 0.0)


def test_non_finite_timestamp_is_rejected(portrait):
    with FaceMotionEstimator() as est:
        with pytest.raises(ValueError, match="timestamp must be finite"):
            est.estimate(portrait, float("nan"))


def test_estimator_made_on_one_thread_runs_on_a_worker_thread(portrait):
    results = []
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        worker = threading.Thread(target=lambda: results.extend(est.estimate(portrait, i / 25) for i in range(3)))
        worker.start()
        worker.join(timeout=60)
    assert not worker.is_alive()
    assert len(results) == 3 and all(o.face_present for o in results)


def test_estimating_after_close_is_an_error(portrait):
    est = FaceMotionEstimator()
    est.estimate(portrait, 0.0)
    est.close()
    with pytest.raises(RuntimeError, match="closed"):
        est.estimate(portrait, 0.04)
