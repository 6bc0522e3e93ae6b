"""The official network streams for as long as the conversation lasts: positions never run out
(the released code stops at frame 1,024, 41 s), memory stays constant, inputs stay bounded."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from official_fixture import one_torch_thread, write_weights_dir  # noqa: E402,F401

from avatar_forcing_ros.generation.official.config import OfficialConfig  # noqa: E402
from avatar_forcing_ros.generation.official.flow import FlowTransformer, rotary  # noqa: E402
from avatar_forcing_ros.generation.official.model import OfficialAvatarForcing, OfficialStream  # noqa: E402
from avatar_forcing_ros.generation.official.sampler import FlowSampler  # noqa: E402


def tiny_flow(seed=0):
    torch.manual_seed(seed)
    cfg = OfficialConfig(width=32, heads=2, depth=1, image_size=64)
    flow = FlowTransformer(cfg).eval()
    with torch.no_grad():
        for p in flow.parameters():      # nothing zero-initialised: every path is live
            p.copy_(torch.randn_like(p) / max(1, p.shape[-1]) ** 0.5)
    return flow


def test_rotary_attention_depends_only_on_position_differences():
    q, k = torch.randn(1, 2, 12, 16), torch.randn(1, 2, 50, 16)
    near = rotary(q, torch.arange(38, 50)) @ rotary(k, torch.arange(50)).transpose(-1, -2)
    far = rotary(q, torch.arange(100038, 100050)) @ rotary(k, torch.arange(100000, 100050)).transpose(-1, -2)
    assert float((near - far).abs().max()) < 1e-2     # float32 angles of 1e5 lose digits...
    assert float((near - far).abs().max()) > 0        # ...which is why positions stay in the window


def test_streaming_past_1024_frames_keeps_a_fixed_cache():
    cfg_frames = 50 + 10 * 100                          # 1,050 frames: past the release's table
    sampler = FlowSampler(tiny_flow(), nfe=4, seed=3)
    sampler.reset(torch.randn(1, 512))
    sizes, outputs = [], []
    while sampler.frames_done < cfg_frames:
        n = sampler.frames_needed
        block = sampler.next_block(torch.randn(1, n, 512), torch.randn(1, n, 512), torch.randn(1, n, 512))
        outputs.append(block)
        sizes.append(sampler.cache_state_bytes())
    assert sampler.frames_done == cfg_frames
    assert len(set(sizes)) == 1                         # the same window after every block
    assert all(layer[0].shape[2] == 38 and layer[2].shape[2] == 2 for layer in sampler.past)
    late = torch.cat(outputs[-5:], dim=1)
    assert torch.isfinite(late).all() and float(late.std()) > 0.05


def test_a_conversation_stream_stays_bounded_and_accounts_for_every_frame(tmp_path):
    """Audio and user faces pushed frame by frame as they would arrive live, blocks pulled as
    soon as their frames are in: every frame gets a latent and an image; buffers stay bounded."""
    model = OfficialAvatarForcing.load(write_weights_dir(tmp_path / "w"))
    rng = np.random.default_rng(0)
    portrait = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    stream = OfficialStream(model, portrait, nfe=3, seed=1)
    face = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    produced, images, frame = 0, 0, 0
    total = 50 + 10 * 6
    while produced < total:
        stream.push_audio(rng.standard_normal(640).astype(np.float32) * 0.1,
                          rng.standard_normal(640).astype(np.float32) * 0.1)
        stream.push_user_face(face if frame % 7 else None)   # the face is lost now and then
        frame += 1
        needed_end = stream.next_frame + (stream.cfg.clip_frames if stream.sampler.first
                                          else stream.cfg.block_frames)
        if frame >= needed_end:
            block = stream.next_block()
            if produced == 50:               # decode one block (images cost the most here)
                imgs = stream.decode(block)
                assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in imgs)
                images += len(imgs)
            produced += block.shape[1]
    assert produced == total and stream.next_frame == total and images == 10
    assert len(stream.user_motion) <= stream.cfg.clip_frames
    assert len(stream.avatar_audio.buffer) <= 2 * 50 * 640


def test_reduced_precision_streams_close_to_fp32(tmp_path):
    """bf16 / fp16 autocast (what a GPU runs) gives nearly the fp32 latents and images."""
    model = OfficialAvatarForcing.load(write_weights_dir(tmp_path / "w"))
    portrait = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    out = {}
    for precision in ("fp32", "bf16", "fp16"):
        model.set_precision(precision)
        stream = OfficialStream(model, portrait, seed=1)
        rng = np.random.default_rng(1)
        for _ in range(60):
            stream.push_audio(rng.standard_normal(640).astype(np.float32) * 0.1, None)
            stream.push_user_motion(None)
        latents = torch.cat([stream.next_block(), stream.next_block()], dim=1)
        out[precision] = (latents, stream.decode(latents[:, -1:])[0].astype(int))
    with pytest.raises(ValueError):
        model.set_precision("int8")
    for precision in ("bf16", "fp16"):
        assert out[precision][0].dtype == torch.float32
        corr = np.corrcoef(out["fp32"][0].flatten(), out[precision][0].flatten())[0, 1]
        assert corr > 0.999
        assert np.abs(out["fp32"][1] - out[precision][1]).mean() < 8    # of 255


def test_the_users_face_is_cropped_and_encoded_as_the_release_does(tmp_path):
    """Perception with the official backend: a face found by the tracker, cropped to twice its
    box, becomes the same latent as the motion encoder gives that crop; no face: zeros, absent."""
    pytest.importorskip("mediapipe")
    from pipeline_driver import face_image

    from avatar_forcing_ros.generation.official.face import face_crop
    from avatar_forcing_ros.generation.official.model import image_to_tensor
    from avatar_forcing_ros.pipeline import build_estimator

    from avatar_forcing_ros.core.perception import FaceTracker
    from avatar_forcing_ros.generation.official.face import OfficialFaceEncoder

    weights = write_weights_dir(tmp_path / "w")
    assert isinstance(build_estimator({"motion_encoder": f"avatarforcing:{weights}"}), OfficialFaceEncoder)
    # still-image tracking: the same landmarks again for the check below
    encoder = OfficialFaceEncoder(weights, tracker=FaceTracker(static_image_mode=True))
    try:
        image = face_image(480)
        seen = encoder.estimate(image, 0.0)
        assert seen.face_present and seen.confidence == 1.0 and seen.values.shape == (512,)
        pts = encoder.tracker.track(image)
        box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
        crop = face_crop(image, box)
        assert crop.shape[0] == crop.shape[1] > 1.5 * (box[2] - box[0])     # twice the face box
        expected = encoder.autoencoder.encode_motion(image_to_tensor(np.ascontiguousarray(crop), 64))[0]
        assert np.abs(seen.values - expected.numpy()).max() < 1e-5
        none = encoder.estimate(np.zeros((240, 320, 3), np.uint8), 0.1)
        assert not none.face_present and none.confidence == 0.0 and not none.values.any()
    finally:
        encoder.close()
    with pytest.raises(ValueError, match="motion_encoder"):
        build_estimator({"motion_encoder": "something"})
