"""The same node graph from the package's own entry point (one process, one executor, the
shipped YAML) — for machines without ``ros2 launch`` — and the launch file itself where ROS 2's
launch is installed. In that process the nodes hand over in process (no DDS subscription
between them) unless ``--handover dds``, and only where the topics would connect over DDS."""
from pathlib import Path

import numpy as np
import pytest

from pipeline_driver import PipelineDriver, mouth_cavity_pixels, node_args
from ros_helpers import unique_topic, wait_for

LAUNCH_FILE = Path(__file__).resolve().parent.parent / "launch" / "avatar_forcing.launch.py"


def subscribers(node, topic: str) -> set[str]:
    """Names of the nodes with a DDS subscription on ``topic`` (graph API)."""
    return {i.node_name for i in node.get_subscriptions_info_by_topic(topic)}


def publishers(node, topic: str) -> set[str]:
    return {i.node_name for i in node.get_publishers_info_by_topic(topic)}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("handover", ["in-process", "dds"])
def test_all_in_one_process_runs_the_three_nodes_from_the_shipped_yaml(ros_context, node_process, handover):
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer
    from avatar_forcing_ros.corpus.speech import synthesize

    ns = unique_topic("all_in_one")
    proc = node_process("avatar_forcing_ros.ros.all_in_one", "--handover", handover,
                        *node_args(ns, "model:=procedural"))
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["camera", "mic", "speech"], [proc])
    # 20 ms of silence, acknowledged: the generator has matched the speech publisher too (a CI
    # run once heard "Good morning to you." only after the stream below had ended)
    drv.prime("speech", drv.audio_msg(bytes(640)))
    wait_for(lambda: drv.images, timeout=30, spin=ros_context, processes=[proc], what="a first image")

    # The hand-over between the stages: in process, the receivers have no DDS subscription
    # (the process's endpoints are discovered together: its image publisher seen, its
    # subscriptions are too); over DDS they have.
    links = {f"{ns}/user/face_motion": "generator", f"{ns}/avatar/face_motion": "renderer"}
    wait_for(lambda: "renderer" in publishers(drv.node, f"{ns}/avatar/image"), timeout=30, spin=ros_context,
             processes=[proc], what="the renderer's image publisher in the graph")
    if handover == "in-process":
        for topic, receiver in links.items():
            assert receiver not in subscribers(drv.node, topic), topic
    else:
        wait_for(lambda: all(r in subscribers(drv.node, t) for t, r in links.items()), timeout=30,
                 spin=ros_context, processes=[proc], what="the generator's and renderer's DDS subscriptions")
    speech = np.concatenate([np.zeros(8000, np.float32), synthesize("Good morning to you.").audio])
    drv.stream(speech.size / 16000 + 0.5, speech=speech, processes=[proc])
    wait_for(lambda: drv.user_motion, timeout=10, spin=ros_context, processes=[proc], what="user motion")
    proc.stop(check=True)

    renderer = StylisedFaceRenderer()
    assert max(mouth_cavity_pixels(m, renderer) for m in drv.images) > 50
    nodes = {s.hardware_id for a in drv.diagnostics for s in a.status}
    assert {f"{ns}/perception", f"{ns}/generator", f"{ns}/renderer"} <= nodes
    linked = drv.status_values("renderer").get("input avatar/face_motion")
    assert (linked == f"in process ({ns}/avatar/face_motion)") if handover == "in-process" else linked is None
    assert drv.status_values("generator").get("input user/face_motion") == (
        f"in process ({ns}/user/face_motion)" if handover == "in-process" else None)


@pytest.mark.timeout(180)
def test_all_in_one_links_in_process_only_where_the_topics_would_connect(ros_context, node_process):
    """The renderer remapped to another motion topic: no in-process link is invented, it takes
    that topic over DDS; the generator's input, not remapped, stays linked."""
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    from avatar_forcing_ros.msg import FaceMotion

    ns = unique_topic("all_in_one_remap")
    proc = node_process("avatar_forcing_ros.ros.all_in_one", "--handover", "in-process",
                        *node_args(ns, "model:=procedural"), "-r", "renderer:avatar/face_motion:=other_motion")
    drv = PipelineDriver(ros_context, ns, compressed=False)
    other = drv.node.create_publisher(FaceMotion, f"{ns}/other_motion", 10)
    wait_for(lambda: "renderer" in subscribers(drv.node, f"{ns}/other_motion"), timeout=60, spin=ros_context,
             processes=[proc], what="the renderer's DDS subscription on the remapped topic")
    assert "renderer" not in subscribers(drv.node, f"{ns}/avatar/face_motion")
    assert "generator" not in subscribers(drv.node, f"{ns}/user/face_motion")  # still in process
    wait_for(lambda: other.get_subscription_count() > 0, timeout=30, spin=ros_context, processes=[proc],
             what="the remapped topic matched")
    # The generator runs (its frames reach this test over DDS) and the renderer renders for this
    # test's image subscriber, yet no image: nothing links the generator to the renderer.
    wait_for(lambda: len(drv.avatar_motion) >= 25, timeout=30, spin=ros_context, processes=[proc],
             what="the generator's frames")
    wait_for(lambda: drv.status_values("renderer"), timeout=30, spin=ros_context, processes=[proc],
             what="the renderer's diagnostics")
    assert drv.images == []
    assert "input avatar/face_motion" not in drv.status_values("renderer")

    msg = FaceMotion(motion_space=M.id, values=M.from_dict({"jawOpen": 0.7}).tolist(), confidence=1.0,
                     face_present=True)

    def published_image():  # sent again until an image comes back (the image subscriber's discovery)
        if not drv.images:
            other.publish(msg)
        return drv.images

    wait_for(published_image, timeout=30, spin=ros_context, processes=[proc], what="an image from the remapped topic",
             interval=0.1)
    proc.stop(check=True)


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


def change_state(ros_context, node, target: str, transition: int) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f"{target}/change_state")
    try:
        wait_for(lambda: client.wait_for_service(timeout_sec=0.0), 10, spin=ros_context, what=client.srv_name)
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        wait_for(future.done, 10, spin=ros_context, what=f"an answer from {client.srv_name}")
        return future.result().success
    finally:
        node.destroy_client(client)


@pytest.mark.timeout(180)
def test_all_in_one_in_process_input_follows_the_receivers_lifecycle(ros_context, node_process):
    """A deactivated renderer takes nothing from its in-process link (over DDS its subscription
    would still count the generator's frames); cleaned up and brought back, it is linked again."""
    from lifecycle_msgs.msg import Transition

    ns = unique_topic("all_in_one_lifecycle")
    proc = node_process("avatar_forcing_ros.ros.all_in_one", "--handover", "in-process",
                        *node_args(ns, "model:=procedural"))
    drv = PipelineDriver(ros_context, ns, compressed=False)
    wait_for(lambda: drv.images, timeout=60, spin=ros_context, processes=[proc], what="a first image")

    def renderer_reports(state: str, motion_input: bool):
        kv = drv.status_values("renderer")
        rate = float(kv.get("rate avatar face motion (Hz)", "0"))
        return kv.get("lifecycle state") == state and (rate > 0) == motion_input

    wait_for(lambda: renderer_reports("active", True), timeout=30, spin=ros_context, processes=[proc],
             what="the renderer taking the generator's frames")

    def frozen_heap():  # the process's long-lived objects, out of the collector's walk (GcPauses)
        return int(drv.status_values("renderer").get("gc heap frozen (objects)", "0"))
    # the active nodes froze the heap they had loaded (tens of thousands of objects)
    assert wait_for(lambda: frozen_heap() > 10000, timeout=30, spin=ros_context, processes=[proc],
                    what="a frozen heap reported")
    assert change_state(ros_context, drv.node, f"{ns}/renderer", Transition.TRANSITION_DEACTIVATE)
    # the generator goes on publishing (this test receives it over DDS) ...
    n = len(drv.avatar_motion)
    wait_for(lambda: len(drv.avatar_motion) > n + 50, timeout=30, spin=ros_context, processes=[proc],
             what="the generator's frames while the renderer is inactive")
    # ... and the renderer counts none of it (the rate is over the last 2 s)
    wait_for(lambda: renderer_reports("inactive", False), timeout=30, spin=ros_context, processes=[proc],
             what="the inactive renderer taking nothing")
    # deactivating gave the heap back to the collector (what the node drops next is collectable)
    assert frozen_heap() == 0
    for transition in (Transition.TRANSITION_CLEANUP, Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        assert change_state(ros_context, drv.node, f"{ns}/renderer", transition)
    wait_for(lambda: renderer_reports("active", True), timeout=30, spin=ros_context, processes=[proc],
             what="the renderer linked again")
    assert wait_for(lambda: frozen_heap() > 10000, timeout=30, spin=ros_context, processes=[proc],
                    what="the heap frozen again on activation")
    n = len(drv.images)
    wait_for(lambda: len(drv.images) > n, timeout=30, spin=ros_context, processes=[proc], what="images again")
    assert "renderer" not in subscribers(drv.node, f"{ns}/avatar/face_motion")
    proc.stop(check=True)
