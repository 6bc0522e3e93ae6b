"""Recorder node: the pipeline's input and output topics into a rosbag2 (``rosbags``).

Messages are written as they arrive on the wire (serialized CDR, logged at receive time), so
the bag plays back with ``ros2 bag play`` and replays offline with ``avatar-forcing replay``.
Topics are relative names (they follow the namespace), like the nodes' own. Each topic is
subscribed with QoS adapted to its publishers' offers (as ``ros2 bag record`` does: latched
topics such as avatar/audio_info are recorded from before the recorder started), and those
offers go into the bag metadata (``offered_qos_profiles``, metadata version 8) so that
``ros2 bag play`` publishes latched topics latched again.

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
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..offline import bags
from .common import ignore_further_signals

# relative topic -> message type: the pipeline's inputs and outputs
DEFAULT_TOPICS = [name.lstrip("/") for name, _ in bags.TOPICS.values() if name != "/diagnostics"] + ["/diagnostics"]
SENSOR_TOPICS = ("camera/image_raw", "camera/image_raw/compressed", "user/audio")
GRAPH_CHECK_S = 0.5  # how often publishers are looked up (QoS adaptation, offers for the bag)


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


def _expected_offer(topic: str) -> tuple[ReliabilityPolicy, DurabilityPolicy]:
    """What a topic's publishers are expected to offer before any is seen: best effort for
    sensors, transient local (latched) for the audio info topics, reliable volatile otherwise."""
    bare = topic.lstrip("/")
    if bare in SENSOR_TOPICS:
        return ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE
    if bare.endswith("audio_info") or bare.endswith("speech_info"):
        return ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL
    return ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE


def _adapted(offers) -> tuple[ReliabilityPolicy, DurabilityPolicy]:
    """The request that matches every offer and gets the most: reliable only if all publishers
    are reliable, transient local (latched messages) only if all are (as ``ros2 bag record``)."""
    reliable = all(q.reliability == ReliabilityPolicy.RELIABLE for q in offers)
    latched = all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offers)
    return (ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _compatible(request, offer) -> bool:
    reliability, durability = request
    return not ((reliability == ReliabilityPolicy.RELIABLE and offer.reliability != ReliabilityPolicy.RELIABLE)
                or (durability == DurabilityPolicy.TRANSIENT_LOCAL
                    and offer.durability != DurabilityPolicy.TRANSIENT_LOCAL))


def _for_bag(offer):
    """An rclpy endpoint QoS as the bag metadata's offered profile."""
    return bags.offered_qos(int(offer.reliability), int(offer.durability), int(offer.history), int(offer.depth),
                            offer.deadline.nanoseconds, offer.lifespan.nanoseconds, int(offer.liveliness),
                            offer.liveliness_lease_duration.nanoseconds, offer.avoid_ros_namespace_conventions)


class _Stream:
    """One recorded topic: its subscription, the QoS it requests, the offers it has seen."""

    def __init__(self, topic: str, resolved: str, msgtype: str, msg_class):
        self.topic, self.resolved, self.msgtype, self.msg_class = topic, resolved, msgtype, msg_class
        self.sub = None
        self.request = None
        self.offers = []        # rclpy QoSProfile of each publisher seen on the graph
        self.received = 0


class Recorder(Node):
    """Subscribes to each topic with QoS adapted to its publishers' offers (re-made when a
    publisher that the current subscription cannot match appears), and stores those offers
    in the bag metadata (``offered_qos_profiles``), so ``ros2 bag play`` offers them again."""

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
        self.streams: list[_Stream] = []
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
            stream = _Stream(topic, self.resolve_topic_name(topic), msgtype, msg_class)
            self.streams.append(stream)
            self._check_graph(stream)
        self.get_logger().info(f"recording {len(self.streams)} topics to {out} ({self.get_parameter('storage').value})")
        self._graph_checked = time.monotonic()
        duration = self.get_parameter("duration_s").value
        self.done = False
        self.received = 0
        if duration > 0:
            self.create_timer(duration, self._finish)

    @property
    def subs(self) -> list:
        return [s.sub for s in self.streams if s.sub is not None]

    def maintain(self) -> None:
        """Look up publishers every GRAPH_CHECK_S. Call between spins, not from a callback:
        a subscription re-made inside the executor's wait could be taken from after its
        destruction."""
        if time.monotonic() - self._graph_checked >= GRAPH_CHECK_S:
            self._graph_checked = time.monotonic()
            for stream in self.streams:
                self._check_graph(stream)

    def _check_graph(self, stream: _Stream) -> None:
        offers = [i.qos_profile for i in self.get_publishers_info_by_topic(stream.resolved)]
        if offers:
            stream.offers = offers
        if stream.sub is None:
            request = _adapted(offers) if offers else _expected_offer(stream.topic)
        elif not all(_compatible(stream.request, q) for q in offers):
            # a publisher this subscription cannot match: widen it (messages of the others are
            # not lost meanwhile on a volatile/best-effort subscription)
            request = _adapted(offers)
            self.get_logger().warning(
                f"{stream.resolved}: a publisher offers {offers[-1].reliability.name.lower()} / "
                f"{offers[-1].durability.name.lower()}; subscribing again as "
                f"{request[0].name.lower()} / {request[1].name.lower()}")
        elif stream.received == 0 and offers and _adapted(offers) != stream.request:
            request = _adapted(offers)  # nothing received yet: take the most the offers allow
        else:
            return
        if stream.sub is not None:
            self.destroy_subscription(stream.sub)
        reliability, durability = request
        depth = 10 if stream.topic.lstrip("/") in SENSOR_TOPICS else 100
        qos = QoSProfile(reliability=reliability, durability=durability, history=HistoryPolicy.KEEP_LAST,
                         depth=depth)
        stream.request = request
        stream.sub = self.create_subscription(
            stream.msg_class, stream.topic, lambda data, s=stream: self._on_message(s, data), qos, raw=True)

    def _on_message(self, stream: _Stream, data: bytes) -> None:
        self.received += 1
        stream.received += 1
        if self.writer is None:
            return
        offered = ()
        if stream.received == 1:  # the topic's connection is made now, with the offers seen
            if not stream.offers:  # a publisher quicker than the graph check
                stream.offers = [i.qos_profile for i in self.get_publishers_info_by_topic(stream.resolved)]
            offered = [_for_bag(q) for q in stream.offers]
        self.writer.write_raw(stream.resolved, stream.msgtype, self.get_clock().now().nanoseconds, data,
                              offered_qos=offered)

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
        ignore_further_signals()  # a second Ctrl-C (ros2 launch forwards one) must not cut the drain

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        recorder = Recorder()
        while rclpy.ok() and not recorder.done and not stop["asked"]:
            rclpy.spin_once(recorder, timeout_sec=0.1)
            recorder.maintain()
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
        ignore_further_signals()
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
