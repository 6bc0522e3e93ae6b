"""Recorder node: the pipeline's input and output topics into a rosbag2 (``rosbags``).

Messages are written as they arrive on the wire (serialized CDR, logged at receive time), so
the bag plays back with ``ros2 bag play`` and replays offline with ``avatar-forcing replay``.
Topics are relative names (they follow the namespace), like the nodes' own.

    avatar-forcing record --out session1                 # mcap, every pipeline topic
    avatar-forcing record --out s.db --storage sqlite3 --duration 60
    ros2 run avatar_forcing_ros recorder_node --ros-args -p out:=session1
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data

from ..offline import bags

# relative topic -> message type: the pipeline's inputs and outputs
DEFAULT_TOPICS = [name.lstrip("/") for name, _ in bags.TOPICS.values() if name != "/diagnostics"] + ["/diagnostics"]
SENSOR_TOPICS = ("camera/image_raw", "camera/image_raw/compressed", "user/audio")


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, _, name = msgtype.split("/")
    module = "avatar_forcing_ros.msg" if pkg == "avatar_forcing_ros" else f"{pkg}.msg"
    return getattr(importlib.import_module(module), name)


def _type_of(topic: str) -> str | None:
    bare = "/" + topic.lstrip("/")
    for name, msgtype in bags.TOPICS.values():
        if bare.endswith(name):
            return msgtype
    return None


class Recorder(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder", **kwargs)
        self.declare_parameter("out", "")
        self.declare_parameter("storage", "mcap")
        self.declare_parameter("topics", DEFAULT_TOPICS)
        self.declare_parameter("types", [""])  # "topic=pkg/msg/Type" for topics outside the pipeline
        self.declare_parameter("duration_s", 0.0)
        out = self.get_parameter("out").value or time.strftime("avatar_forcing_%Y%m%d_%H%M%S")
        self.writer = bags.BagWriter(out, self.get_parameter("storage").value)
        extra = dict(t.split("=", 1) for t in self.get_parameter("types").value if "=" in t)
        self.subs = []
        for topic in self.get_parameter("topics").value:
            msgtype = extra.get(topic) or _type_of(topic)
            if msgtype is None:
                raise ValueError(f"type of topic {topic!r} unknown: give it as types:=['{topic}=pkg/msg/Type']")
            try:
                msg_class = message_class(msgtype)
            except (ImportError, AttributeError) as exc:
                # e.g. audio_common_msgs not built: record the rest, and say what is missing
                self.get_logger().error(f"not recording {topic}: no Python class for {msgtype} ({exc})")
                continue
            resolved = self.resolve_topic_name(topic)
            qos = (qos_profile_sensor_data if topic.lstrip("/") in SENSOR_TOPICS
                   else QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100))
            self.subs.append(self.create_subscription(
                msg_class, topic, lambda data, t=resolved, m=msgtype: self._on_message(t, m, data),
                qos, raw=True))
        self.get_logger().info(f"recording {len(self.subs)} topics to {out} ({self.get_parameter('storage').value})")
        duration = self.get_parameter("duration_s").value
        self.done = False
        self.received = 0
        if duration > 0:
            self.create_timer(duration, self._finish)

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        self.received += 1
        if self.writer is not None:
            self.writer.write_raw(topic, msgtype, self.get_clock().now().nanoseconds, data)

    def _finish(self) -> None:
        self.done = True

    def close(self) -> str:
        if self.writer is None:
            return ""
        self.writer.close()
        counts = ", ".join(f"{n} {t}" for t, n in sorted(self.writer.counts.items())) or "no messages"
        self.writer = None
        return counts


def main(args=None) -> int:
    # Ctrl-C / SIGTERM end the recording ourselves: what the middleware already holds is
    # still written, and the bag is closed properly (its index and metadata).
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    recorder = None
    stop = {"asked": False}

    def on_signal(signum, frame):
        stop["asked"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        recorder = Recorder()
        while rclpy.ok() and not recorder.done and not stop["asked"]:
            rclpy.spin_once(recorder, timeout_sec=0.1)
        # drain: take what has arrived until nothing new comes for a moment
        quiet_since, last = time.monotonic(), recorder.received
        while time.monotonic() - quiet_since < 0.3:
            rclpy.spin_once(recorder, timeout_sec=0.05)
            if recorder.received != last:
                quiet_since, last = time.monotonic(), recorder.received
    except ExternalShutdownException:
        pass
    finally:
        if recorder is not None:
            summary = recorder.close()
            print(f"recorded {recorder.get_parameter('out').value or 'bag'}: {summary}", flush=True)
            recorder.destroy_node()
        rclpy.try_shutdown()
    return 0


def main_record(argv=None) -> int:
    """``avatar-forcing record``: flags for the common parameters; ROS arguments pass through."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args = argv[argv.index("--ros-args"):] if "--ros-args" in argv else []
    argv = argv[:len(argv) - len(ros_args)]
    p = argparse.ArgumentParser(prog="avatar-forcing record", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="", help="bag directory to create (default: avatar_forcing_<date>_<time>)")
    p.add_argument("--storage", choices=bags.STORAGES, default="mcap")
    p.add_argument("--topics", nargs="+", help="topics to record (default: every pipeline topic)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: at Ctrl-C)")
    p.add_argument("--namespace", default="", help="namespace of the pipeline")
    a = p.parse_args(argv)
    params = [f"storage:={a.storage}", f"duration_s:={float(a.duration)}"] + ([f"out:={a.out}"] if a.out else [])
    if a.topics:
        params.append("topics:=[" + ",".join(a.topics) + "]")
    args = ["avatar-forcing-record", "--ros-args"] + [x for kv in params for x in ("-p", kv)]
    if a.namespace:
        args += ["-r", f"__ns:=/{a.namespace.strip('/')}"]
    args += ros_args[1:]
    return main(args)


if __name__ == "__main__":
    sys.exit(main())
