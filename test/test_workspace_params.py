"""Parameter files as rcl reads them: the offline tools (replay, recordings) take the node's
values from the same sections a node under any namespace would (test_workspace_launch.py checks
the nodes themselves through `ros2 param get`)."""
import pytest

from avatar_forcing_ros.pipeline import NODES, load_node_parameters
from pipeline_driver import CONFIG


def test_the_shipped_file_uses_namespace_wildcard_keys():
    import yaml

    assert set(yaml.safe_load(open(CONFIG))) == {f"/**/{node}" for node in NODES}
    assert load_node_parameters(CONFIG)["generator"]["guidance_scale"] == 2.0


@pytest.mark.parametrize("key", ["generator", "/generator", "/**/generator"])
def test_each_form_of_a_node_key_is_read(tmp_path, key):
    path = tmp_path / "params.yaml"
    path.write_text(f"{key}:\n  ros__parameters:\n    guidance_scale: 3.25\n")
    params = load_node_parameters(path)
    assert params["generator"] == {"guidance_scale": 3.25}
    assert params["renderer"] == {} and params["perception"] == {}


def test_wildcard_sections_apply_to_every_node_and_the_node_own_section_wins(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n    diagnostics_period_s: 2.0\n    seed: 1\n"
                    "/**/generator:\n  ros__parameters:\n    seed: 2\n"
                    "generator:\n  ros__parameters:\n    seed: 3\n")
    params = load_node_parameters(path)
    assert params["renderer"] == {"diagnostics_period_s": 2.0, "seed": 1}
    assert params["generator"] == {"diagnostics_period_s": 2.0, "seed": 3}


@pytest.mark.parametrize("text", ["- a list\n", "generator: 5\n", "generator:\n  ros__parameters: [1]\n"])
def test_a_file_that_is_not_a_parameter_file_is_a_clear_error(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="params.yaml"):
        load_node_parameters(path)


def test_the_shipped_guidance_is_the_shipped_models_tuned_value_everywhere():
    """guidance_scale has no "the model's own" value: the parameter file, the node's default
    and the model's config (also inside its ONNX step) must carry the value validation chose,
    or a robot runs the model at a setting nobody measured."""
    import json

    from avatar_forcing_ros.core.paths import find_share
    from avatar_forcing_ros.generation.factory import SHIPPED_MODEL
    from avatar_forcing_ros.generation.forcing.onnx_runner import OnnxStreamingRunner
    from avatar_forcing_ros.ros.generator_node import GeneratorNode

    model = find_share("models", SHIPPED_MODEL, is_dir=True)
    config = json.loads((model / "config.json").read_text())["config"]
    shipped = config["guidance_scale"]
    assert load_node_parameters(CONFIG)["generator"]["guidance_scale"] == shipped
    assert GeneratorNode.PARAMETERS["guidance_scale"].default == shipped
    graph = OnnxStreamingRunner(model / "model.onnx", threads=1)
    assert graph.cfg.guidance_scale == shipped
    # the nod guidance is the model's own (-1 in the file and the node): the config and the
    # ONNX step must agree on it, and the step must take it as an input
    assert load_node_parameters(CONFIG)["generator"]["nod_guidance_scale"] == -1.0
    assert GeneratorNode.PARAMETERS["nod_guidance_scale"].default == -1.0
    assert graph.cfg.nod_guidance_scale == config.get("nod_guidance_scale")
    assert "nod" in graph.guidance_names
