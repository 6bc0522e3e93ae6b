"""Drives the avatar pipeline over real DDS from the test process: publishes camera frames of
a face, microphone audio and robot speech in real time, and collects what the nodes publish.

Used by the end-to-end and bad-input tests; the nodes run as separate processes.
"""
from __future__ import annotations

import array
import time
from pathlib import Path

import numpy as np

from ros_helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
CONFIG = str(REPO / "config" / "avatar_forcing.yaml")
SR = 16000
CHUNK = 320  # 20 ms of audio per message, as audio_common's capture node sends


def face_image(size: int = 480) -> np.ndarray:
    """The astronaut portrait (public domain, shipped with scikit-image), cropped to her face."""
    import cv2
    from skimage import data

    img = data.astronaut()[0:300, 90:330]
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def node_args(namespace: str, *params: str) -> list[str]:
    args = ["--ros-args", "-r", f"__ns:={namespace}", "--params-file", CONFIG]
    for p in params:
        args += ["-p", p]
    return args


def pcm16(x: np.ndarray) -> array.array:
    return array.array("B", (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


class PipelineDriver:
    """Publishers for the pipeline's inputs and collectors for its outputs in one namespace."""

    def __init__(self, ros, namespace: str, camera_qos: str = "sensor_data", compressed: bool = True):
        from audio_common_msgs.msg import AudioDataStamped, AudioInfo
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image

        from avatar_forcing_ros.msg import FaceMotion

        self.ros, self.ns = ros, namespace
        self.node = ros.node()
        camera = qos_profile_sensor_data if camera_qos == "sensor_data" else 10
        self.pub = {
            "camera": self.node.create_publisher(Image, f"{namespace}/camera/image_raw", camera),
            "camera_compressed": self.node.create_publisher(
                CompressedImage, f"{namespace}/camera/image_raw/compressed", camera),
            "mic": self.node.create_publisher(AudioDataStamped, f"{namespace}/user/audio", qos_profile_sensor_data),
            "speech": self.node.create_publisher(AudioDataStamped, f"{namespace}/avatar/speech", 50),
            "speech_info": self.node.create_publisher(AudioInfo, f"{namespace}/avatar/speech_info", 10),
            "user_motion": self.node.create_publisher(FaceMotion, f"{namespace}/user/face_motion", 10),
            "avatar_motion_in": self.node.create_publisher(FaceMotion, f"{namespace}/avatar/face_motion", 10),
        }
        self.images = ros.collect(Image, f"{namespace}/avatar/image", 10, node=self.node)
        self.compressed = (ros.collect(CompressedImage, f"{namespace}/avatar/image/compressed", 10, node=self.node)
                           if compressed else [])
        # deep: a reliable reader of depth 10 loses frames that a busy test process has not
        # taken yet, and the tests count frames
        self.avatar_motion = ros.collect(FaceMotion, f"{namespace}/avatar/face_motion", 200, node=self.node)
        self.user_motion = ros.collect(FaceMotion, f"{namespace}/user/face_motion", 200, node=self.node)
        self.avatar_audio = ros.collect(AudioDataStamped, f"{namespace}/avatar/audio", 50, node=self.node)
        self.diagnostics = ros.collect(DiagnosticArray, "/diagnostics", 50, node=self.node)
        self.image_times: list[float] = []  # receive time of each raw image
        self.node.create_subscription(Image, f"{namespace}/avatar/image",
                                      lambda m: self.image_times.append(time.time()), 10)
        self._face = None
        self._face_msg = None

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def prime(self, name: str, msg, timeout_s: float = 15.0) -> None:
        """Publish a harmless ``msg`` on publisher ``name`` and wait until every subscriber
        acknowledged it. A publisher counts a subscriber once it has discovered it, which can
        be before the subscriber has discovered the publisher; a message sent in between
        arrives only at the writer's next heartbeat, seconds later on a busy machine (commands
        applied 1-2 s late in CI). Once primed, what the test times is delivered at once."""
        from rclpy.duration import Duration

        self.pub[name].publish(msg)
        assert self.pub[name].wait_for_all_acked(Duration(seconds=timeout_s)), \
            f"{name}: not acknowledged by its subscribers within {timeout_s} s"

    def image_msg(self, rgb: np.ndarray, encoding: str = "rgb8"):
        from sensor_msgs.msg import Image

        from avatar_forcing_ros.core.imaging import array_to_image_fields

        f = array_to_image_fields(rgb, encoding)
        msg = Image(height=f["height"], width=f["width"], encoding=f["encoding"],
                    is_bigendian=f["is_bigendian"], step=f["step"])
        msg.data = array.array("B", f["data"])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def audio_msg(self, data):
        from audio_common_msgs.msg import AudioDataStamped

        msg = AudioDataStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.audio.data = data if isinstance(data, array.array) else array.array("B", bytes(data))
        return msg

    def wait_connected(self, names, processes, timeout=90.0):
        """Until every named publisher has a subscriber besides this driver's own collectors
        (discovery done)."""
        own = {"user_motion": 1, "avatar_motion_in": 1}  # topics this driver also collects
        wait_for(lambda: all(self.pub[n].get_subscription_count() > own.get(n, 0) for n in names),
                 timeout=timeout, spin=self.ros, processes=processes, what=f"subscribers on {names}")

    def stream(self, seconds: float, speech: np.ndarray | None = None, mic: np.ndarray | None = None,
               camera_hz: float = 10.0, processes=(), speech_key: str = "speech"):
        """Publish in real time for ``seconds``: audio in 20 ms chunks (speech and mic from the
        start of the stream, silence after), camera frames at ``camera_hz``. Returns the wall
        clock time the stream started."""
        if self._face is None:
            self._face = face_image()
        t0 = time.monotonic()
        start = self.now()
        sent, next_frame = 0, 0.0
        while (elapsed := time.monotonic() - t0) < seconds:
            while (sent + 1) * CHUNK <= elapsed * SR:
                s = slice(sent * CHUNK, (sent + 1) * CHUNK)
                for key, x in ((speech_key, speech), ("mic", mic)):
                    chunk = x[s] if x is not None and s.start < x.size else np.zeros(0, np.float32)
                    chunk = np.pad(chunk, (0, CHUNK - chunk.size))
                    self.pub[key].publish(self.audio_msg(pcm16(chunk)))
                sent += 1
            if camera_hz and elapsed >= next_frame:
                if self._face_msg is None:  # converted once: the driver must not be the bottleneck
                    self._face_msg = self.image_msg(self._face)
                self._face_msg.header.stamp = self.node.get_clock().now().to_msg()
                self.pub["camera"].publish(self._face_msg)
                next_frame += 1.0 / camera_hz
            self.ros.spin_once(timeout_sec=0.002)
            for p in processes:
                assert p.poll() is None, f"{p.name} exited\n{p.log_tail()}"
        return start

    def status_values(self, node_name: str) -> dict[str, str]:
        """The newest key/values the node reported on /diagnostics."""
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.hardware_id == f"{self.ns}/{node_name}":
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def drops(self, node_name: str) -> dict[str, int]:
        """The newest 'dropped ...' counters the node reported on /diagnostics."""
        return {k[len("dropped "):]: int(v) for k, v in self.status_values(node_name).items()
                if k.startswith("dropped ")}


def mouth_cavity_pixels(img_msg, renderer) -> int:
    """Pixels of the stylised face's mouth-interior colour inside its mouth box."""
    rgb = np.frombuffer(bytes(img_msg.data), np.uint8).reshape(img_msg.height, img_msg.width, 3)
    x0, y0, x1, y1 = renderer.mouth_box()
    crop = rgb[y0:y1, x0:x1].astype(np.int16)
    return int((np.abs(crop - np.array(renderer.mouth_colour, np.int16)).max(axis=2) <= 20).sum())
