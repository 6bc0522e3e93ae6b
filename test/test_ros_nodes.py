"""The nodes as ROS components: declared parameters match the shipped YAML, and the lifecycle
leaves nothing behind. Real rclpy, in the test process."""
import threading

import pytest

from avatar_forcing_ros.pipeline import load_node_parameters
from pipeline_driver import CONFIG

NODES = {
    "perception": "avatar_forcing_ros.ros.perception_node.PerceptionNode",
    "generator": "avatar_forcing_ros.ros.generator_node.GeneratorNode",
    "renderer": "avatar_forcing_ros.ros.renderer_node.RendererNode",
}
# Parameters every rclpy node has, not ours to ship.
BUILTIN = {"use_sim_time", "start_type_description_service"}


def make(ros_context, name, **overrides):
    import importlib

    from rclpy.parameter import Parameter

    module, cls = NODES[name].rsplit(".", 1)
    node_class = getattr(importlib.import_module(module), cls)
    params = [Parameter(k, value=v) for k, v in {"autostart": False, **overrides}.items()]
    return node_class(context=ros_context.context, parameter_overrides=params)


@pytest.mark.parametrize("name", NODES)
def test_every_yaml_key_is_a_declared_parameter_and_the_reverse(ros_context, name):
    shipped = load_node_parameters(CONFIG)[name]  # the YAML keys are /**/<node>
    node = make(ros_context, name)
    try:
        declared = set(node._parameters) - BUILTIN
        assert set(shipped) == declared, (
            f"in YAML only: {sorted(set(shipped) - declared)}; declared only: {sorted(declared - set(shipped))}")
        for key, value in shipped.items():  # and the YAML defaults are the declared defaults
            if key != "autostart":  # overridden to false for this test
                assert node.get_parameter(key).value == value, key
        for key in declared:  # every parameter explains itself
            assert node.describe_parameter(key).description, key
    finally:
        node.destroy_node()


def our_publishers(node):
    """The node's publishers beyond rclpy's own and /diagnostics (which runs in every state)."""
    internal = ("/rosout", "/parameter_events", "transition_event", "/diagnostics")
    return sorted(p.topic_name for p in node.publishers if not p.topic_name.endswith(internal))


@pytest.mark.parametrize("name", NODES)
def test_lifecycle_round_trip_leaves_no_publisher_timer_or_thread_behind(ros_context, name):
    from lifecycle_msgs.msg import State
    from rclpy.lifecycle import TransitionCallbackReturn as R

    threads_before = {t.ident for t in threading.enumerate()}
    overrides = {"model": "procedural"} if name == "generator" else {}
    node = make(ros_context, name, **overrides)
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
    assert our_publishers(node) == []  # autostart off: nothing until configured

    assert node.trigger_configure() == R.SUCCESS
    assert len(our_publishers(node)) >= 1
    assert node.trigger_activate() == R.SUCCESS
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_ACTIVE
    assert node.trigger_deactivate() == R.SUCCESS
    assert node.trigger_cleanup() == R.SUCCESS
    assert our_publishers(node) == []
    assert list(node.timers) == [node._diag_timer]  # only the diagnostics, as before configure
    assert node.trigger_shutdown() == R.SUCCESS
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_FINALIZED
    node.destroy_node()
    leftover = [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert leftover == []


def test_a_model_that_cannot_be_loaded_fails_configure_and_reports_error_with_the_reason(ros_context):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.lifecycle import TransitionCallbackReturn as R

    from ros_helpers import wait_for

    received = ros_context.collect(DiagnosticArray, "/diagnostics")
    node = make(ros_context, "generator", model="/nonexistent/model_dir", diagnostics_period_s=0.1)
    ros_context.executor.add_node(node)
    try:
        assert node.trigger_configure() == R.FAILURE
        assert "does not exist" in node.telemetry.last_error
        assert our_publishers(node) == []

        def error_status():
            return [st for m in received for st in m.status if st.hardware_id == node.get_fully_qualified_name()
                    and st.level == DiagnosticStatus.ERROR]
        status = wait_for(error_status, 10, spin=ros_context, what="an ERROR status of the unconfigured node")[-1]
        assert "/nonexistent/model_dir" in status.message and "does not exist" in status.message
        assert {kv.key: kv.value for kv in status.values}["lifecycle state"] == "unconfigured"
    finally:
        ros_context.executor.remove_node(node)
        node.destroy_node()


@pytest.mark.parametrize("name, param, value", [("generator", "tick_rate_hz", 0.0),
                                                 ("renderer", "width", 100000),
                                                 ("renderer", "width", "wide"),
                                                 ("perception", "image_transport", "h264")])
def test_a_bad_start_up_value_fails_configure_naming_it(ros_context, name, param, value):
    from rclpy.lifecycle import TransitionCallbackReturn as R

    node = make(ros_context, name, **{param: value})  # as from a YAML or a launch argument
    try:
        assert node.trigger_configure() == R.FAILURE
        assert param in node.telemetry.last_error
        assert our_publishers(node) == []
    finally:
        node.destroy_node()


@pytest.mark.parametrize("faces", [0, 2])
def test_a_portrait_photo_without_one_face_fails_configure_saying_so(ros_context, tmp_path, faces):
    import cv2
    import numpy as np
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from skimage import data

    one = data.astronaut()[:, 100:400]
    photo = np.full_like(one, 128) if faces == 0 else np.concatenate([one, one], 1)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    node = make(ros_context, "renderer", renderer="portrait", portrait_path=str(path))
    try:
        assert node.trigger_configure() == R.FAILURE
        expected = "no face found" if faces == 0 else "2 faces found"
        assert expected in node.telemetry.last_error and "photo.png" in node.telemetry.last_error
        assert our_publishers(node) == []
    finally:
        node.destroy_node()
