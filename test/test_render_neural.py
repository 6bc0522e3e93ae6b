"""The neural portrait renderer, run end to end on tiny ONNX models with LivePortrait's signatures.

The tiny models are built here with onnx.helper: the appearance model averages the image into
the feature volume, the motion model returns fixed pose bins and keypoints, the warping model
shows the portrait brightened per channel by the mean keypoint motion (x, y, z -> R, G, B), so
the frame visibly depends on how af-motion-v1 moved the keypoints.
"""
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.render import make_renderer
from avatar_forcing_ros.render.neural import (MAP_CHANNELS, NeuralPortraitRenderer, bins_to_degrees,
                                              default_expression_map, rotation_matrix)

F = TensorProto.FLOAT


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def build_appearance(path, out_shape=(1, 32, 16, 64, 64)):
    k = 256 // out_shape[-1]
    nodes = [helper.make_node("AveragePool", ["img"], ["pooled"], kernel_shape=[k, k], strides=[k, k]),
             helper.make_node("ReduceMean", ["pooled"], ["grey"], axes=[1], keepdims=1),
             helper.make_node("Unsqueeze", ["grey", "axis2"], ["grey5"]),
             helper.make_node("Expand", ["grey5", "shape"], ["feature_3d"])]
    graph = helper.make_graph(nodes, "appearance", [helper.make_tensor_value_info("img", F, [1, 3, 256, 256])],
                              [helper.make_tensor_value_info("feature_3d", F, list(out_shape))],
                              [_const("axis2", np.array([2], np.int64)), _const("shape", np.array(out_shape, np.int64))])
    _save(graph, path)


def build_motion(path, n_outputs=7):
    sizes = [66, 66, 66, 3, 63, 1, 63][:n_outputs]
    names = ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"][:n_outputs]
    rng = np.random.default_rng(0)
    bins = -0.1 * (np.arange(66) - 32.5) ** 2                      # peaked at 0 degrees
    bias = np.concatenate([bins, bins, bins, np.zeros(3), np.zeros(63), [1.5], rng.uniform(-0.6, 0.6, 63)])
    bias = bias[:sum(sizes)].astype(np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["img"], ["mean"]),
             helper.make_node("Flatten", ["mean"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], ["lin"]),
             helper.make_node("Add", ["lin", "B"], ["all"]),
             helper.make_node("Split", ["all", "sizes"], names, axis=1)]
    graph = helper.make_graph(nodes, "motion", [helper.make_tensor_value_info("img", F, [1, 3, 256, 256])],
                              [helper.make_tensor_value_info(n, F, [1, s]) for n, s in zip(names, sizes)],
                              [_const("W", np.zeros((3, sum(sizes)), np.float32)), _const("B", bias),
                               _const("sizes", np.array(sizes, np.int64))])
    _save(graph, path)


def build_warping(path, input_names=("feature_3d", "kp_driving", "kp_source")):
    f, kd, ks = input_names
    nodes = [helper.make_node("ReduceMean", [f], ["img64"], axes=[1, 2], keepdims=0),   # (1, 64, 64)
             helper.make_node("Unsqueeze", ["img64", "axis1"], ["img4"]),              # (1, 1, 64, 64)
             helper.make_node("Resize", ["img4", "", "", "size"], ["img256"], mode="nearest"),
             helper.make_node("Sub", [kd, ks], ["motion"]),                            # (1, 21, 3)
             helper.make_node("ReduceMean", ["motion"], ["mean_motion"], axes=[1], keepdims=0),
             helper.make_node("Reshape", ["mean_motion", "rgb"], ["shift"]),            # (1, 3, 1, 1)
             helper.make_node("Mul", ["shift", "gain"], ["shift_gain"]),
             helper.make_node("Add", ["img256", "shift_gain"], ["out"])]
    graph = helper.make_graph(
        nodes, "warping",
        [helper.make_tensor_value_info(f, F, [1, 32, 16, 64, 64]), helper.make_tensor_value_info(kd, F, [1, 21, 3]),
         helper.make_tensor_value_info(ks, F, [1, 21, 3])],
        [helper.make_tensor_value_info("out", F, [1, 3, 256, 256])],
        [_const("axis1", np.array([1], np.int64)), _const("size", np.array([1, 1, 256, 256], np.int64)),
         _const("rgb", np.array([1, 3, 1, 1], np.int64)), _const("gain", np.array(4.0, np.float32))])
    _save(graph, path)


def build_stitching(path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["lin"]), helper.make_node("Add", ["lin", "B"], ["delta"])]
    graph = helper.make_graph(nodes, "stitching", [helper.make_tensor_value_info("x", F, [1, 126])],
                              [helper.make_tensor_value_info("delta", F, [1, 65])],
                              [_const("W", np.zeros((126, 65), np.float32)), _const("B", np.zeros(65, np.float32))])
    _save(graph, path)


def build_all(directory, stitching=True):
    build_appearance(directory / "appearance_feature_extractor.onnx")
    build_motion(directory / "motion_extractor.onnx")
    build_warping(directory / "warping_spade.onnx")
    if stitching:
        build_stitching(directory / "stitching.onnx")
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_all(tmp_path_factory.mktemp("liveportrait_stub"))


@pytest.fixture(scope="module")
def renderer(model_dir):
    return NeuralPortraitRenderer(model_dir, crop_to_face=False)


def mean_rgb(img):
    return img.reshape(-1, 3).astype(np.float64).mean(0)


def test_renders_frames_of_the_requested_size_end_to_end(model_dir):
    r = make_renderer("neural", model_dir=str(model_dir), width=320, height=240, crop_to_face=False)
    img = r.render(M.from_dict({"jawOpen": 0.5}))
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8


def test_neutral_motion_drives_the_source_keypoints(renderer):
    assert np.allclose(renderer.driving_keypoints(M.neutral().astype(np.float64)), renderer.kp_source)


def test_jaw_open_moves_the_mouth_keypoint_down_and_changes_the_frame(renderer):
    kp = renderer.driving_keypoints(M.from_dict({"jawOpen": 1.0}).astype(np.float64))
    assert kp[19, 1] > renderer.kp_source[19, 1] + 0.02
    # the stub warp turns mean keypoint motion along y into green brightness
    assert mean_rgb(renderer.render(M.from_dict({"jawOpen": 1.0})))[1] > mean_rgb(renderer.render(M.neutral()))[1] + 0.5


def test_head_yaw_rotates_the_keypoints_about_the_vertical_axis(renderer):
    kp = renderer.driving_keypoints(M.from_dict({"head_yaw": 0.3}).astype(np.float64))
    src = renderer.kp_source
    assert np.allclose(kp[:, 1], src[:, 1], atol=1e-6)             # y unchanged by a pure yaw
    assert np.allclose(np.hypot(kp[:, 0], kp[:, 2]), np.hypot(src[:, 0], src[:, 2]), atol=1e-6)
    assert not np.allclose(kp[:, 0], src[:, 0], atol=1e-3)


def test_head_translation_and_scale_move_and_size_the_keypoints(renderer):
    moved = renderer.driving_keypoints(M.from_dict({"head_tx": 0.5}).astype(np.float64))
    assert np.allclose(moved[:, 0] - renderer.kp_source[:, 0], 0.5 * renderer.keypoint_units_per_face)
    bigger = renderer.driving_keypoints(M.from_dict({"head_scale": 0.2}).astype(np.float64))
    assert np.allclose(bigger, renderer.kp_source * np.exp(0.2), atol=1e-6)  # source t is 0 in the stub


def test_rotation_matrix_is_a_rotation_and_identity_at_zero():
    assert np.allclose(rotation_matrix(0, 0, 0), np.eye(3))
    R = rotation_matrix(10, -20, 30)
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)


def test_pose_bins_decode_to_degrees():
    logits = np.full(66, -50.0)
    logits[40] = 50.0
    assert bins_to_degrees(logits) == pytest.approx(40 * 3 - 97.5)


def test_expression_map_covers_every_expression_channel():
    m = default_expression_map()
    assert m.shape == (len(MAP_CHANNELS), 63)
    assert all(np.abs(m[i]).sum() > 0 for i in range(len(MAP_CHANNELS))), "a channel moves no keypoint"


def test_rendering_is_deterministic(renderer):
    v = M.from_dict({"head_yaw": 0.2, "jawOpen": 0.6, "mouthSmileLeft": 0.5})
    assert np.array_equal(renderer.render(v), renderer.render(v))


def test_missing_stitching_model_still_renders(tmp_path):
    r = NeuralPortraitRenderer(build_all(tmp_path, stitching=False), crop_to_face=False)
    assert not r.use_stitching
    assert r.render(M.neutral()).shape == (512, 512, 3)


def test_portrait_is_cropped_around_the_face(model_dir):
    r = NeuralPortraitRenderer(model_dir)  # skimage astronaut, face found by the face mesh
    assert r.source_crop.shape == (256, 256, 3)
    assert r.render(M.neutral()).shape == (512, 512, 3)


def test_missing_model_file_names_it_and_the_expected_signature(tmp_path):
    build_appearance(tmp_path / "appearance_feature_extractor.onnx")
    with pytest.raises(FileNotFoundError, match=r"motion_extractor\.onnx; expected inputs \[\*\(1, 3, 256, 256\)\]"):
        NeuralPortraitRenderer(tmp_path, crop_to_face=False)


def test_model_with_a_wrong_output_shape_is_named(tmp_path):
    build_all(tmp_path)
    build_appearance(tmp_path / "appearance_feature_extractor.onnx", out_shape=(1, 32, 16, 32, 32))
    with pytest.raises(ValueError, match=r"appearance_feature_extractor\.onnx output 'feature_3d' has shape"):
        NeuralPortraitRenderer(tmp_path, crop_to_face=False)


def test_model_with_too_few_outputs_is_named(tmp_path):
    build_all(tmp_path)
    build_motion(tmp_path / "motion_extractor.onnx", n_outputs=6)
    with pytest.raises(ValueError, match=r"motion_extractor\.onnx has 1 inputs and 6 outputs; expected"):
        NeuralPortraitRenderer(tmp_path, crop_to_face=False)


def test_warping_model_without_named_keypoint_inputs_is_named(tmp_path):
    build_all(tmp_path)
    build_warping(tmp_path / "warping_spade.onnx", input_names=("feature_3d", "a", "b"))
    with pytest.raises(ValueError, match=r"warping_spade\.onnx has no input named 'kp_driving'"):
        NeuralPortraitRenderer(tmp_path, crop_to_face=False)


def test_corrupt_model_file_is_named(tmp_path):
    build_all(tmp_path)
    (tmp_path / "stitching.onnx").write_bytes(b"\x00not onnx")
    with pytest.raises(ValueError, match=r"stitching\.onnx is not a loadable ONNX model"):
        NeuralPortraitRenderer(tmp_path, crop_to_face=False)


def test_missing_model_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        NeuralPortraitRenderer(tmp_path / "no_such_dir")


def test_unavailable_provider_falls_back_to_cpu_and_logs(model_dir, caplog):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here, so there is no fallback to observe")
    with caplog.at_level(logging.WARNING, logger="avatar_forcing_ros.render.neural"):
        r = NeuralPortraitRenderer(model_dir, providers=["cuda", "CPUExecutionProvider"], crop_to_face=False)
    assert "CUDAExecutionProvider not available" in caplog.text
    assert r.sessions["warping_spade.onnx"].get_providers() == ["CPUExecutionProvider"]


def test_unknown_provider_is_rejected(model_dir):
    with pytest.raises(ValueError, match="unknown onnxruntime provider 'tpu'"):
        NeuralPortraitRenderer(model_dir, providers=["tpu"], crop_to_face=False)


def test_bad_expression_map_shape_is_rejected(model_dir):
    with pytest.raises(ValueError, match=r"expression_map must have shape \(22, 63\)"):
        NeuralPortraitRenderer(model_dir, crop_to_face=False, expression_map=np.zeros((20, 63)))


def test_wrong_length_and_non_finite_values(renderer):
    with pytest.raises(ValueError, match="expects 28 values"):
        renderer.render(np.zeros(5, np.float32))
    v = M.neutral()
    v[M.index("jawOpen")] = np.nan
    before = renderer.dropped_values
    assert np.array_equal(renderer.render(v), renderer.render(M.neutral()))
    assert renderer.dropped_values == before + 1
