"""The official network's block step and decoder export to ONNX and give torch's numbers under
onnxruntime (small random-weight network of the parity fixture)."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")

from official_fixture import write_weights_dir  # noqa: E402

from avatar_forcing_ros.generation.official.model import OfficialAvatarForcing  # noqa: E402
from avatar_forcing_ros.generation.official.onnx_export import _Decoder, _FlowStep, export, flow_inputs  # noqa: E402


def test_flow_step_and_decoder_export_and_match_torch(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = OfficialAvatarForcing.load(write_weights_dir(tmp_path / "w"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            paths = export(model, tmp_path / "onnx")
        torch.manual_seed(1)
        for name, first in (("flow_first", True), ("flow_step", False)):
            args = flow_inputs(model, first)
            sess = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
            feed = dict(zip([i.name for i in sess.get_inputs()], (a.numpy() for a in args)))
            got = sess.run(None, feed)[0]
            with torch.inference_mode():
                ref = _FlowStep(model.flow)(*args).numpy()
            assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
        with torch.inference_mode():
            code, _, feats = model.autoencoder.encode_identity(torch.rand(1, 3, 64, 64) * 2 - 1)
            motion = torch.randn(5, 512) * 0.5          # another batch size than at export
            ref = _Decoder(model.autoencoder)(code, motion, *feats).numpy()
        sess = ort.InferenceSession(str(paths["decoder"]), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"code": code.numpy(), "motion": motion.numpy(),
                              **{f"feat{i}": f.numpy() for i, f in enumerate(feats)}})[0]
        assert got.shape == (5, 3, 64, 64) and np.abs(got - ref).max() < 1e-3
    finally:
        torch.set_num_threads(before)
