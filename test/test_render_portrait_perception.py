"""Closed loop: motions rendered on the portrait are recovered by the face-motion estimator.

This checks both sides at once: the renderer moves the face the way af-motion-v1 says, and
perception reads it back with the same signs and orderings.
"""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.core.perception import FaceMotionEstimator, FaceTracker
from avatar_forcing_ros.render.portrait import PortraitRenderer


@pytest.fixture(scope="module")
def loop():
    renderer = PortraitRenderer()
    estimator = FaceMotionEstimator(auto_calibration_frames=0, tracker=FaceTracker(static_image_mode=True))
    estimator.calibrate([renderer.render(M.neutral())])
    clock = iter(range(10_000))

    def observe(**channels):
        obs = estimator.estimate(renderer.render(M.from_dict(channels)), float(next(clock)))
        assert obs.face_present, f"no face seen in the frame rendered with {channels}"
        return M.as_dict(obs.values)

    yield observe
    estimator.close()


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


def test_jaw_open_ordering_is_recovered(loop):
    seen = [loop(jawOpen=j)["jawOpen"] for j in (0.0, 0.3, 0.6, 1.0)]
    assert all(b > a for a, b in zip(seen, seen[1:])), seen
    assert seen[1] == pytest.approx(0.3, abs=0.2) and seen[3] > 0.5


def test_smile_ordering_is_recovered(loop):
    def smile(amount):
        seen = loop(mouthSmileLeft=amount, mouthSmileRight=amount)
        return 0.5 * (seen["mouthSmileLeft"] + seen["mouthSmileRight"])
    seen = [smile(s) for s in (0.0, 0.5, 1.0)]
    assert seen[0] < seen[1] < seen[2], seen
    assert seen[2] > 0.5


def test_blinks_are_recovered_per_eye(loop):
    both = loop(eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    assert both["eyeBlinkLeft"] > 0.7 and both["eyeBlinkRight"] > 0.7
    left = loop(eyeBlinkLeft=1.0)
    assert left["eyeBlinkLeft"] > 0.7 and left["eyeBlinkRight"] < 0.3
    right = loop(eyeBlinkRight=1.0)
    assert right["eyeBlinkRight"] > 0.7 and right["eyeBlinkLeft"] < 0.3
