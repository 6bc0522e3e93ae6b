"""ros/recorder.py: a bag recorded from live ROS 2 publishers reads back with its counts."""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from avatar_forcing_ros.core.messages import image_to_rgb
from avatar_forcing_ros.offline import bags
from ros_helpers import unique_topic, wait_for

pytest.importorskip("rclpy", reason="rclpy is not installed: run scripts/setup.sh")
N = 20


def recorder(node_process, bag, *ros_params):
    args = ["--ros-args", "-p", f"out:={bag}"]
    for p in ros_params:
        args += ["-p", p]
    return node_process("avatar_forcing_ros.ros.recorder", *args)


def recorded_counts(log: str) -> dict:
    line = next(l for l in log.splitlines() if l.startswith("recorded "))
    return {t: int(n) for n, t in re.findall(r"(\d+) (/\S+)", line)}


def read_back(bag):
    account = bags.BagAccount()
    return list(bags.read_bag(bag, account)), account


@pytest.mark.parametrize("storage", bags.STORAGES)
def test_recorded_images_read_back_with_their_count_and_content(ros_context, node_process, tmp_path, storage):
    from rclpy.duration import Duration
    from sensor_msgs.msg import CompressedImage

    topic = unique_topic("frames")
    proc = recorder(node_process, tmp_path / "bag", f"storage:={storage}", f"topics:=['{topic}']",
                    f"types:=['{topic}=sensor_msgs/msg/CompressedImage']")
    node = ros_context.node()
    pub = node.create_publisher(CompressedImage, topic, N)  # keeps every unacknowledged message
    wait_for(lambda: pub.get_subscription_count() >= 1, 20, spin=ros_context, processes=[proc])
    rgb = np.full((16, 16, 3), 200, np.uint8)
    data = bags.encode_compressed(rgb, "png")
    for i in range(N):
        msg = CompressedImage(format="png", data=data)
        msg.header.stamp.sec = 100 + i
        pub.publish(msg)
    assert pub.wait_for_all_acked(Duration(seconds=10))  # reliable: the recorder has every message
    proc.stop(check=True)
    msgs, account = read_back(tmp_path / "bag")
    assert account.read[topic] == N == recorded_counts(proc.log())[topic]
    assert [m.msg.header.stamp.sec for m in msgs] == list(range(100, 100 + N))
    np.testing.assert_array_equal(image_to_rgb(msgs[-1].msg), rgb)


@pytest.mark.skipif(importlib.util.find_spec("audio_common_msgs") is None
                    or importlib.util.find_spec("avatar_forcing_ros.msg") is None,
                    reason="message packages are not built (scripts/setup.sh)")
def test_a_live_generator_is_recorded_and_the_bag_replays(ros_context, node_process, tmp_path):
    from avatar_forcing_ros.msg import FaceMotion
    from avatar_forcing_ros.offline.replay import replay

    ns = unique_topic("rec").strip("/")
    proc = node_process("avatar_forcing_ros.ros.recorder", "--ros-args", "-p", f"out:={tmp_path / 'bag'}",
                        "-r", f"__ns:=/{ns}")
    received = ros_context.collect(FaceMotion, f"/{ns}/avatar/face_motion", qos=1000)  # keeps all while not spun
    probe = ros_context.node()
    # the recorder (and this test) listen before the generator says anything
    wait_for(lambda: probe.count_subscribers(f"/{ns}/avatar/face_motion") >= 2, 30, spin=ros_context, processes=[proc])
    gen = node_process("avatar_forcing_ros.ros.generator_node", "--ros-args", "-p", "model:=procedural",
                       "-r", f"__ns:=/{ns}")
    wait_for(lambda: len(received) >= 125, 60, spin=ros_context, processes=[proc, gen])  # 5 s of frames
    gen.stop(check=True)
    proc.stop(check=True)
    msgs, account = read_back(tmp_path / "bag")
    counts = recorded_counts(proc.log())
    motion = [m for m in msgs if m.topic == f"/{ns}/avatar/face_motion"]
    assert len(motion) == counts[f"/{ns}/avatar/face_motion"] >= 25
    # Once matched (discovery may let the first frames pass), the recorder missed nothing that
    # this subscriber got, up to the generator's last frame.
    stamp = lambda h: (h.stamp.sec, h.stamp.nanosec)  # noqa: E731
    recorded = [stamp(m.msg.header) for m in motion]
    wait_for(lambda: received and stamp(received[-1].header) >= recorded[-1], 10, spin=ros_context)
    got = [stamp(m.header) for m in received]
    # Compare where both were listening: each side may have matched the generator first.
    start = max(recorded[0], got[0])
    assert [s for s in recorded if s >= start] == [s for s in got if start <= s <= recorded[-1]]
    assert len([s for s in recorded if s >= start]) >= 25
    assert all(len(m.msg.values) == 28 for m in motion)
    assert not account.problems
    res = replay(tmp_path / "bag", tmp_path / "replayed", namespace=ns, overrides=["generator.model=procedural"],
                 images="none")
    assert res.account.unaccounted() == {}
    assert res.account.skipped[f"/{ns}/avatar/face_motion"] == {"pipeline output (made anew by the replay)": len(motion)}


def _subscription_qos(node, topic):
    """(reliability, durability) of the subscriptions on ``topic`` the graph shows."""
    return [(i.qos_profile.reliability, i.qos_profile.durability) for i in node.get_subscriptions_info_by_topic(topic)]


def test_offered_qos_is_stored_and_a_latched_message_from_before_the_start_is_recorded(
        ros_context, node_process, tmp_path):
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    latched, lossy = unique_topic("latched"), unique_topic("lossy")
    node = ros_context.node()
    pub_l = node.create_publisher(String, latched, QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    pub_b = node.create_publisher(String, lossy, QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    pub_l.publish(String(data="said before the recorder started"))
    proc = recorder(node_process, tmp_path / "bag", f"topics:=['{latched}','{lossy}']",
                    f"types:=['{latched}=std_msgs/msg/String','{lossy}=std_msgs/msg/String']")
    # the recorder ends up asking for what the publishers offer: latched from the latched one,
    # best effort from the best-effort one (it may first subscribe otherwise, before discovery)
    wait_for(lambda: _subscription_qos(node, latched) == [(ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)]
             and pub_l.get_subscription_count() == 1, 30, spin=ros_context, processes=[proc])
    wait_for(lambda: _subscription_qos(node, lossy) == [(ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)]
             and pub_b.get_subscription_count() == 1, 30, spin=ros_context, processes=[proc])
    assert pub_l.wait_for_all_acked(Duration(seconds=10))  # the recorder holds the latched message
    for i in range(5):
        pub_b.publish(String(data=f"lossy {i}"))
    proc.stop(check=True)

    msgs, account = read_back(tmp_path / "bag")
    assert [m.msg.data for m in msgs if m.topic == latched] == ["said before the recorder started"]
    assert 1 <= account.read[lossy] <= 5  # best effort: on loopback all arrive, but none is owed
    offered = bags.bag_offered_qos(tmp_path / "bag")
    assert offered[latched] == [{"history": "unknown", "depth": 0, "reliability": "reliable",
                                 "durability": "transient_local"}]
    assert offered[lossy] == [{"history": "unknown", "depth": 0, "reliability": "best_effort",
                               "durability": "volatile"}]
    # as rosbag2 writes metadata version 8: a YAML string of rmw's policy numbers
    import yaml

    meta = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8
    profiles = {t["topic_metadata"]["name"]: yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])
                for t in meta["topics_with_message_count"]}
    assert profiles[latched][0]["reliability"] == 1 and profiles[latched][0]["durability"] == 1
    assert profiles[lossy][0]["reliability"] == 2 and profiles[lossy][0]["durability"] == 2
    assert profiles[latched][0]["deadline"] == {"sec": 9223372036, "nsec": 854775807}  # infinite, as offered


def test_a_volatile_publisher_on_an_info_topic_is_still_recorded(ros_context, node_process, tmp_path):
    """Info topics are subscribed latched before any publisher is seen; a volatile one that
    appears later cannot match that, so the recorder subscribes again, volatile."""
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    info = unique_topic("mic") + "/audio_info"
    node = ros_context.node()
    proc = recorder(node_process, tmp_path / "bag", f"topics:=['{info}']", f"types:=['{info}=std_msgs/msg/String']")
    wait_for(lambda: _subscription_qos(node, info) == [(ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)],
             30, spin=ros_context, processes=[proc])
    pub = node.create_publisher(String, info, QoSProfile(depth=10, durability=DurabilityPolicy.VOLATILE))
    wait_for(lambda: pub.get_subscription_count() == 1, 30, spin=ros_context, processes=[proc])
    for i in range(5):
        pub.publish(String(data=f"info {i}"))
    assert pub.wait_for_all_acked(Duration(seconds=10))
    proc.stop(check=True)
    msgs, _ = read_back(tmp_path / "bag")
    assert [m.msg.data for m in msgs] == [f"info {i}" for i in range(5)]
    assert bags.bag_offered_qos(tmp_path / "bag")[info][0]["durability"] == "volatile"
    assert "subscribing again as reliable / volatile" in proc.log()
