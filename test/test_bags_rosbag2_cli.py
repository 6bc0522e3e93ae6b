"""What ``record:=true`` runs: ``ros2 bag record`` where rosbag2 is installed, the package's
recorder otherwise; the topic set is the recorder's, under the namespace and remaps."""
from __future__ import annotations

import importlib.util

import pytest

from avatar_forcing_ros.offline import bags


def test_pipeline_topics_follow_namespace_and_remaps():
    topics = bags.pipeline_topics("robot", {"camera": "/camera/color/image_raw", "user_audio": "mic/audio"})
    assert "/camera/color/image_raw" in topics and "/robot/camera/image_raw" not in topics
    assert "/camera/color/image_raw/compressed" in topics  # follows the camera, as image_transport
    assert "/robot/mic/audio" in topics and "/robot/avatar/audio_info" in topics
    assert "/diagnostics" in topics and "/robot/diagnostics" not in topics
    assert len(topics) == len(bags.TOPICS) == len(set(topics))
    assert bags.pipeline_topics() == [name for name, _ in bags.TOPICS.values()]


def test_ros2_bag_record_command():
    cmd = bags.ros2_bag_record_command(["/a", "/b"], out="session1", storage="mcap")
    assert cmd[:3] == ["ros2", "bag", "record"]
    assert cmd[cmd.index("--storage") + 1] == "mcap" and cmd[cmd.index("--output") + 1] == "session1"
    assert cmd[cmd.index("--topics") + 1:] == ["/a", "/b"]
    assert "--output" not in bags.ros2_bag_record_command(["/a"])  # ros2 bag's own dated name
    with pytest.raises(bags.BagError, match="storage"):
        bags.ros2_bag_record_command(["/a"], storage="rosbag1")


@pytest.mark.skipif(importlib.util.find_spec("ros2bag") is not None, reason="rosbag2 is installed here")
def test_without_rosbag2_the_package_recorder_is_the_one_to_use():
    assert not bags.rosbag2_available("mcap") and not bags.rosbag2_available("sqlite3")
