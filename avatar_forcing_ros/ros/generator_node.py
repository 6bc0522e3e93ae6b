"""Generator node: microphone + robot speech + the user's face -> the avatar's face motion.

Subscribes (relative names, remap them): ``user/audio`` and ``avatar/speech``
(audio_common_msgs AudioDataStamped or AudioData), their ``*_info`` (AudioInfo, optional),
``user/face_motion`` (FaceMotion). Publishes ``avatar/face_motion`` (FaceMotion, at the frame
rate, stamped with presentation time) and ``avatar/audio`` (the robot speech, delayed so it
plays in sync with the frames made from it).

Commands (core/face_commands.py): ``robot_face/expression`` (hri_msgs/Expression, where hri_msgs
is installed) and ``robot_face/look_at`` (geometry_msgs/PointStamped in the avatar's frame) are
blended into the generated frames.

``user_source: hri`` takes the user from ROS4HRI instead (core/humans.py): ``<humans_prefix>/
faces/tracked``, ``persons/tracked``, ``voices/tracked`` (IdsList), and per id, subscribed and
dropped as ids come and go, ``faces/<id>/landmarks``, ``persons/<id>/engagement_status``,
``persons/<id>/face_id`` / ``voice_id`` and ``voices/<id>/audio``; ``user/face_motion`` and
``user/audio`` are then not subscribed.
"""
from __future__ import annotations

import threading

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from geometry_msgs.msg import PointStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from ..core.audio import SAMPLE_RATE, SUPPORTED_SAMPLE_FORMATS, encode_s16le
from ..core.messages import audio_data_msg, audio_info_msg, audio_stamped_msg, face_motion_msg
from ..msg import FaceMotion
from ..pipeline import build_generator_stage
from .common import Param, AvatarNode, main_for, qos
from .messages import ROS_KIT, named_motion_msg

try:  # ROS4HRI's messages: optional (released for Jazzy, built from source elsewhere)
    from hri_msgs.msg import EngagementLevel, Expression, FacialLandmarks, IdsList
except ImportError:
    EngagementLevel = Expression = FacialLandmarks = IdsList = None

_AUDIO_TYPES = {"AudioDataStamped": AudioDataStamped, "AudioData": AudioData}


class GeneratorNode(AvatarNode):
    ROLE = "avatar motion generator"
    LINKABLE_OUTPUTS = {"avatar/face_motion": FaceMotion}  # the renderer's input in avatar_forcing_all
    PARAMETERS = {
        "model": Param("default", "Motion model: 'default' (the shipped learned model: its ONNX step "
                             "with onnx_providers when device is cpu, else torch on device; "
                             "procedural if it is missing), 'procedural', a checkpoint "
                             "directory, an .onnx file, or 'avatarforcing:<dir>' (the paper's "
                             "official network from the user's converted weights)."),
        "device": Param("cpu", "Torch device for a learned model: cpu, cuda, cuda:N."),
        "onnx_providers": Param(["CPUExecutionProvider"], "onnxruntime providers in order of "
                           "preference (e.g. TensorrtExecutionProvider, CUDAExecutionProvider)."),
        "guidance_scale": Param(2.0, "Classifier-free guidance over the user conditions (learned "
                                "model; 1 = off, >1 = more reactive; 2.0 is the shipped model's "
                                "tuned value, see models/af_forcing_v4/README.md).", min=0.0, max=50.0, live=True),
        "audio_guidance_scale": Param(-1.0, "Guidance over the avatar's own audio (two-way guidance, "
                                      "a learned model trained with avatar_drop > 0; 1 = off, >1 = the "
                                      "mouth follows the speech more; -1 = the model's own tuned value). "
                                      "A model without it refuses any value but 1 at configure.",
                                      min=-1.0, max=50.0, live=True),
        "nod_guidance_scale": Param(-1.0, "Guidance over the user conditions on the nod axis (head pitch) "
                                    "alone (learned model): higher, more back-channel nods at the user's "
                                    "pauses; -1 = the model's own tuned value (the shipped model's: see its "
                                    "README), which may be guidance_scale itself.",
                                    min=-1.0, max=50.0, live=True),
        "mouth_temperature": Param(-1.0, "Sampling temperature of the learned model's articulation "
                                   "channels (jaw, funnel, pucker, stretch): below 1 the mouth keeps nearer "
                                   "what the speech explains, 1 = as trained, -1 = the model's own tuned value.",
                                   min=-1.0, max=2.0, live=True),
        "torch_threads": Param(2, "CPU threads for the learned model.", min=1, max=64),
        "fps": Param(25.0, "Output frame rate of the avatar motion (Hz).", min=1.0, max=120.0),
        "block_frames": Param(2, "Frames per generated block for the procedural model (a learned "
                            "model uses its own). Latency grows with it.", min=1, max=50),
        "seed": Param(0, "Random seed of the motion model (same seed + input = same motion)."),
        "output_delay_s": Param(0.1, "Presentation delay of frames and speech after their input "
                                "(s); at least one block. The rest covers compute and late audio.", min=0.0, max=5.0),
        "compute_budget_s": Param(-1.0, "Time kept free for computing a block before its deadline (s); "
                                   "-1: the measured p95 of block compute (live). 0 where the clock "
                                   "stands still while computing (a test stepping sim time).", min=-1.0, max=1.0),
        "tick_rate_hz": Param(100.0, "How often the generator checks for complete blocks (Hz).", min=1.0, max=1000.0),
        "user_motion_timeout_s": Param(0.5, "The user counts as absent when no face motion newer "
                                       "than this has arrived (s).", min=0.01, max=60.0, live=True),
        "audio_message_type": Param("AudioDataStamped", "Type on the audio topics: AudioDataStamped "
                                                   "or AudioData.", choices=tuple(_AUDIO_TYPES)),
        "user_audio_qos": Param("sensor_data", "QoS of the microphone topic: sensor_data or reliable.", choices=("sensor_data", "reliable")),
        "speech_audio_qos": Param("reliable", "QoS of the robot speech topic: reliable or sensor_data.", choices=("sensor_data", "reliable")),
        "user_audio_sample_rate": Param(SAMPLE_RATE, "Microphone sample rate until an AudioInfo "
                                                "says otherwise (Hz); resampled to 16 kHz.", min=1000, max=384000),
        "user_audio_channels": Param(1, "Microphone channels (mixed to mono).", min=1, max=32),
        "user_audio_sample_format": Param("S16LE", "Microphone sample format (S16LE, S32LE, F32LE, U8, ...).", choices=SUPPORTED_SAMPLE_FORMATS),
        "speech_audio_sample_rate": Param(SAMPLE_RATE, "Robot speech sample rate until an AudioInfo "
                                                  "says otherwise (Hz).", min=1000, max=384000),
        "speech_audio_channels": Param(1, "Robot speech channels.", min=1, max=32),
        "speech_audio_sample_format": Param("S16LE", "Robot speech sample format.", choices=SUPPORTED_SAMPLE_FORMATS),
        "frame_id": Param("avatar_face", "frame_id of published FaceMotion and audio.", live=True),
        "expression_time_constant_s": Param(0.3, "Time constant with which a commanded expression "
                                            "(robot_face/expression) blends in and out (s).", min=0.0, max=10.0, live=True),
        "look_at_time_constant_s": Param(0.25, "Time constant with which head and eyes turn to a "
                                         "look-at target (robot_face/look_at) (s).", min=0.0, max=10.0, live=True),
        "look_at_head_share": Param(0.6, "Share of a look-at angle turned by the head; the eyes turn "
                                    "the rest.", min=0.0, max=1.0, live=True),
        "look_at_hold_s": Param(5.0, "A look-at target is let go after this long without a new "
                                "point (s); 0: held until the next.", min=0.0, max=3600.0, live=True),
        "user_source": Param("camera", "Where the user comes from: camera (user/face_motion and "
                             "user/audio, from the perception node) or hri (ROS4HRI's /humans/...: "
                             "the engaged person's face landmarks and voice; needs hri_msgs).",
                             choices=("camera", "hri")),
        "humans_prefix": Param("humans", "ROS4HRI topic prefix for user_source hri (relative: "
                               "follows the namespace; '/humans' for a robot's global one)."),
        "hri_calibration_frames": Param(30, "Frames of each face's landmarks whose median is its "
                                        "neutral (user_source hri; 0: template defaults).", min=0, max=10000),
        "hri_switch_time_s": Param(0.5, "Crossfade of the user's face motion when the user changes "
                                   "to another person (s).", min=0.0, max=10.0),
        "hri_camera_hfov_deg": Param(60.0, "Horizontal field of view of the camera the ROS4HRI landmarks "
                                     "come from (deg), facing the way the avatar does: where a face id "
                                     "on robot_face/look_at_face is.", min=1.0, max=179.0),
        "hri_max_ids": Param(16, "Most faces, persons and voices followed at once (per-id "
                             "subscriptions); more are counted and ignored.", min=1, max=256),
        "publish_named_motion": Param(False, "Also publish avatar/face_motion_named (sensor_msgs/"
                                      "JointState: channel names + values) for tools that know no FaceMotion."),
        "look_at_frames": Param(["avatar_face"], "Frames a look-at point may be given in: the avatar "
                                "face's own frame (REP-103: x out of the screen, y to the face's "
                                "left, z up). Points in other frames are dropped (no TF lookup).", live=True),
    }

    def __init__(self, **kwargs):
        self._subs, self._pubs, self._timer = [], {}, None
        self._hri = {}  # user_source hri: prefix and {(kind, id): per-id subscriptions}
        self.stage = None
        self._lock = threading.Lock()  # a tick in flight finishes before its publishers go
        super().__init__("generator", **kwargs)

    # -- lifecycle --------------------------------------------------------------------------

    def configure(self) -> None:
        msg_type = _AUDIO_TYPES[self.param("audio_message_type")]  # one of them: checked at start-up
        if self.param("user_source") == "hri" and IdsList is None:
            raise RuntimeError("user_source hri needs ROS4HRI's hri_msgs, which is not installed "
                               "(Jazzy: apt install ros-jazzy-hri-msgs; elsewhere build "
                               "github.com/ros4hri/hri_msgs), or set user_source: camera")
        self.stage, note = build_generator_stage(self.parameter_values(), self.telemetry)
        if note:
            self.get_logger().warning(note)
        gen = self.stage.generator
        model = gen.model
        self.get_logger().info(f"motion model: {model.name} (block {model.block_frames} frames, look-ahead "
                               f"{gen.lookahead}; output delay {gen.output_delay_s * 1000:.0f} ms)")
        self.telemetry.set("model", model.name)
        self._pubs["motion"] = self.create_output(FaceMotion, "avatar/face_motion", qos("reliable"))
        if self.param("publish_named_motion"):
            self._pubs["named"] = self.create_lifecycle_publisher(JointState, "avatar/face_motion_named", qos("reliable"))
        self._pubs["audio"] = self.create_lifecycle_publisher(AudioDataStamped, "avatar/audio", qos("reliable"))
        self._pubs["audio_info"] = self.create_lifecycle_publisher(
            AudioInfo, "avatar/audio_info", qos("latched", 1))
        # the same speech as plain AudioData on "audio", where audio_common's audio_play listens
        self._pubs["play"] = self.create_lifecycle_publisher(AudioData, "audio", qos("reliable"))
        # One group per input: a backed-up microphone never holds back speech, infos or the face.
        def group():
            return MutuallyExclusiveCallbackGroup()
        self._msg_type = msg_type
        self._subs = [
            self.create_subscription(msg_type, "avatar/speech", lambda m: self._on_audio("speech", m),
                                     qos(self.param("speech_audio_qos")), callback_group=group()),
            *self._info_subscriptions("user", "user/audio_info", group()),
            *self._info_subscriptions("speech", "avatar/speech_info", group()),
            self.create_subscription(PointStamped, "robot_face/look_at", self._on_look_at,
                                     qos("reliable"), callback_group=group()),
            self.create_subscription(String, "robot_face/look_at_face", self._on_look_at_face,
                                     qos("reliable"), callback_group=group()),
        ]
        if self.stage.humans is None:  # user_source camera
            self._subs += [
                self.create_subscription(msg_type, "user/audio", lambda m: self._on_audio("user", m),
                                         qos(self.param("user_audio_qos")), callback_group=group()),
                self.create_input(FaceMotion, "user/face_motion", self._on_user_motion,
                                  qos("reliable"), callback_group=group())]
        else:
            self._hri_group = group()
            prefix = self.param("humans_prefix").rstrip("/")
            self._hri = {"prefix": prefix, "subs": {}}
            self._subs += [self.create_subscription(IdsList, f"{prefix}/{kind}/tracked",
                                                    lambda m, k=kind: self._on_tracked(k, m),
                                                    qos("reliable"), callback_group=self._hri_group)
                           for kind in ("faces", "persons", "voices")]
        if Expression is not None:
            self._subs.append(self.create_subscription(Expression, "robot_face/expression", self._on_expression,
                                                       qos("reliable"), callback_group=group()))
        else:
            self.get_logger().warning("hri_msgs is not installed: robot_face/expression is not subscribed")
            self.telemetry.set("expression", "unavailable (no hri_msgs)")
        self._tick_group = group()

    def _info_subscriptions(self, side: str, topic: str, callback_group):
        """An AudioInfo topic, subscribed twice: transient local, to get an info latched before
        this node started (audio_capture latches its own), and volatile, to match publishers
        that do not latch (a transient-local subscription cannot). A latched info arrives on
        both: the stage ignores an info identical to the last. (BEST_AVAILABLE durability would
        be one subscription, but it is settled when the subscription is made: made before any
        publisher, it stays transient local and misses every volatile one.)"""
        quiet = SubscriptionEventCallbacks(incompatible_qos=lambda event: None)  # expected: see above
        return [self.create_subscription(AudioInfo, topic, lambda m: self._on_info(side, m), qos("latched", 5),
                                         callback_group=callback_group, event_callbacks=quiet),
                self.create_subscription(AudioInfo, topic, lambda m: self._on_info(side, m), qos("reliable", 5),
                                         callback_group=callback_group)]

    def apply(self, name: str, value) -> None:
        stage = self.stage
        if stage is None:
            return  # read at the next configure
        model = stage.generator.model
        if name == "guidance_scale" and hasattr(model, "set_guidance"):
            model.set_guidance(value)
        elif name == "audio_guidance_scale" and hasattr(model, "set_guidance"):
            try:
                model.set_guidance(None, value)
            except ValueError as e:  # the model has no null for its audio: it keeps what it has
                self.get_logger().warning(f"audio_guidance_scale {value} ignored: {e}")
        elif name == "nod_guidance_scale" and hasattr(model, "set_guidance"):
            try:
                model.set_guidance(None, None, value)
            except ValueError as e:  # an ONNX graph without a nod input: it keeps what it has
                self.get_logger().warning(f"nod_guidance_scale {value} ignored: {e}")
        elif name == "mouth_temperature" and hasattr(model, "set_mouth_temperature"):
            try:
                model.set_mouth_temperature(value)
            except ValueError as e:  # the declared range lets only [-1, 2] through; kept as is
                self.get_logger().warning(f"mouth_temperature {value} ignored: {e}")
        elif name == "user_motion_timeout_s":
            stage.generator.user_motion.timeout_s = float(value)
        elif hasattr(stage.commands.settings, name):
            setattr(stage.commands.settings, name, tuple(value) if name == "look_at_frames" else float(value))

    def activate(self) -> None:
        self.stage.start(self.now_s())
        self._timer = self.create_timer(1.0 / self.param("tick_rate_hz"), self._tick,
                                        callback_group=self._tick_group)
        self._pubs["audio_info"].publish(audio_info_msg(ROS_KIT, SAMPLE_RATE))

    def deactivate(self) -> None:
        with self._lock:
            if self._timer is not None:
                self.destroy_timer(self._timer)
                self._timer = None

    def cleanup(self) -> None:
        with self._lock:
            for subs in getattr(self, "_hri", {}).get("subs", {}).values():
                self._subs += subs
            self._hri = {}
            for sub in self._subs:
                self.destroy_input(sub)
            for pub in self._pubs.values():
                self.destroy_lifecycle_publisher(pub)
            self._subs, self._pubs, self.stage = [], {}, None

    # -- inputs: callback -> stage ----------------------------------------------------------

    def _on_info(self, side: str, msg) -> None:
        stage = self.stage
        if stage is not None:
            stage.on_info(side, msg)

    def _on_audio(self, side: str, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None:
            stage.on_audio(side, msg, self.now_s())

    def _on_user_motion(self, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None:
            stage.on_user_motion(msg, self.now_s())

    # -- ROS4HRI humans: per-id subscriptions made and dropped as ids come and go -------------

    def _on_tracked(self, kind: str, msg) -> None:
        stage, hri = self.stage, self._hri
        if stage is None or self._timer is None or not hri:
            return
        added, removed = stage.on_tracked(kind, msg, self.now_s())
        for i in removed:
            for sub in hri["subs"].pop((kind, i), []):
                self.destroy_subscription(sub)
        for i in added:
            try:
                hri["subs"][(kind, i)] = self._id_subscriptions(kind, i, f"{hri['prefix']}/{kind}/{i}")
            except Exception as exc:  # an id that is not a valid topic name
                self.telemetry.drop(f"{kind} id unusable", f"{i!r}: {exc}")
        self.telemetry.set("hri subscriptions", sum(len(v) for v in hri["subs"].values()))

    def _id_subscriptions(self, kind: str, i: str, base: str) -> list:
        group = self._hri_group
        if kind == "faces":
            return [self.create_subscription(FacialLandmarks, f"{base}/landmarks",
                                             lambda m: self._hri_call("on_face_landmarks", i, m),
                                             qos("sensor_data"), callback_group=group)]
        if kind == "voices":
            return [self.create_subscription(self._msg_type, f"{base}/audio",
                                             lambda m: self._hri_call("on_voice_audio", i, m),
                                             qos(self.param("user_audio_qos")), callback_group=group)]
        quiet = SubscriptionEventCallbacks(incompatible_qos=lambda event: None)  # latched or not: both
        subs = [self.create_subscription(EngagementLevel, f"{base}/engagement_status",
                                         lambda m: self._hri_call("on_engagement", i, m),
                                         qos("reliable"), callback_group=group)]
        for match in ("face", "voice"):
            for q in (qos("latched", 1), qos("reliable", 1)):
                subs.append(self.create_subscription(
                    String, f"{base}/{match}_id", lambda m, k=match: self._hri_match(i, k, m), q,
                    callback_group=group, event_callbacks=quiet))
        return subs

    def _hri_call(self, method: str, i: str, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None and self._hri:
            getattr(stage, method)(i, msg, self.now_s())

    def _hri_match(self, person_id: str, kind: str, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None and self._hri:
            stage.on_person_match(person_id, kind, msg, self.now_s())

    def _on_expression(self, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None:
            stage.on_expression(msg, self.now_s())

    def _on_look_at_face(self, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None:
            stage.on_look_at_face(msg, self.now_s())

    def _on_look_at(self, msg) -> None:
        stage = self.stage
        if stage is not None and self._timer is not None:
            stage.on_look_at(msg, self.now_s())

    # -- output -----------------------------------------------------------------------------

    def _tick(self) -> None:
        with self._lock:
            stage, pubs = self.stage, self._pubs
            if stage is None or self._timer is None:
                return  # deactivated while this tick was queued
            frame_id = self.param("frame_id")
            for f in stage.tick(self.now_s()):
                motion = face_motion_msg(ROS_KIT, stage.space, f.values, 1.0, True, f.presentation_time, frame_id)
                pubs["motion"].publish(motion)
                if "named" in pubs:
                    pubs["named"].publish(named_motion_msg(stage.space, motion))
                pcm = encode_s16le(f.speech)
                pubs["audio"].publish(audio_stamped_msg(ROS_KIT, pcm, f.presentation_time, frame_id))
                pubs["play"].publish(audio_data_msg(ROS_KIT, pcm))


def main(args=None):
    main_for(GeneratorNode, args)


if __name__ == "__main__":
    main()
