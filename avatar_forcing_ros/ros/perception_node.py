"""Perception node: camera images of the user -> the user's face motion.

Subscribes ``camera/image_raw`` (sensor_msgs/Image) or ``camera/image_raw/compressed``
(sensor_msgs/CompressedImage) and publishes ``user/face_motion`` (FaceMotion, stamped with
the image's capture time). The image callback only keeps the newest frame; a worker thread
processes it, so frames that arrive faster than they can be tracked are dropped and counted.
"""
from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image

from ..core.messages import face_motion_msg
from ..core.motion import AF_MOTION_V1
from ..core.stages import Skip
from ..msg import FaceMotion
from ..pipeline import build_perception_stage
from .common import Param, NewestFirstNode, main_for, qos
from .messages import ROS_KIT


class PerceptionNode(NewestFirstNode):
    ROLE = "user face perception"
    PARAMETERS = {
        "image_transport": Param("raw", "Which camera topic to read: raw (camera/image_raw) or "
                                   "compressed (camera/image_raw/compressed).", choices=("raw", "compressed")),
        "camera_qos": Param("sensor_data", "QoS of the camera topic: sensor_data or reliable.", choices=("sensor_data", "reliable")),
        "max_frame_age_s": Param(0.5, "Frames whose capture stamp is older than this when processing "
                                 "starts are dropped as stale (s); 0 disables the check.", min=0.0, max=60.0, live=True),
        "calibration_frames": Param(30, "Confident frames used to learn the user's neutral face.", min=0, max=10000),
        "no_face_decay_s": Param(0.5, "Time constant with which values fall back to neutral when "
                                 "no face is seen (s).", min=0.01, max=60.0, live=True),
        "frame_id": Param("user_face", "frame_id of published FaceMotion.", live=True),
        "motion_encoder": Param("blendshapes", "What the user's face becomes: blendshapes (af-motion-v1, "
                                "the face tracker) or avatarforcing:<dir> (the official network's "
                                "motion encoder, for the generator's avatarforcing backend)."),
        "motion_encoder_device": Param("cpu", "Torch device of the avatarforcing motion encoder."),
    }

    def __init__(self, **kwargs):
        self._sub = self._pub = self._worker = None
        self.stage = None
        super().__init__("perception", **kwargs)

    def configure(self) -> None:
        self.stage = build_perception_stage(self.parameter_values(), self.telemetry)
        self._pub = self.create_lifecycle_publisher(FaceMotion, "user/face_motion", qos("reliable"))
        transport = self.param("image_transport")
        msg_type, topic = ((Image, "camera/image_raw") if transport == "raw"
                           else (CompressedImage, "camera/image_raw/compressed"))
        self._sub = self.create_subscription(msg_type, topic, self._on_image, qos(self.param("camera_qos")))
        self.make_worker(self._process, "frame")

    def apply(self, name: str, value) -> None:
        if self.stage is None:
            return  # read at the next configure
        if name == "max_frame_age_s":
            self.stage.max_frame_age_s = float(value)
        elif name == "no_face_decay_s" and hasattr(self.stage.estimator, "decay_tau_s"):
            self.stage.estimator.decay_tau_s = float(value)

    def cleanup(self) -> None:
        self.stop_worker()
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
        if self.stage is not None:
            self.stage.close()
        self._sub = self._pub = self._worker = self.stage = None

    def _on_image(self, msg) -> None:
        self.offer("camera", msg)

    def _process(self, msg) -> None:
        start = self.now_s()
        obs = self.stage.step(msg, start)
        if isinstance(obs, Skip):
            return
        space = getattr(self.stage.estimator, "space", AF_MOTION_V1)
        self._pub.publish(face_motion_msg(ROS_KIT, space, obs.values, obs.confidence, obs.face_present,
                                          obs.stamp, self.param("frame_id")))
        self.telemetry.latency(self.now_s() - start)


def main(args=None):
    main_for(PerceptionNode, args)


if __name__ == "__main__":
    main()
