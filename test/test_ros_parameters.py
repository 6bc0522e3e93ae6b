"""Parameters and lifecycle as an operator drives them with `ros2 param set` and
`ros2 lifecycle set` (the same services, called from the test process): every bad value is
refused with a reason, a live parameter takes effect at once, a read-only one says so, and no
sequence of transitions kills a node while input flows."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline_driver import PipelineDriver, node_args, pcm16
from ros_helpers import unique_topic, wait_for


def call(ros_context, client, request, timeout=10.0):
    wait_for(lambda: client.wait_for_service(timeout_sec=0.0), timeout, spin=ros_context, what=client.srv_name)
    future = client.call_async(request)
    wait_for(future.done, timeout, spin=ros_context, what=f"an answer from {client.srv_name}")
    return future.result()


def set_parameter(ros_context, node, target: str, name: str, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, f"{target}/set_parameters")
    try:
        result = call(ros_context, client, SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
        return result.results[0]
    finally:
        node.destroy_client(client)


def get_parameter(ros_context, node, target: str, name: str):
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, f"{target}/get_parameters")
    try:
        return parameter_value_to_python(call(ros_context, client, GetParameters.Request(names=[name])).values[0])
    finally:
        node.destroy_client(client)


BAD_VALUES = [  # (node, parameter, value): each refused with a reason
    ("generator", "tick_rate_hz", 0.0),
    ("generator", "guidance_scale", math.nan),
    ("generator", "guidance_scale", -1.0),
    ("generator", "nod_guidance_scale", -2.0),
    ("generator", "nod_guidance_scale", math.nan),
    ("generator", "mouth_temperature", 3.0),
    ("generator", "mouth_temperature", math.nan),
    ("generator", "model", "/nonexistent"),
    ("generator", "user_motion_timeout_s", "long"),
    ("renderer", "width", 0),
    ("renderer", "width", 100000),
    ("renderer", "jpeg_quality", 101),
    ("renderer", "renderer", "cartoon"),
]


@pytest.fixture(scope="module")
def graph(ros_context, tmp_path_factory):
    from ros_helpers import NodeProcess

    ns = unique_topic("params")
    log = tmp_path_factory.mktemp("params")
    procs = {name: NodeProcess(f"avatar_forcing_ros.ros.{name}_node",
                               node_args(ns, "model:=procedural", "diagnostics_period_s:=0.2")
                               if name == "generator" else node_args(ns, "diagnostics_period_s:=0.2"),
                               log_path=log / f"{name}.log")
             for name in ("generator", "renderer")}
    drv = PipelineDriver(ros_context, ns)
    wait_for(lambda: drv.avatar_motion and drv.images, 40, spin=ros_context, processes=list(procs.values()),
             what="motion and images")
    yield ns, drv, procs
    for p in procs.values():
        p.stop()


@pytest.mark.parametrize("node, name, value", BAD_VALUES)
def test_a_bad_value_is_refused_with_a_reason_and_the_node_keeps_running(graph, ros_context, node, name, value):
    ns, drv, procs = graph
    before = get_parameter(ros_context, drv.node, f"{ns}/{node}", name)
    result = set_parameter(ros_context, drv.node, f"{ns}/{node}", name, value)
    assert not result.successful
    assert name in result.reason or "read-only" in result.reason or "type" in result.reason, result.reason
    assert get_parameter(ros_context, drv.node, f"{ns}/{node}", name) == before
    n = len(drv.avatar_motion), len(drv.images)
    wait_for(lambda: len(drv.avatar_motion) > n[0] + 5 and len(drv.images) > n[1] + 5, 10, spin=ros_context,
             processes=list(procs.values()), what="output to go on")


def test_a_live_parameter_takes_effect_at_once(graph, ros_context):
    ns, drv, procs = graph
    result = set_parameter(ros_context, drv.node, f"{ns}/renderer", "frame_id", "screen_face")
    assert result.successful, result.reason
    n = len(drv.images)
    wait_for(lambda: any(m.header.frame_id == "screen_face" for m in drv.images[n:]), 10, spin=ros_context,
             processes=list(procs.values()), what="images with the new frame_id")
    assert set_parameter(ros_context, drv.node, f"{ns}/generator", "guidance_scale", 2.5).successful
    assert get_parameter(ros_context, drv.node, f"{ns}/generator", "guidance_scale") == 2.5
    assert set_parameter(ros_context, drv.node, f"{ns}/generator", "nod_guidance_scale", 5.0).successful
    assert get_parameter(ros_context, drv.node, f"{ns}/generator", "nod_guidance_scale") == 5.0


def test_lifecycle_transitions_in_any_order_never_kill_the_node(graph, ros_context):
    """50 transitions, valid, invalid and repeated, while speech and face motion flow: the
    generator never dies, and ends active and publishing."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    ns, drv, procs = graph
    change = drv.node.create_client(ChangeState, f"{ns}/generator/change_state")
    get = drv.node.create_client(GetState, f"{ns}/generator/get_state")
    speech = pcm16(0.4 * np.sin(2 * np.pi * 180 * np.arange(320) / 16000))
    feeder = drv.node.create_timer(0.02, lambda: drv.pub["speech"].publish(drv.audio_msg(speech)))
    order = [Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP, Transition.TRANSITION_ACTIVATE,
             Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE,
             Transition.TRANSITION_CLEANUP, Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE,
             Transition.TRANSITION_DEACTIVATE]
    try:
        ok = 0
        for i in range(50):
            result = call(ros_context, change, ChangeState.Request(transition=Transition(id=order[i % len(order)])))
            ok += result.success
            assert procs["generator"].poll() is None, procs["generator"].log_tail()
        assert 10 < ok < 50  # some were valid, some were not
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            call(ros_context, change, ChangeState.Request(transition=Transition(id=transition)))
        assert call(ros_context, get, GetState.Request()).current_state.label == "active"
        n = len(drv.avatar_motion)
        wait_for(lambda: len(drv.avatar_motion) > n + 25, 10, spin=ros_context, processes=list(procs.values()),
                 what="motion after the transitions")
    finally:
        drv.node.destroy_timer(feeder)
        drv.node.destroy_client(change)
        drv.node.destroy_client(get)
