"""Perception node: camera images of the user -> the user's face motion.

Subscribes ``camera/image_raw`` (sensor_msgs/Image) or ``camera/image_raw/compressed``
(sensor_msgs/CompressedImage) and publishes ``user/face_motion`` (FaceMotion, stamped with
the image's capture time). The image callback only keeps the newest frame; a worker thread
processes it, so frames that arrive faster than they can be tracked are dropped and counted.

Optional: ``user/face_motion_named`` (sensor_msgs/JointState, channel names + values) and, the
REP-155 way for the rest of the robot, ``<humans_prefix>/faces/<hri_face_id>/facs``
(hri_msgs/FacialActionUnits, mapped by core/humans.FACS_MAP), ``.../expression``
(hri_msgs/Expression, core/humans.perceived_expression) and ``<humans_prefix>/faces/
tracked`` (IdsList: the face id while a face is seen, empty otherwise).
"""
from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image, JointState

from ..core.humans import facial_action_units, perceived_expression
from ..core.messages import face_motion_msg
from ..core.motion import AF_MOTION_V1
from ..core.stages import Skip
from ..msg import FaceMotion
from ..pipeline import build_perception_stage
from .common import Param, NewestFirstNode, main_for, qos
from .messages import ROS_KIT, named_motion_msg

try:  # ROS4HRI's messages: optional (publish_hri_facs needs them)
    from hri_msgs.msg import Expression, FacialActionUnits, IdsList
except ImportError:
    Expression = FacialActionUnits = IdsList = None


class PerceptionNode(NewestFirstNode):
    ROLE = "user face perception"
    LINKABLE_OUTPUTS = {"user/face_motion": FaceMotion}  # the generator's input in avatar_forcing_all
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
        "publish_named_motion": Param(False, "Also publish user/face_motion_named (sensor_msgs/"
                                      "JointState: channel names + values) for tools that know no FaceMotion."),
        "publish_hri_facs": Param(False, "Also publish the user's face the ROS4HRI way: "
                                  "<humans_prefix>/faces/<hri_face_id>/facs (FacialActionUnits), .../expression "
                                  "(Expression) and "
                                  "<humans_prefix>/faces/tracked (IdsList). Needs hri_msgs."),
        "humans_prefix": Param("humans", "ROS4HRI topic prefix (relative: follows the namespace; "
                               "'/humans' for a robot's global one)."),
        "hri_face_id": Param("avatar_user", "Face id under which the user's face is published (publish_hri_facs)."),
        "motion_encoder": Param("blendshapes", "What the user's face becomes: blendshapes (af-motion-v1, "
                                "the face tracker) or avatarforcing:<dir> (the official network's "
                                "motion encoder, for the generator's avatarforcing backend)."),
        "motion_encoder_device": Param("cpu", "Torch device of the avatarforcing motion encoder."),
    }

    def __init__(self, **kwargs):
        self._sub = self._pub = self._worker = None
        self._extra = {}
        self.stage = None
        super().__init__("perception", **kwargs)

    def configure(self) -> None:
        self.stage = build_perception_stage(self.parameter_values(), self.telemetry)
        if self.param("publish_hri_facs") and FacialActionUnits is None:
            raise RuntimeError("publish_hri_facs needs ROS4HRI's hri_msgs, which is not installed "
                               "(Jazzy: apt install ros-jazzy-hri-msgs; elsewhere build "
                               "github.com/ros4hri/hri_msgs), or set publish_hri_facs: false")
        if self.param("publish_hri_facs") and self.param("motion_encoder") != "blendshapes":
            raise RuntimeError("publish_hri_facs maps blendshapes to action units: it needs "
                               "motion_encoder: blendshapes, not the official network's latent")
        self._pub = self.create_output(FaceMotion, "user/face_motion", qos("reliable"))
        self._extra = {}
        if self.param("publish_named_motion"):
            self._extra["named"] = self.create_lifecycle_publisher(JointState, "user/face_motion_named", qos("reliable"))
        if self.param("publish_hri_facs"):
            prefix, face = self.param("humans_prefix").rstrip("/"), self.param("hri_face_id")
            self._extra["facs"] = self.create_lifecycle_publisher(FacialActionUnits, f"{prefix}/faces/{face}/facs",
                                                                  qos("reliable"))
            self._extra["expression"] = self.create_lifecycle_publisher(
                Expression, f"{prefix}/faces/{face}/expression", qos("reliable"))
            self._extra["tracked"] = self.create_lifecycle_publisher(IdsList, f"{prefix}/faces/tracked", qos("reliable"))
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
        stopped = self.stop_worker()
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
        for pub in getattr(self, "_extra", {}).values():
            self.destroy_lifecycle_publisher(pub)
        self._extra = {}
        if self.stage is not None and stopped:  # never under a running inference
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
        motion = face_motion_msg(ROS_KIT, space, obs.values, obs.confidence, obs.face_present,
                                 obs.stamp, self.param("frame_id"))
        self._pub.publish(motion)
        extra = self._extra
        if "named" in extra:
            extra["named"].publish(named_motion_msg(space, motion))
        if "facs" in extra:
            face = self.param("hri_face_id")
            extra["tracked"].publish(IdsList(header=motion.header, ids=[face] if obs.face_present else []))
            if obs.face_present:
                intensity, confidence = facial_action_units(space, obs.values, obs.confidence)
                extra["facs"].publish(FacialActionUnits(header=motion.header, intensity=intensity,
                                                        confidence=confidence))
                name, valence, arousal, conf = perceived_expression(space, obs.values, obs.confidence)
                extra["expression"].publish(Expression(header=motion.header, expression=name, valence=valence,
                                                       arousal=arousal, confidence=conf))
        self.telemetry.latency(self.now_s() - start)


def main(args=None):
    main_for(PerceptionNode, args)


if __name__ == "__main__":
    main()
