"""The mouth temperature: the articulation channels' share of a block's starting noise, scaled
(a sampling setting of the learned model, chosen on validation; a live node parameter)."""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.core.motion_model import BlockConditions
from avatar_forcing_ros.generation.factory import shipped_model_dir
from avatar_forcing_ros.generation.forcing.config import ARTICULATION, ForcingConfig
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from forcing_helpers import tiny_net, write_checkpoint

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), tiny_net(std=0.1, motion_std=0.1, mouth_temperature=0.5))


def run(model, blocks=10, start=0):
    """Speech-like avatar audio features, a present user at rest."""
    out = []
    for i in range(start, start + blocks):
        rng = np.random.default_rng(100 + i)
        out.append(model.next_block(BlockConditions(2 * i, rng.normal(size=(2, 41)).astype(np.float32),
                                                    np.zeros((2, 41), np.float32),
                                                    np.repeat(AF_MOTION_V1.neutral()[None], 2, 0).astype(np.float32),
                                                    np.ones(2, np.float32))))
    return np.concatenate(out)


def test_noise_scale_is_the_temperature_on_the_articulation_channels_only():
    cfg = ForcingConfig(mouth_temperature=0.25)
    scale = cfg.noise_scale()
    mouth = AF_MOTION_V1.indices(ARTICULATION)
    assert scale.shape == (28,) and np.all(scale[mouth] == 0.25)
    assert np.all(np.delete(scale, mouth) == 1.0)
    assert "mouthSmileLeft" not in ARTICULATION  # a smile answers the user, not the avatar's voice
    assert np.all(cfg.noise_scale(0.0)[mouth] == 0.0)
    assert np.all(ForcingConfig().noise_scale() == 1.0)  # a model without the setting: as trained


@pytest.mark.parametrize("bad", [-0.1, 2.5, float("nan")])
def test_a_config_temperature_outside_zero_to_two_is_refused(bad):
    with pytest.raises(ValueError, match="mouth_temperature"):
        ForcingConfig(mouth_temperature=bad)


@pytest.mark.parametrize("bad", [2.5, float("nan")])
def test_a_live_temperature_above_two_or_nan_is_refused_and_the_old_one_kept(bad, ckpt):
    model = LearnedMotionModel(ckpt, threads=1)
    with pytest.raises(ValueError, match="mouth_temperature"):
        model.set_mouth_temperature(bad)
    assert model.mouth_temperature == 0.5


def test_the_models_own_temperature_is_the_default_and_negative_restores_it(ckpt):
    for path in (ckpt, ckpt / "model.onnx"):  # the ONNX metadata carries the config too
        model = LearnedMotionModel(path, threads=1)
        assert model.mouth_temperature == 0.5
        model.set_mouth_temperature(1.0)
        assert model.mouth_temperature == 1.0
        model.set_mouth_temperature(-1.0)
        assert model.mouth_temperature == 0.5
    assert LearnedMotionModel(ckpt, threads=1, mouth_temperature=0.0).mouth_temperature == 0.0


def test_torch_and_onnx_agree_at_a_temperature_also_after_a_live_change(ckpt):
    models = [LearnedMotionModel(ckpt, seed=3, threads=1, mouth_temperature=0.3),
              LearnedMotionModel(ckpt / "model.onnx", seed=3, threads=1, mouth_temperature=0.3)]
    first = [run(m) for m in models]
    np.testing.assert_allclose(first[0], first[1], atol=1e-3)
    for m in models:
        m.set_mouth_temperature(1.5)
    later = [run(m, start=10) for m in models]
    np.testing.assert_allclose(later[0], later[1], atol=1e-3)
    unchanged = LearnedMotionModel(ckpt, seed=3, threads=1, mouth_temperature=0.3)
    run(unchanged)
    assert not np.allclose(run(unchanged, start=10), later[0], atol=1e-3)  # the change took effect


def test_the_shipped_model_cold_varies_its_jaw_less_from_seed_to_seed_and_its_head_as_much():
    """What the setting is for: at temperature 0 the jaw follows the speech (the same in every
    seed's sample) while the head keeps its own random motion."""
    onnx = shipped_model_dir() / "model.onnx"
    jaw, yaw = AF_MOTION_V1.index("jawOpen"), AF_MOTION_V1.index("head_yaw")
    spread = {}
    for tau in (1.0, 0.0):
        samples = np.stack([run(LearnedMotionModel(onnx, seed=s, threads=1, mouth_temperature=tau), blocks=25)
                            for s in range(4)])
        spread[tau] = samples.std(axis=0).mean(axis=0)  # per channel: the spread over seeds
    assert spread[0.0][jaw] < 0.5 * spread[1.0][jaw], spread
    assert spread[0.0][yaw] > 0.7 * spread[1.0][yaw], spread
