"""Generator node: microphone + robot speech + the user's face -> the avatar's face motion.

Subscribes (relative names, remap them): ``user/audio`` and ``avatar/speech``
(audio_common_msgs AudioDataStamped or AudioData), their ``*_info`` (AudioInfo, optional),
``user/face_motion`` (FaceMotion). Publishes ``avatar/face_motion`` (FaceMotion, at the frame
rate, stamped with presentation time) and ``avatar/audio`` (the robot speech, delayed so it
plays in sync with the frames made from it).
"""
from __future__ import annotations

import threading

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks

from ..core.audio import SAMPLE_RATE, SUPPORTED_SAMPLE_FORMATS, encode_s16le
from ..core.messages import audio_data_msg, audio_info_msg, audio_stamped_msg, face_motion_msg
from ..msg import FaceMotion
from ..pipeline import build_generator_stage
from .common import Param, AvatarNode, main_for, qos
from .messages import ROS_KIT

_AUDIO_TYPES = {"AudioDataStamped": AudioDataStamped, "AudioData": AudioData}


class GeneratorNode(AvatarNode):
    ROLE = "avatar motion generator"
    PARAMETERS = {
        "model": Param("default", "Motion model: 'default' (the shipped learned model: its ONNX step "
                             "with onnx_providers when device is cpu, else torch on device; "
                             "procedural if it is missing), 'procedural', a checkpoint "
                             "directory, an .onnx file, or 'avatarforcing:<dir>' (the paper's "
                             "official network from the user's converted weights)."),
        "device": Param("cpu", "Torch device for a learned model: cpu, cuda, cuda:N."),
        "onnx_providers": Param(["CPUExecutionProvider"], "onnxruntime providers in order of "
                           "preference (e.g. TensorrtExecutionProvider, CUDAExecutionProvider)."),
        "guidance_scale": Param(5.0, "Classifier-free guidance over the user conditions (learned "
                                "model; 1 = off, >1 = more reactive; 5.0 is the shipped model's "
                                "tuned value, see models/af_forcing_v1/README.md).", min=0.0, max=50.0, live=True),
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
    }

    def __init__(self, **kwargs):
        self._subs, self._pubs, self._timer = [], {}, None
        self.stage = None
        self._lock = threading.Lock()  # a tick in flight finishes before its publishers go
        super().__init__("generator", **kwargs)

    # -- lifecycle --------------------------------------------------------------------------

    def configure(self) -> None:
        msg_type = _AUDIO_TYPES[self.param("audio_message_type")]  # one of them: checked at start-up
        self.stage, note = build_generator_stage(self.parameter_values(), self.telemetry)
        if note:
            self.get_logger().warning(note)
        model = self.stage.generator.model
        self.get_logger().info(f"motion model: {model.name} (block {model.block_frames} frames)")
        self.telemetry.set("model", model.name)
        self._pubs["motion"] = self.create_lifecycle_publisher(FaceMotion, "avatar/face_motion", qos("reliable"))
        self._pubs["audio"] = self.create_lifecycle_publisher(AudioDataStamped, "avatar/audio", qos("reliable"))
        self._pubs["audio_info"] = self.create_lifecycle_publisher(
            AudioInfo, "avatar/audio_info", qos("latched", 1))
        # the same speech as plain AudioData on "audio", where audio_common's audio_play listens
        self._pubs["play"] = self.create_lifecycle_publisher(AudioData, "audio", qos("reliable"))
        # One group per input: a backed-up microphone never holds back speech, infos or the face.
        def group():
            return MutuallyExclusiveCallbackGroup()
        self._subs = [
            self.create_subscription(msg_type, "user/audio", lambda m: self._on_audio("user", m),
                                     qos(self.param("user_audio_qos")), callback_group=group()),
            self.create_subscription(msg_type, "avatar/speech", lambda m: self._on_audio("speech", m),
                                     qos(self.param("speech_audio_qos")), callback_group=group()),
            *self._info_subscriptions("user", "user/audio_info", group()),
            *self._info_subscriptions("speech", "avatar/speech_info", group()),
            self.create_subscription(FaceMotion, "user/face_motion", self._on_user_motion,
                                     qos("reliable"), callback_group=group()),
        ]
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
        if name == "guidance_scale" and hasattr(stage.generator.model, "set_guidance"):
            stage.generator.model.set_guidance(value)
        elif name == "user_motion_timeout_s":
            stage.generator.user_motion.timeout_s = float(value)

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
            for sub in self._subs:
                self.destroy_subscription(sub)
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

    # -- output -----------------------------------------------------------------------------

    def _tick(self) -> None:
        with self._lock:
            stage, pubs = self.stage, self._pubs
            if stage is None or self._timer is None:
                return  # deactivated while this tick was queued
            frame_id = self.param("frame_id")
            for f in stage.tick(self.now_s()):
                pubs["motion"].publish(face_motion_msg(ROS_KIT, stage.space, f.values, 1.0, True,
                                                       f.presentation_time, frame_id))
                pcm = encode_s16le(f.speech)
                pubs["audio"].publish(audio_stamped_msg(ROS_KIT, pcm, f.presentation_time, frame_id))
                pubs["play"].publish(audio_data_msg(ROS_KIT, pcm))


def main(args=None):
    main_for(GeneratorNode, args)


if __name__ == "__main__":
    main()
