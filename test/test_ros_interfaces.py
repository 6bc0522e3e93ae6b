"""The package's messages cross a real DDS link between two processes intact.

A publisher process (test/ros_publisher.py) sends; the test process subscribes and compares
field by field. Needs the message packages that scripts/setup.sh (or colcon build) generates.
"""
import json
from pathlib import Path

from ros_helpers import unique_topic, wait_for

REPO = Path(__file__).resolve().parent.parent
PUBLISHER = str(REPO / "test" / "ros_publisher.py")
STAMP = {"sec": 1_700_000_123, "nanosec": 500}


def receive_from_publisher_process(ros_context, node_process, msg_type, fields, count=3):
    """Publish ``count`` messages built from ``fields`` in another process; return those received."""
    topic = unique_topic(msg_type.__name__)
    received = ros_context.collect(msg_type, topic)
    type_path = f"{msg_type.__module__.rpartition('.')[0]}.{msg_type.__name__}"
    publisher = node_process(PUBLISHER, type_path, topic, count, json.dumps(fields))
    wait_for(lambda: len(received) >= count, timeout=30, spin=ros_context, processes=[publisher],
             what=f"{count} {msg_type.__name__} messages on {topic}")
    publisher.stop(check=True)
    return received


def test_face_motion_round_trips_between_processes(ros_context, node_process):
    from avatar_forcing_ros.msg import FaceMotion

    values = [0.25, -0.5, 1.5, 0.0, 0.125, 1.0]  # exact in float32
    received = receive_from_publisher_process(ros_context, node_process, FaceMotion, {
        "header": {"stamp": STAMP, "frame_id": "camera_optical"},
        "motion_space": "af-motion-v1",
        "values": values,
        "confidence": 0.75,
        "face_present": True,
    })

    assert [m.header.stamp.nanosec for m in received] == [500, 501, 502]
    for message in received:
        assert message.header.stamp.sec == STAMP["sec"]
        assert message.header.frame_id == "camera_optical"
        assert message.motion_space == "af-motion-v1"
        assert list(message.values) == values
        assert message.confidence == 0.75
        assert message.face_present is True


def test_audio_data_stamped_round_trips_between_processes(ros_context, node_process):
    from audio_common_msgs.msg import AudioDataStamped

    pcm = list(range(256)) * 4  # 1024 bytes: every byte value, as S16LE samples would use
    received = receive_from_publisher_process(ros_context, node_process, AudioDataStamped, {
        "header": {"stamp": STAMP, "frame_id": "mic"},
        "audio": {"data": pcm},
    })

    assert [m.header.stamp.nanosec for m in received] == [500, 501, 502]
    for message in received:
        assert message.header.stamp.sec == STAMP["sec"]
        assert message.header.frame_id == "mic"
        assert bytes(message.audio.data) == bytes(pcm)


def test_audio_info_has_the_audio_common_fields():
    from audio_common_msgs.msg import AudioInfo

    assert AudioInfo.get_fields_and_field_types() == {
        "channels": "uint8",
        "sample_rate": "uint32",
        "sample_format": "string",
        "bitrate": "uint32",
        "coding_format": "string",
    }


def test_camera_sized_images_cross_best_effort_with_the_shipped_fast_dds_profile(
        ros_context, node_process):
    """Best-effort 480x480 rgb8 frames between processes: with the stock Fast DDS set-up almost
    all are lost (benchmarks/dds_image_transport.py: 3-5 of 120); with the shipped profile,
    which conftest applies to every process, all arrive. The benchmark's publisher sends."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    frames = 30
    topic = unique_topic("image")
    received = []
    # best effort as a camera, but a history that holds every frame: what is measured is what
    # the transport delivers, not how soon a busy test process spins (sensor-data QoS keeps 5)
    qos = QoSProfile(depth=frames, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
    ros_context.node().create_subscription(
        Image, topic, lambda m: m.header.frame_id.startswith("frame") and received.append(m), qos)
    publisher = node_process(str(REPO / "benchmarks" / "dds_image_transport.py"), "--role", "pub",
                             "--qos", "best_effort", "--frames", frames, "--size", "480x480",
                             "--topic", topic)
    wait_for(lambda: publisher.poll() is not None, timeout=60, spin=ros_context,
             what="the image publisher to finish")
    assert publisher.returncode == 0, publisher.log_tail()
    assert len(received) >= 0.9 * frames
    assert (received[0].width, received[0].height, received[0].encoding) == (480, 480, "rgb8")
    assert len(received[0].data) == 480 * 480 * 3
