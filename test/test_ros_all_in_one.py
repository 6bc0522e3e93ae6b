"""The same node graph from the package's own entry point (one process, multi-threaded
executor, the shipped YAML) — for machines without ``ros2 launch`` — and the launch file itself
where ROS 2's launch is installed."""
from pathlib import Path

import numpy as np
import pytest

from pipeline_driver import PipelineDriver, mouth_cavity_pixels, node_args
from ros_helpers import unique_topic, wait_for

LAUNCH_FILE = Path(__file__).resolve().parent.parent / "launch" / "avatar_forcing.launch.py"


@pytest.mark.timeout(180)
def test_all_in_one_process_runs_the_three_nodes_from_the_shipped_yaml(ros_context, node_process):
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer
    from avatar_forcing_ros.corpus.speech import synthesize

    ns = unique_topic("all_in_one")
    proc = node_process("avatar_forcing_ros.ros.all_in_one", *node_args(ns, "model:=procedural"))
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["camera", "mic", "speech"], [proc])
    wait_for(lambda: drv.images, timeout=30, spin=ros_context, processes=[proc], what="a first image")
    speech = np.concatenate([np.zeros(8000, np.float32), synthesize("Good morning to you.").audio])
    drv.stream(speech.size / 16000 + 0.5, speech=speech, processes=[proc])
    wait_for(lambda: drv.user_motion, timeout=10, spin=ros_context, processes=[proc], what="user motion")
    proc.stop(check=True)

    renderer = StylisedFaceRenderer()
    assert max(mouth_cavity_pixels(m, renderer) for m in drv.images) > 50
    nodes = {s.hardware_id for a in drv.diagnostics for s in a.status}
    assert {f"{ns}/perception", f"{ns}/generator", f"{ns}/renderer"} <= nodes


def test_launch_file_starts_the_three_nodes_with_the_shipped_config():
    """The description evaluated as `ros2 launch` would (launch_ros is installed with the ros2 CLI
    by ../shared/ros2/install.sh); test_workspace_launch.py runs it for real."""
    import importlib.util

    from launch import LaunchContext
    from launch_ros.actions import LifecycleNode, Node

    spec = importlib.util.spec_from_file_location("avatar_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        argument.visit(context)  # the defaults, as `ros2 launch` without arguments
    assert context.launch_configurations["avatar_config"].endswith("config/avatar_forcing.yaml")

    nodes = module._nodes(context)
    assert [(n.node_executable, type(n)) for n in nodes] == [
        ("perception_node", LifecycleNode), ("generator_node", LifecycleNode), ("renderer_node", LifecycleNode)]
    context.launch_configurations.update(avatar_record="true", avatar_display="maybe")
    with pytest.raises(ValueError, match="avatar_display"):
        module._nodes(context)
    context.launch_configurations["avatar_display"] = "1"
    assert [n.node_executable for n in module._nodes(context)][-1] == "recorder_node"
    context.launch_configurations["avatar_config"] = "/nonexistent.yaml"
    with pytest.raises(FileNotFoundError, match="avatar_config"):
        module._nodes(context)
