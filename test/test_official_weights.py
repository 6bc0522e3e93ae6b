"""`avatar-forcing convert-official DIR`: the user's official .pth files, read only with
torch.load(weights_only=True), become checked safetensors once; bad files are clear errors."""
import pickle

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from official_fixture import fixture, write_weights_dir  # noqa: E402

from avatar_forcing_ros.cli import main as cli  # noqa: E402
from avatar_forcing_ros.generation.official import weights as W  # noqa: E402
from avatar_forcing_ros.generation.official.model import OfficialAvatarForcing  # noqa: E402


class NotWeights:
    """An arbitrary object: a pickle that is not weights only."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_convert_writes_safetensors_once_and_the_model_loads_them(tmp_path, capsys):
    # the released state dict also holds constant buffers and may hold wav2vec2's weights
    extra = {"flow_transformer.alignment_mask": torch.ones(50, 50, dtype=torch.bool),
             "motion_autoencoder.enc.net_app.convs.1.conv2.0.kernel": torch.ones(4, 4),
             "audio_encoder.wav2vec2.masked_spec_embed": torch.zeros(32)}
    d = write_weights_dir(tmp_path / "w", as_pth=True, extra=extra)
    assert cli(["convert-official", str(d)]) == 0
    assert "wrote" in capsys.readouterr().out
    for name in W.SAFETENSORS.values():
        assert (d / name).is_file()
    assert cli(["convert-official", str(d)]) == 0
    assert "already converted" in capsys.readouterr().out
    model = OfficialAvatarForcing.load(d)
    got = model.flow.x_embedder.proj.weight.numpy()
    assert (got == fixture()["weights"]["flow_transformer.x_embedder.proj.weight"]).all()


def test_a_pickle_that_is_not_weights_only_is_refused(tmp_path, capsys):
    d = write_weights_dir(tmp_path / "w", as_pth=True)
    with open(d / W.PTH["flow"], "wb") as f:
        pickle.dump({"x": NotWeights()}, f)
    assert cli(["convert-official", str(d)]) == 1
    out = capsys.readouterr().out
    assert "not a weights-only PyTorch checkpoint" in out and "flow_transformer.pth" in out
    assert "this must never run" not in out
    assert not (d / W.SAFETENSORS["flow"]).exists()


def test_missing_files_and_missing_parameters_are_named(tmp_path):
    d = write_weights_dir(tmp_path / "w", as_pth=True)
    (d / W.PTH["autoencoder"]).unlink()
    with pytest.raises(W.OfficialWeightsError, match="motion_autoencoder.pth: missing"):
        W.convert(d)
    with pytest.raises(W.OfficialWeightsError, match="convert-official"):
        OfficialAvatarForcing.load(d)
    weights = {k: torch.from_numpy(v.copy()) for k, v in fixture()["weights"].items()
               if k.startswith(W.AE_PREFIX) and "to_flows.0" not in k}
    torch.save(weights, d / W.PTH["autoencoder"])
    with pytest.raises(W.OfficialWeightsError, match="missing, e.g. .*to_flows.0"):
        W.convert(d)


def test_a_wrong_shape_is_named(tmp_path):
    bad = {"flow_transformer.final_layer.linear.bias": torch.zeros(7)}
    d = write_weights_dir(tmp_path / "w", as_pth=True, extra=bad)
    with pytest.raises(W.OfficialWeightsError, match=r"final_layer.linear.bias has shape \(7,\)"):
        W.convert(d)


def test_missing_wav2vec_folder_is_a_clear_error(tmp_path):
    d = write_weights_dir(tmp_path / "w")
    import shutil
    shutil.rmtree(d / W.WAV2VEC_DIR)
    with pytest.raises(W.OfficialWeightsError, match="wav2vec2-base-960h: no config.json"):
        OfficialAvatarForcing.load(d)
