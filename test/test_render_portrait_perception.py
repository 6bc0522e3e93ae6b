"""Closed loop: motions rendered on the portraits are recovered by the face-motion estimator.

This checks both sides at once: the renderer moves the face the way af-motion-v1 says, and
perception (mediapipe's face mesh, really run) reads it back with the same signs and orderings,
on the three sample portraits (astronaut smiling with teeth, one with closed lips, one with an
open mouth). Each sweep is 5 frames, so the loop stays short.
"""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.core.perception import FaceMotionEstimator, FaceTracker
from avatar_forcing_ros.render.portrait import PortraitRenderer
from avatar_forcing_ros.render.portrait_gallery import sample_portraits

PORTRAITS = ("astronaut", "closed", "open")


@pytest.fixture(scope="module")
def renderers():
    return {name: PortraitRenderer(image=rgb) for name, rgb in sample_portraits().items()}


@pytest.fixture(scope="module")
def raw_estimator():
    """Uncalibrated: expressions measured against a relaxed closed mouth, not the photo's own."""
    est = FaceMotionEstimator(auto_calibration_frames=0, tracker=FaceTracker(static_image_mode=True))
    yield est
    est.close()


@pytest.fixture(scope="module")
def loops(renderers):
    """name -> observe(**channels): render, estimate against the rest frame as neutral."""
    out, estimators = {}, []
    for name, renderer in renderers.items():
        est = FaceMotionEstimator(auto_calibration_frames=0, tracker=FaceTracker(static_image_mode=True))
        est.calibrate([renderer.render(M.neutral())])
        estimators.append(est)

        def observe(_r=renderer, _e=est, **channels):
            obs = _e.estimate(_r.render(M.from_dict(channels)), 0.0)
            assert obs.face_present, f"no face seen in the frame rendered with {channels}"
            return M.as_dict(obs.values)
        out[name] = observe
    yield out
    for est in estimators:
        est.close()


@pytest.fixture(scope="module")
def loop(loops):
    return loops["astronaut"]


def seen_jaw(estimator, renderer, jaw):
    obs = estimator.estimate(renderer.render(M.from_dict({"jawOpen": jaw})), 0.0)
    assert obs.face_present
    return M.as_dict(obs.values)["jawOpen"]


@pytest.mark.parametrize("name", PORTRAITS)
def test_rest_reads_as_a_closed_mouth_and_full_jaw_as_wide_open(renderers, raw_estimator, name):
    assert seen_jaw(raw_estimator, renderers[name], 0.0) < 0.08
    assert seen_jaw(raw_estimator, renderers[name], 1.0) > 0.6


SWEEPS = {  # commanded channels at level 1, levels, what is read back
    "jawOpen": ({"jawOpen": 1.0}, np.linspace(0, 1, 5), lambda s: s["jawOpen"]),
    "smile": ({"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}, np.linspace(0, 1, 5),
              lambda s: s["mouthSmileLeft"] + s["mouthSmileRight"]),
    "blink": ({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}, np.linspace(0, 1, 5),
              lambda s: s["eyeBlinkLeft"] + s["eyeBlinkRight"]),
    "gaze": ({"gaze_yaw": 1.0}, np.linspace(-0.5, 0.5, 5), lambda s: s["gaze_yaw"]),
    "yaw": ({"head_yaw": 1.0}, np.linspace(-0.35, 0.35, 5), lambda s: s["head_yaw"]),
}


@pytest.mark.parametrize("name", PORTRAITS)
@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_commanded_motion_is_recovered(loops, name, sweep):
    channels, levels, read = SWEEPS[sweep]
    got = [read(loops[name](**{k: v * level for k, v in channels.items()})) for level in levels]
    r = np.corrcoef(levels, got)[0, 1]
    assert r >= 0.9, (sweep, name, np.round(got, 3))


def test_neutral_render_reads_back_as_neutral(loop):
    seen = loop()
    assert all(abs(seen[n]) < 0.05 for n in M.names), {n: v for n, v in seen.items() if abs(v) >= 0.05}


@pytest.mark.parametrize("yaw", [0.3, -0.3])
def test_head_yaw_sign_is_recovered(loop, yaw):
    seen = loop(head_yaw=yaw)["head_yaw"]
    assert np.sign(seen) == np.sign(yaw) and 0.05 < abs(seen) < 0.45


def test_head_pitch_up_is_recovered(loop):
    assert loop(head_pitch=0.3)["head_pitch"] > 0.03


def test_head_roll_is_recovered(loop):
    assert loop(head_roll=0.3)["head_roll"] == pytest.approx(0.3, abs=0.1)
    assert loop(head_roll=-0.3)["head_roll"] == pytest.approx(-0.3, abs=0.1)


def test_gaze_sign_is_recovered(loop):
    assert loop(gaze_yaw=0.5)["gaze_yaw"] > 0.1
    assert loop(gaze_yaw=-0.5)["gaze_yaw"] < -0.1


def test_blinks_are_recovered_per_eye(loop):
    both = loop(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    assert both["eyeBlinkLeft"] > 0.7 and both["eyeBlinkRight"] > 0.7
    left = loop(eyeBlinkLeft=1.0)
    assert left["eyeBlinkLeft"] > 0.7 and left["eyeBlinkRight"] < 0.3
    right = loop(eyeBlinkRight=1.0)
    assert right["eyeBlinkRight"] > 0.7 and right["eyeBlinkLeft"] < 0.3
