"""This package's implementation of the official Avatar Forcing network reproduces the authors'
released code (fixture: their inference at a small size with random weights, fp32, CPU)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from official_fixture import (FIXTURE_DIR, fixture, one_torch_thread, uint8_images_to_tensor,  # noqa: E402,F401
                              write_weights_dir)

from avatar_forcing_ros.generation.official.config import OfficialConfig  # noqa: E402
from avatar_forcing_ros.generation.official.model import OfficialAvatarForcing  # noqa: E402
from avatar_forcing_ros.generation.official.sampler import sample_recording  # noqa: E402
from avatar_forcing_ros.generation.official.weights import (  # noqa: E402
    OfficialWeightsError, expected_shapes, split_and_check)

TOL = 1e-4
# Decoded images pass through the whole decoder, where fp32 rounding depends on the CPU's
# kernels: the fixture's machine and an AMD EPYC without AVX-512 differ by 1.1e-4 there. A
# quarter of one 8-bit level (the decoder's images span about 0..1) still catches any real difference.
IMAGE_TOL = 1e-3
FRAMES = 85


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return OfficialAvatarForcing.load(write_weights_dir(tmp_path_factory.mktemp("official")))


def recorded_noise():
    """The noise the released sampler drew, handed out in the same order."""
    rows = torch.from_numpy(fixture()["in/noise"])
    state = {"at": 0}

    def draw(shape):
        n = int(np.prod(shape[:-1]))
        out = rows[state["at"]:state["at"] + n].reshape(shape)
        state["at"] += n
        return out
    return draw


def t(key):
    return torch.from_numpy(fixture()[key])


def maxdiff(a, b):
    return float((a.float() - b.float()).abs().max())


def test_audio_features_match_the_release(model):
    for who in ("avatar", "user"):
        wav = t(f"in/{who}_wav")[None]
        assert maxdiff(model.audio_features(wav, FRAMES), t(f"out/{who}_audio")) <= TOL


def test_motion_encoder_matches_the_release(model):
    ae = model.autoencoder
    code, identity, _ = ae.encode_identity(uint8_images_to_tensor(fixture()["in/ref_u8"])[None])
    assert maxdiff(code, t("out/identity_code")) <= TOL
    assert maxdiff(identity, t("out/identity_motion")) <= TOL
    user = ae.encode_motion(uint8_images_to_tensor(fixture()["in/user_u8"]))
    assert maxdiff(user[None], t("out/user_motion")) <= TOL
    assert float(user.std(0).mean()) > 1e-3    # the user's moving face gives moving motion


def test_offline_recording_matches_the_release(model):
    """Whole recording (50-frame first block, 10-frame blocks, the last one cut at 85)."""
    sampler = model.sampler(noise=recorded_noise())
    out = sample_recording(sampler, t("out/identity_motion"), t("out/avatar_audio"),
                           t("out/user_audio"), t("out/user_motion"), FRAMES)
    ref = t("out/latents")
    assert out.shape == ref.shape == (1, FRAMES, 512)
    assert maxdiff(out, ref) <= TOL
    assert float(ref.abs().max()) > 1.0       # not a degenerate (all-zero) comparison


def test_streaming_blocks_match_the_release_and_see_no_future(model):
    """Block by block as a live stream would feed it: each block gets only the conditions of
    its own frames (+2 context frames), and its latents and decoded images are the release's."""
    sampler = model.sampler(noise=recorded_noise())
    sampler.reset(t("out/identity_motion"))
    conds = [t("out/avatar_audio"), t("out/user_audio"), t("out/user_motion")]
    ref, got, frame = t("out/latents"), [], 0
    code, _, feats = model.autoencoder.encode_identity(
        uint8_images_to_tensor(fixture()["in/ref_u8"])[None])
    image_frames = list(fixture()["out/image_frames"])
    images = {}
    while frame < 80:                           # the blocks whose frames all exist
        first = frame - (0 if sampler.first else 2)
        window = [c[:, first:first + sampler.frames_needed] for c in conds]
        assert first + sampler.frames_needed <= frame + 50
        block = sampler.next_block(*window)
        decoded = model.autoencoder.decode(code, block[0], feats)
        for i in range(block.shape[1]):
            if frame + i in image_frames:
                images[frame + i] = decoded[i]
        got.append(block)
        frame += block.shape[1]
    got = torch.cat(got, dim=1)
    assert maxdiff(got, ref[:, :80]) <= TOL
    ref_images = t("out/images")
    for j, f in enumerate(image_frames):
        if f in images:
            assert maxdiff(images[f], ref_images[j]) <= IMAGE_TOL


def test_guidance_and_user_conditions_change_the_motion(model):
    """The three conditionings are not a no-op: without the user the latents differ."""
    args = (t("out/identity_motion"), t("out/avatar_audio"), t("out/user_audio"))
    with_user = sample_recording(model.sampler(noise=recorded_noise()), *args,
                                 t("out/user_motion"), 60)
    without = sample_recording(model.sampler(noise=recorded_noise()), *args,
                               torch.zeros(1, FRAMES, 512), 60)
    assert maxdiff(with_user, without) > 1e-2


def test_full_size_state_dict_loads_without_missing_or_unexpected_keys():
    """Names and shapes of the released full-size definitions (parameters and persistent
    buffers) against this implementation at the default (full) size."""
    keys = json.loads((FIXTURE_DIR / "full_size_keys.json").read_text())
    mine = expected_shapes(OfficialConfig())
    ours = {**mine["flow"], **mine["autoencoder"]}
    theirs = {k: tuple(v) for k, v in keys["parameters"].items()}
    assert set(ours) == set(theirs)
    assert all(ours[k] == theirs[k] for k in ours)
    assert theirs["flow_transformer.blocks.7.attn.qkv.weight"] == (3072, 1024)
    with torch.device("meta"):
        state = {k: torch.empty(v) for k, v in {**keys["parameters"], **keys["buffers"]}.items()}
    parts = split_and_check(state, OfficialConfig())
    assert len(parts["flow"]) + len(parts["autoencoder"]) == len(theirs)
    del state["motion_autoencoder.dec.direction.weight"]
    with pytest.raises(OfficialWeightsError, match="direction.weight"):
        split_and_check(state, OfficialConfig())
