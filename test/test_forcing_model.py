"""LearnedMotionModel (torch and onnxruntime), ONNX parity, checkpoint errors."""
import json

import numpy as np
import pytest
import torch

from avatar_forcing_ros.generation.forcing.checkpoint import CheckpointError, load_checkpoint
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.onnx_export import (INPUTS, OnnxStreamingRunner, StreamingStep, empty_state,
                                                    example_inputs)
from avatar_forcing_ros.core.motion_model import BlockConditions
from forcing_helpers import tiny_net, write_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), tiny_net(std=0.1, motion_std=0.1))


def conditions(start, B=2, seed=0):
    rng = np.random.default_rng(seed + start)
    return BlockConditions(start, rng.normal(size=(B, 41)).astype(np.float32),
                           rng.normal(size=(B, 41)).astype(np.float32),
                           (0.1 * rng.normal(size=(B, 28))).astype(np.float32), np.ones(B, np.float32))


def run(model, blocks=10):
    return np.concatenate([model.next_block(conditions(2 * i)) for i in range(blocks)])


def test_onnx_step_matches_torch_on_same_inputs(ckpt):
    net, _ = load_checkpoint(ckpt)
    step = StreamingStep(net).eval()
    runner = OnnxStreamingRunner(ckpt / "model.onnx", threads=1)
    state = {k: torch.from_numpy(v) for k, v in empty_state(net.cfg).items()}
    for i in range(6):  # past the cache length, so the rolling window is compared too
        ex = example_inputs(net.cfg, seed=i)
        got = runner.step(*(ex[k][0] for k in INPUTS[:5]), guidance=float(ex["guidance"][0]))
        with torch.no_grad():
            out = step(*[state[k] if k in state else torch.from_numpy(ex[k]) for k in INPUTS])
        state = dict(zip(["cache_k", "cache_v", "cache_valid", "conv_state"], out[1:]))
        np.testing.assert_allclose(got, out[0][0].numpy(), atol=1e-4)


def test_torch_and_onnx_models_give_same_motion(ckpt):
    a = run(LearnedMotionModel(ckpt, seed=3, threads=1))
    b = run(LearnedMotionModel(ckpt / "model.onnx", seed=3, threads=1))
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_same_seed_same_motion_and_reset_restarts(ckpt):
    m = LearnedMotionModel(ckpt, seed=5, threads=1)
    first = run(m)
    m.reset(5)
    assert np.array_equal(first, run(m))
    m.reset(6)
    assert not np.allclose(first, run(m))


def test_output_is_within_motion_space_range(ckpt):
    m = LearnedMotionModel(ckpt, threads=1)
    out = run(m)
    assert out.shape == (20, 28)
    assert np.all(out >= m.space.low) and np.all(out <= m.space.high)


def test_multiple_blocks_in_one_request_are_split(ckpt):
    m = LearnedMotionModel(ckpt, seed=1, threads=1)
    assert m.next_block(conditions(0, B=6)).shape == (6, 28)
    with pytest.raises(ValueError, match="blocks of 2"):
        m.next_block(conditions(0, B=3))


def test_wrong_feature_shape_is_named(ckpt):
    m = LearnedMotionModel(ckpt, threads=1)
    c = conditions(0)
    c.user_audio = c.user_audio[:, :40]
    with pytest.raises(ValueError, match=r"user_audio has shape \(2, 40\), expected \(2, 41\)"):
        m.next_block(c)


def test_nonfinite_inputs_are_replaced_and_counted(ckpt):
    m = LearnedMotionModel(ckpt, threads=1)
    c = conditions(0)
    c.avatar_audio[0, :3] = np.nan
    c.user_motion[1, 0] = np.inf
    out = m.next_block(c)
    assert np.all(np.isfinite(out)) and m.nonfinite_inputs == 4


def test_unavailable_onnx_provider_falls_back_to_cpu(ckpt, caplog):
    m = LearnedMotionModel(ckpt / "model.onnx", providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    assert m.runner.providers == ["CPUExecutionProvider"]
    assert "not available" in caplog.text


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        LearnedMotionModel(tmp_path)


def test_truncated_safetensors_names_the_file(ckpt, tmp_path):
    (tmp_path / "config.json").write_text((ckpt / "config.json").read_text())
    data = (ckpt / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable"):
        LearnedMotionModel(tmp_path)


def test_wrong_motion_space_is_rejected(ckpt, tmp_path):
    meta = json.loads((ckpt / "config.json").read_text())
    meta["config"]["motion_space"] = "af-motion-v2"
    (tmp_path / "config.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="motion_space is 'af-motion-v2', expected 'af-motion-v1'"):
        LearnedMotionModel(tmp_path)


def test_wrong_feature_dim_is_rejected(ckpt, tmp_path):
    meta = json.loads((ckpt / "config.json").read_text())
    meta["config"]["audio_dim"] = 80
    (tmp_path / "config.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="audio_dim is 80, expected 41"):
        LearnedMotionModel(tmp_path)


def test_weights_not_matching_config_are_rejected(ckpt, tmp_path):
    meta = json.loads((ckpt / "config.json").read_text())
    meta["config"]["n_embd"] = 64
    (tmp_path / "config.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes((ckpt / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="model.safetensors: tensor .* has shape"):
        LearnedMotionModel(tmp_path)


def test_garbage_onnx_file_names_the_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(CheckpointError, match="model.onnx: onnxruntime cannot load it"):
        LearnedMotionModel(bad)


def test_export_command_writes_onnx_with_config(ckpt, tmp_path):
    import onnx

    from avatar_forcing_ros.generation.forcing.onnx_export import main_export
    out = tmp_path / "step.onnx"
    assert main_export(["--checkpoint", str(ckpt), "--out", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["af_forcing_config"])["config"]["block_frames"] == 2
    assert LearnedMotionModel(out, threads=1).block_frames == 2


def test_guidance_can_change_to_one_while_streaming(ckpt):
    """A live guidance_scale of 1 (off) mid-stream: the cache keeps its rows (it raised a size
    mismatch on the torch backend), and the motion follows the new scale like a fresh ONNX run."""
    models = [LearnedMotionModel(ckpt, seed=3, threads=1, guidance_scale=3.0),
              LearnedMotionModel(ckpt / "model.onnx", seed=3, threads=1, guidance_scale=3.0)]
    for m in models:
        run(m, 3)
        m.set_guidance(1.0)
    after = [np.concatenate([m.next_block(conditions(2 * i)) for i in range(3, 8)]) for m in models]
    np.testing.assert_allclose(after[0], after[1], atol=2e-4)
    assert np.isfinite(after[0]).all()


def test_the_attention_encoder_exports_and_streams_the_same_motion_in_onnx(tmp_path):
    """The paper's dual encoder (cond_encoder "attention"): its streaming state (the user's audio
    and the user stream of the last K-1 frames) goes through the ONNX step like the conv's."""
    write_checkpoint(tmp_path, tiny_net(seed=1, std=0.1, motion_std=0.1, cond_encoder="attention"))
    a = run(LearnedMotionModel(tmp_path, seed=3, threads=1))
    b = run(LearnedMotionModel(tmp_path / "model.onnx", seed=3, threads=1))
    assert LearnedMotionModel(tmp_path / "model.onnx", threads=1).cfg.cond_encoder == "attention"
    np.testing.assert_allclose(a, b, atol=1e-3)
