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
