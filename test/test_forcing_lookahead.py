"""The look-ahead (ForcingConfig.lookahead_frames, the paper's 2 frames into the next block):
motion frame t is made from the inputs up to t + L, learned that way, streamed that way by the
runtime (L frames more delay, speech still in sync) and scored that way by the evaluation."""
import numpy as np
import pytest
import torch

from avatar_forcing_ros.core.runtime import StreamingGenerator
from avatar_forcing_ros.generation.evaluation import generate, generate_batched
from avatar_forcing_ros.generation.forcing.learned_model import LearnedMotionModel
from avatar_forcing_ros.generation.forcing.train import SessionArrays, WindowSampler
from avatar_forcing_ros.pipeline import build_generator_stage, load_node_parameters
from forcing_helpers import tiny_net, write_checkpoint

SR, HOP = 16000, 640


@pytest.fixture(scope="module", params=[0, 2])
def ckpt(request, tmp_path_factory):
    net = tiny_net(std=0.2, motion_std=0.1, lookahead_frames=request.param)
    return write_checkpoint(tmp_path_factory.mktemp(f"lookahead{request.param}"), net), request.param


def session(frames=40, bump_at=None) -> SessionArrays:
    """Conditions whose avatar audio carries a frame counter (and a bump from ``bump_at`` on)."""
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(frames, 41)).astype(np.float32)
    audio[:, 0] = np.arange(frames)
    if bump_at is not None:
        audio[bump_at:, 1:] += 3.0
    motion = np.zeros((frames, 28), np.float32)
    motion[:, 0] = np.arange(frames)
    return SessionArrays(audio, rng.normal(size=(frames, 41)), 0.1 * rng.normal(size=(frames, 28)),
                         np.ones(frames), motion)


def first_difference(a: np.ndarray, b: np.ndarray) -> int:
    rows = np.flatnonzero(np.abs(a - b).max(axis=1) > 1e-6)
    return int(rows[0]) if rows.size else -1


@pytest.mark.parametrize("lookahead", [0, 2, 3])
def test_training_windows_pair_motion_with_the_conditions_lookahead_frames_later(lookahead):
    sampler = WindowSampler([session(40)], window=8, seed=1, lookahead=lookahead)
    b = sampler.batch(16)
    # the counters: conditions run exactly L frames ahead of the motion in every window
    assert torch.all(b["avatar_audio"][:, :, 0] - b["avatar_motion"][:, :, 0] == lookahead)
    assert b["avatar_audio"][:, -1, 0].max() <= 39  # never past the session's end


def test_a_session_shorter_than_window_plus_lookahead_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="look-ahead"):
        WindowSampler([session(9)], window=8, lookahead=2)


def test_the_evaluation_aligns_a_lookahead_models_motion_to_its_own_frames(ckpt):
    """Conditions that change from frame 20 on change the motion from frame 20 - L on, both in
    the batched evaluation and block by block through the model as the runtime drives it."""
    path, L = ckpt
    net = LearnedMotionModel(path, threads=1).net
    plain, bumped = session(40), session(40, bump_at=20)
    (a,), (b,) = (generate_batched(net, [s], seed=0, guidance=1.0) for s in (plain, bumped))
    assert a.shape == (40, 28) and first_difference(a, b) == 20 - L
    model = LearnedMotionModel(path, threads=1)
    a, b = generate(model, plain, seed=0), generate(model, bumped, seed=0)
    assert a.shape == (40, 28) and first_difference(a, b) == 20 - L


def test_the_stage_raises_a_delay_too_short_for_the_lookahead_and_says_so(ckpt):
    """What the generator node and the replay both build and log: the shipped parameters
    (output_delay_s 0.1) with this checkpoint."""
    path, L = ckpt
    params = {**load_node_parameters()["generator"], "model": str(path), "torch_threads": 1}
    stage, note = build_generator_stage(params)
    assert stage.generator.output_delay_s == pytest.approx(max(0.1, (2 + L) / 25))
    if L:
        assert "output_delay_s 0.1 is less than this model needs" in note and "0.160 s" in note
    else:
        assert note == ""


def test_the_runtime_presents_a_lookahead_models_frames_at_their_own_time_with_the_speech_in_sync(ckpt):
    path, L = ckpt
    model = LearnedMotionModel(path, threads=1)
    gen = StreamingGenerator(model, output_delay_s=0.1)
    assert gen.output_delay_s == pytest.approx(max(0.1, (2 + L) / 25))  # the delay covers the look-ahead
    rng = np.random.default_rng(3)
    speech = (0.2 * rng.normal(size=2 * SR)).astype(np.float32)
    louder = speech.copy()
    louder[24 * HOP:] *= 4.0  # from frame 24 on

    def run(avatar):
        gen.start(0.0, seed=0)
        frames = []
        for k in range(2 * SR // 320 + 20):
            now = (k + 1) * 320 / SR
            if k * 320 < avatar.size:
                gen.push_avatar_audio(avatar[k * 320:(k + 1) * 320], now)
                gen.push_user_audio(np.zeros(320, np.float32), now)
            gen.step(now)
            frames += gen.pop_due(now)
        return frames

    quiet, loud = run(speech), run(louder)
    assert [f.index for f in quiet] == list(range(len(quiet))) and len(quiet) >= 48
    for f in quiet[:50]:  # each frame of the speech at its own time, presented the delay later, with its own speech
        assert f.content_time == pytest.approx(f.index / 25)
        assert f.presentation_time - f.content_time == pytest.approx(gen.output_delay_s)
        assert np.array_equal(f.speech, speech[f.index * HOP:(f.index + 1) * HOP])
    values = [np.stack([f.values for f in frames[:48]]) for frames in (quiet, loud)]
    # the features of frame 24 see the louder speech (and frame 23's, by their window's
    # overlap): a model that looks L ahead moves L frames earlier
    changed = first_difference(*values)
    assert changed in (23 - L, 24 - L), changed


def test_the_onnx_export_carries_the_lookahead_and_streams_the_same_motion(ckpt):
    path, L = ckpt
    torch_model, onnx_model = LearnedMotionModel(path, threads=1), LearnedMotionModel(path / "model.onnx", threads=1)
    assert onnx_model.lookahead_frames == torch_model.lookahead_frames == L
    np.testing.assert_allclose(generate(onnx_model, session(), seed=0), generate(torch_model, session(), seed=0),
                               atol=1e-2)  # float32 drift over 20 blocks of a random net
