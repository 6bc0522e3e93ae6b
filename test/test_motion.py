"""The motion space contract."""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M, get_motion_space


def test_af_motion_v1_layout_is_frozen():
    # A reorder would silently break every checkpoint and every consumer: change the id instead.
    assert M.id == "af-motion-v1" and M.dim == 28
    assert M.names[:8] == ("head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty",
                           "head_scale", "gaze_yaw", "gaze_pitch")
    assert M.names[8] == "jawOpen" and M.names[-1] == "cheekSquintRight"


def test_expressions_range_zero_to_one_and_neutral_is_zero():
    mouth = M.group("mouth")
    assert np.all(M.low[mouth] == 0) and np.all(M.high[mouth] == 1)
    assert np.all(M.neutral() == 0)


def test_sanitize_replaces_non_finite_by_neutral_and_clips():
    v = M.neutral()
    v[M.index("jawOpen")] = np.nan
    v[M.index("mouthSmileLeft")] = 3.0
    out, n_bad = M.sanitize(v)
    assert n_bad == 1 and out[M.index("jawOpen")] == 0 and out[M.index("mouthSmileLeft")] == 1


def test_sanitize_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="expects 28"):
        M.sanitize(np.zeros(5))


def test_unknown_names_and_spaces_are_clear_errors():
    with pytest.raises(KeyError, match="no channel"):
        M.index("mouthRoll")
    with pytest.raises(KeyError, match="unknown motion space"):
        get_motion_space("af-motion-v0")
