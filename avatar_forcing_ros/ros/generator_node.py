"""Generator node: microphone + robot speech + the user's face -> the avatar's face motion.

Subscribes (relative names, remap them): ``user/audio`` and ``avatar/speech``
(audio_common_msgs AudioDataStamped or AudioData), their ``*_info`` (AudioInfo, optional),
``user/face_motion`` (FaceMotion). Publishes ``avatar/face_motion`` (FaceMotion, at the frame
rate, stamped with presentation time) and ``avatar/audio`` (the robot speech, delayed so it
plays in sync with the frames made from it).
"""
from __future__ import annotations

import array
import threading

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from ..core.audio import SAMPLE_RATE, AudioFormat, AudioFormatError, PcmDecoder, audio_stamp, encode_s16le
from ..core.motion import AF_MOTION_V1
from ..msg import FaceMotion
from ..pipeline import build_generator, build_motion_model
from .common import AvatarNode, main_for, qos, s_to_stamp
from .messages import audio_bytes, face_motion_msg, read_face_motion

_AUDIO_TYPES = {"AudioDataStamped": AudioDataStamped, "AudioData": AudioData}


class GeneratorNode(AvatarNode):
    ROLE = "avatar motion generator"
    PARAMETERS = {
        "model": ("default", "Motion model: 'default' (the shipped learned model: its ONNX step "
                             "with onnx_providers when device is cpu, else torch on device; "
                             "procedural if it is missing), 'procedural', a checkpoint "
                             "directory, or an .onnx file."),
        "device": ("cpu", "Torch device for a learned model: cpu, cuda, cuda:N."),
        "onnx_providers": (["CPUExecutionProvider"], "onnxruntime providers in order of "
                           "preference (e.g. TensorrtExecutionProvider, CUDAExecutionProvider)."),
        "guidance_scale": (5.0, "Classifier-free guidance over the user conditions (learned "
                                "model; 1 = off, >1 = more reactive; 5.0 is the shipped model's "
                                "tuned value, see models/af_forcing_v1/README.md)."),
        "torch_threads": (2, "CPU threads for the learned model."),
        "fps": (25.0, "Output frame rate of the avatar motion (Hz)."),
        "block_frames": (2, "Frames per generated block for the procedural model (a learned "
                            "model uses its own). Latency grows with it."),
        "seed": (0, "Random seed of the motion model (same seed + input = same motion)."),
        "output_delay_s": (0.1, "Presentation delay of frames and speech after their input "
                                "(s); at least one block. The rest covers compute and late audio."),
        "tick_rate_hz": (100.0, "How often the generator checks for complete blocks (Hz)."),
        "user_motion_timeout_s": (0.5, "The user counts as absent when no face motion newer "
                                       "than this has arrived (s)."),
        "audio_message_type": ("AudioDataStamped", "Type on the audio topics: AudioDataStamped "
                                                   "or AudioData."),
        "user_audio_qos": ("sensor_data", "QoS of the microphone topic: sensor_data or reliable."),
        "speech_audio_qos": ("reliable", "QoS of the robot speech topic: reliable or sensor_data."),
        "user_audio_sample_rate": (SAMPLE_RATE, "Microphone sample rate until an AudioInfo "
                                                "says otherwise (Hz); resampled to 16 kHz."),
        "user_audio_channels": (1, "Microphone channels (mixed to mono)."),
        "user_audio_sample_format": ("S16LE", "Microphone sample format (S16LE, S32LE, F32LE, U8, ...)."),
        "speech_audio_sample_rate": (SAMPLE_RATE, "Robot speech sample rate until an AudioInfo "
                                                  "says otherwise (Hz)."),
        "speech_audio_channels": (1, "Robot speech channels."),
        "speech_audio_sample_format": ("S16LE", "Robot speech sample format."),
        "frame_id": ("avatar_face", "frame_id of published FaceMotion and audio."),
    }

    def __init__(self, **kwargs):
        self._lock = threading.Lock()
        self._subs, self._pubs, self._timer = [], {}, None
        self.generator = None
        super().__init__("generator", **kwargs)

    # -- lifecycle --------------------------------------------------------------------------

    def configure(self) -> None:
        params = self.parameter_values()
        model, note = build_motion_model(params)
        if note:
            self.get_logger().warning(note)
        self.get_logger().info(f"motion model: {model.name} (block {model.block_frames} frames)")
        self.telemetry.set("model", model.name)
        self.generator = build_generator(params, model)
        self.decoders = {
            side: PcmDecoder(AudioFormat(self.param(f"{side}_audio_sample_rate"),
                                         self.param(f"{side}_audio_channels"),
                                         self.param(f"{side}_audio_sample_format")))
            for side in ("user", "speech")}
        for side in self.decoders:
            self._report_format(side)
        msg_type = _AUDIO_TYPES.get(self.param("audio_message_type"))
        if msg_type is None:
            raise ValueError(f"audio_message_type must be one of {sorted(_AUDIO_TYPES)}")
        self._pubs["motion"] = self.create_lifecycle_publisher(FaceMotion, "avatar/face_motion", qos("reliable"))
        self._pubs["audio"] = self.create_lifecycle_publisher(AudioDataStamped, "avatar/audio", qos("reliable"))
        self._pubs["audio_info"] = self.create_lifecycle_publisher(
            AudioInfo, "avatar/audio_info", qos("latched", 1))
        inputs = MutuallyExclusiveCallbackGroup()
        self._subs = [
            self.create_subscription(msg_type, "user/audio", lambda m: self._on_audio("user", m),
                                     qos(self.param("user_audio_qos")), callback_group=inputs),
            self.create_subscription(msg_type, "avatar/speech", lambda m: self._on_audio("speech", m),
                                     qos(self.param("speech_audio_qos")), callback_group=inputs),
            self.create_subscription(AudioInfo, "user/audio_info", lambda m: self._on_info("user", m),
                                     qos("reliable"), callback_group=inputs),
            self.create_subscription(AudioInfo, "avatar/speech_info", lambda m: self._on_info("speech", m),
                                     qos("reliable"), callback_group=inputs),
            self.create_subscription(FaceMotion, "user/face_motion", self._on_user_motion,
                                     qos("reliable"), callback_group=inputs),
        ]
        self._tick_group = MutuallyExclusiveCallbackGroup()

    def activate(self) -> None:
        with self._lock:
            self.generator.start(self.now_s())
        self._timer = self.create_timer(1.0 / self.param("tick_rate_hz"), self._tick,
                                        callback_group=self._tick_group)
        self._pubs["audio_info"].publish(AudioInfo(channels=1, sample_rate=SAMPLE_RATE,
                                                   sample_format="S16LE", coding_format="wave"))

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
            self._subs, self._pubs, self.generator = [], {}, None

    # -- inputs -----------------------------------------------------------------------------

    def _active(self) -> bool:
        return self._timer is not None

    def _on_info(self, side: str, msg) -> None:
        fmt = AudioFormat(int(msg.sample_rate), int(msg.channels), msg.sample_format or "S16LE")
        coding = (msg.coding_format or "wave").lower()
        if coding not in ("wave", "pcm", "raw", "wav"):
            self.telemetry.drop(f"{side} audio info", f"coding_format {msg.coding_format!r} is not PCM")
            return
        decoder = self.decoders[side]
        if fmt == decoder.format:
            return
        try:
            decoder.set_format(fmt)
            self.get_logger().info(f"{side} audio format: {fmt}")
            self._report_format(side)
        except AudioFormatError as exc:
            self.telemetry.drop(f"{side} audio info", str(exc))

    def _report_format(self, side: str) -> None:
        f = self.decoders[side].format
        self.telemetry.set(f"{side} audio format", f"{f.sample_format} {f.sample_rate} Hz x{f.channels}")

    def _on_audio(self, side: str, msg) -> None:
        if not self._active():
            return
        data = audio_bytes(msg)
        if not data:
            self.telemetry.drop(f"{side} audio empty")
            return
        decoder = self.decoders[side]
        before = decoder.nonfinite_samples
        samples = decoder.decode(data)
        if decoder.nonfinite_samples > before:
            self.telemetry.drop(f"{side} audio non-finite samples",
                                f"{decoder.nonfinite_samples - before} zeroed")
        self.telemetry.tick(f"{side} audio")
        with self._lock:
            gen = self.generator
            if gen is None:
                return  # cleaned up while this message was queued
            push = gen.push_user_audio if side == "user" else gen.push_avatar_audio
            push(samples, self.now_s(), audio_stamp(msg))
            dropped = gen.avatar_audio.dropped_samples + gen.user_audio.dropped_samples
        if dropped:
            self.telemetry.set("audio samples over buffer", dropped)

    def _on_user_motion(self, msg) -> None:
        if not self._active():
            return
        try:
            values, conf, n_bad = read_face_motion(msg, AF_MOTION_V1)
        except ValueError as exc:
            self.telemetry.drop("user face motion", str(exc))
            return
        if n_bad:
            self.telemetry.drop("user face motion non-finite", f"{n_bad} values replaced")
        self.telemetry.tick("user face motion")
        with self._lock:
            if self.generator is not None:
                self.generator.push_user_motion(values, conf, self.now_s())

    # -- output -----------------------------------------------------------------------------

    def _tick(self) -> None:
        # Under the lock throughout: a lifecycle transition from a manager waits for the tick.
        with self._lock:
            if self._timer is None or self.generator is None:
                return  # deactivated while this tick was queued
            now = self.now_s()
            gen = self.generator
            made = gen.step(now)
            frames = gen.pop_due(now)
            if made:
                self.telemetry.latency(gen.stats.last_block_compute_s)
            self.telemetry.set("frames skipped (late)", gen.stats.skipped_frames)
            for side, lead in gen.audio_lead_s(now).items():  # audio queued beyond "now" adds latency
                self.telemetry.set(f"{side} audio queued ahead (ms)", f"{lead * 1e3:.0f}")
            frame_id = self.param("frame_id")
            for f in frames:
                self._pubs["motion"].publish(face_motion_msg(
                    FaceMotion, gen.model.space, f.values, 1.0, True, f.presentation_time, frame_id))
                audio = AudioDataStamped()
                s_to_stamp(f.presentation_time, audio.header.stamp)
                audio.header.frame_id = frame_id
                audio.audio.data = array.array("B", encode_s16le(f.speech))
                self._pubs["audio"].publish(audio)
                self.telemetry.tick("avatar face motion")

def main(args=None):
    main_for(GeneratorNode, args)


if __name__ == "__main__":
    main()
