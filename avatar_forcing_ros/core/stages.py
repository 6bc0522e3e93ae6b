"""The pipeline's stages: every decision a node makes about its input, written once.

A stage takes messages (rclpy or rosbags: same field names, see ``messages``) and the time
they are handled at, and returns what to publish or a ``Skip`` saying why not. Each skip is
counted once on the stage's ``Telemetry`` under its reason. The ROS nodes are callback ->
stage -> publish; ``offline.replay`` drives the same stages in bag time, so a replayed bag
means what the robot did.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE, AudioFormat, AudioFormatError, PcmDecoder
from .face_commands import CommandError, FaceCommands
from .humans import HumanSource, LandmarkError
from .imaging import ImageFormatError
from .messages import (audio_payload, audio_stamp, header_stamp_s, image_to_rgb, is_pcm_coding,
                       read_face_motion)
from .motion import MotionSpace
from .runtime import GeneratedFrame, StreamingGenerator
from .telemetry import Telemetry

# Time going back by more than this is a restart of the source (a looped bag, a restarted
# sender), not a message out of order: the stream starts over instead of waiting to catch up.
CLOCK_JUMP_BACK_S = 1.0


@dataclass(frozen=True)
class Skip:
    """An input that was not used, and why (the reason is the counter's name)."""
    reason: str
    detail: str = ""


@dataclass
class Observation:
    """The user's face in one camera frame."""
    values: np.ndarray  # (D,) within range
    confidence: float
    face_present: bool
    stamp: float        # capture time (s)


class _Stage:
    def __init__(self, telemetry: Telemetry | None, name: str):
        self.telemetry = telemetry if telemetry is not None else Telemetry(name)
        self.handled = 0  # input messages handed to the stage, used or skipped
        self._count_lock = threading.Lock()

    def _handle(self) -> None:
        with self._count_lock:
            self.handled += 1

    def _skip(self, reason: str, detail: str = "") -> Skip:
        self.telemetry.drop(reason, detail)
        return Skip(reason, detail)


class PerceptionStage(_Stage):
    """Camera frames -> observations of the user's face.

    Drops a frame whose capture stamp is older than ``max_frame_age_s`` at ``now`` (0: off),
    one whose stamp goes backwards (out of order), and one that cannot be decoded. Stamps that
    jump back by more than CLOCK_JUMP_BACK_S restart the stream (a looped bag)."""

    def __init__(self, estimator, max_frame_age_s: float = 0.5, telemetry: Telemetry | None = None):
        super().__init__(telemetry, "perception")
        self.estimator = estimator
        self.max_frame_age_s = float(max_frame_age_s)
        self._last_capture: float | None = None
        self.restarts = 0

    def step(self, msg, now: float) -> Observation | Skip:
        self._handle()
        captured = header_stamp_s(msg)
        if self.max_frame_age_s > 0 and captured is not None and now - captured > self.max_frame_age_s:
            return self._skip("stale frame (old stamp)", f"{now - captured:.2f} s old")
        t = captured if captured is not None else now
        if self._last_capture is not None and t < self._last_capture:
            if t >= self._last_capture - CLOCK_JUMP_BACK_S:
                return self._skip("capture stamp went backwards",
                                  f"{(self._last_capture - t) * 1e3:.0f} ms before the previous frame")
            self.restarts += 1
            self.telemetry.set("camera stream restarts (time jumped back)", self.restarts)
        try:
            rgb = image_to_rgb(msg)
        except ImageFormatError as exc:
            return self._skip("bad image", str(exc)[:200])
        self._last_capture = t
        obs = self.estimator.estimate(rgb, t)
        self.telemetry.tick("user face motion")
        self.telemetry.set("face present", obs.face_present)
        return Observation(np.asarray(obs.values, np.float32), float(obs.confidence), bool(obs.face_present), t)

    def close(self) -> None:
        self.estimator.close()


class AudioInput(_Stage):
    """One audio stream (the user's microphone or the robot's speech) as drivers send it.

    Decodes PCM in the format of the latest AudioInfo (or the configured default), resampled to
    16 kHz mono. A non-PCM AudioInfo (e.g. audio_capture's default MP3) mutes the stream until a
    PCM one arrives: compressed bytes decoded as PCM would be heard as loud noise."""

    def __init__(self, side: str, fmt: AudioFormat, telemetry: Telemetry | None = None):
        super().__init__(telemetry, f"{side} audio")
        self.side = side
        self.decoder = PcmDecoder(fmt)
        self.muted_by: str = ""  # the non-PCM coding that muted the stream
        self._last_info = None
        self._report_format()

    @property
    def format(self) -> AudioFormat:
        return self.decoder.format

    def on_info(self, msg) -> Skip | None:
        """Take an AudioInfo: switch the format, or mute the stream for a non-PCM coding. One
        identical to the last changes nothing and is not counted again (a latched info can
        arrive twice, and drivers repeat theirs)."""
        key = (int(msg.channels), int(msg.sample_rate), msg.sample_format, msg.coding_format)
        if key == self._last_info:
            return None
        self._last_info = key
        if not is_pcm_coding(msg.coding_format):
            if self.muted_by != msg.coding_format:
                self.muted_by = msg.coding_format
                self.telemetry.set(f"{self.side} audio", f"muted: coding_format {msg.coding_format!r} is not PCM")
            return self._skip(f"{self.side} audio info not PCM",
                              f"coding_format {msg.coding_format!r}: stream muted until a PCM AudioInfo")
        fmt = AudioFormat(int(msg.sample_rate), int(msg.channels), msg.sample_format or "S16LE")
        if fmt != self.decoder.format:
            try:
                self.decoder.set_format(fmt)
            except AudioFormatError as exc:
                return self._skip(f"{self.side} audio info", str(exc))
        if self.muted_by:
            self.muted_by = ""
            self.telemetry.set(f"{self.side} audio", "PCM")
        self._report_format()
        return None

    def decode(self, msg, now: float | None = None) -> np.ndarray | Skip:
        """Samples of one AudioData/AudioDataStamped chunk, or why it was not used. ``now``:
        its arrival, for the rate check of a continuous stream (``check_rate``)."""
        if self.muted_by:
            return self._skip(f"{self.side} audio muted (not PCM)", f"coding_format {self.muted_by!r}")
        data = audio_payload(msg)
        if not data:
            return self._skip(f"{self.side} audio empty")
        if self.check_rate and now is not None:
            self._measure_rate(len(data) / self.decoder.format.frame_bytes, now)
        before = self.decoder.nonfinite_samples
        samples = self.decoder.decode(data)
        if self.decoder.nonfinite_samples > before:  # used, with the bad samples zeroed
            self.telemetry.drop(f"{self.side} audio non-finite samples",
                                f"{self.decoder.nonfinite_samples - before} zeroed")
        self.telemetry.tick(f"{self.side} audio")
        return samples

    # A capture device streams continuously at its rate: sample frames that arrive much faster
    # or slower than the assumed rate (a 48 kHz microphone with no AudioInfo, taken for 16 kHz)
    # mean the format is wrong, and the speech would be heard at the wrong speed.
    RATE_WINDOW_S = 5.0
    RATE_TOLERANCE = 0.2

    check_rate = False  # set for streams that are continuous (the microphone, not a bursty TTS)
    rate_mismatch = ""  # why the arrival rate says the format is wrong ('' if it does not)

    def _measure_rate(self, frames: float, now: float) -> None:
        if self._rate_start is None or now < self._rate_start:
            self._rate_start, self._rate_frames = now, 0.0
            return  # the first chunk marks the start: its samples came before it
        self._rate_frames += frames
        elapsed = now - self._rate_start
        if elapsed < self.RATE_WINDOW_S:
            return
        measured, assumed = self._rate_frames / elapsed, self.decoder.format.sample_rate
        if abs(measured / assumed - 1.0) > self.RATE_TOLERANCE:
            if not self.rate_mismatch:
                self.telemetry.drop(f"{self.side} audio rate mismatch",
                                    f"~{measured:.0f} sample frames/s arrive, {assumed} Hz assumed "
                                    "(set the sample rate or publish an AudioInfo)")
            self.rate_mismatch = f"~{measured:.0f} Hz arriving, {assumed} Hz assumed"
        else:
            self.rate_mismatch = ""
        self.telemetry.set(f"{self.side} audio arriving (Hz)", f"{measured:.0f}")
        self._rate_start, self._rate_frames = now, 0.0

    def _report_format(self) -> None:
        self._rate_start, self._rate_frames = None, 0.0  # a new format: measure anew
        self.rate_mismatch = ""
        if self.decoder.discarded_samples:  # a format change drops the old resampler's tail
            self.telemetry.set(f"{self.side} audio resampler tail dropped (samples)", self.decoder.discarded_samples)
        f = self.decoder.format
        self.telemetry.set(f"{self.side} audio format", f"{f.sample_format} {f.sample_rate} Hz x{f.channels}")


class GeneratorStage(_Stage):
    """The user's audio and face and the robot's speech -> the avatar's frames, on one clock.

    Thread-safe: inputs may come from several callback threads while a timer ticks."""

    SIDES = ("user", "speech")

    def __init__(self, generator: StreamingGenerator, user_format: AudioFormat, speech_format: AudioFormat,
                 telemetry: Telemetry | None = None, commands: FaceCommands | None = None,
                 humans: HumanSource | None = None):
        super().__init__(telemetry, "generator")
        self.generator = generator
        self.space: MotionSpace = generator.model.space
        # expression and look-at commands, blended into every frame at its presentation time
        self.commands = commands or FaceCommands(self.space)
        # user_source hri: the user is chosen among ROS4HRI's humans (None: our own camera)
        self.humans = humans
        self.look_at_face = ""  # a face id the look-at follows (user_source hri)
        if humans is not None:
            humans.telemetry = self.telemetry
        self.inputs = {"user": AudioInput("user", user_format, self.telemetry),
                       "speech": AudioInput("speech", speech_format, self.telemetry)}
        self.inputs["user"].check_rate = True  # a microphone streams; a TTS bursts
        self._lock = threading.Lock()
        self._last_now: float | None = None
        self.restarts = 0

    def start(self, now: float, seed: int | None = None) -> None:
        with self._lock:
            self.generator.start(now, seed)
            self._last_now = now

    def on_info(self, side: str, msg) -> Skip | None:
        self._handle()
        with self._lock:
            return self.inputs[side].on_info(msg)

    def _follow_clock(self, now: float) -> None:
        """Under the lock: a clock that went back (a looped bag under sim time) restarts the
        stream at the new time, before anything is placed on the old one; so does a clock that
        starts (sim time reads 0 until the first /clock arrives)."""
        last = self._last_now
        if last is not None and (now < last - CLOCK_JUMP_BACK_S or (last == 0.0 and now > 0.0)):
            self.generator.start(now)
            self.commands.restart_clock(now)
            self.restarts += 1
            self.telemetry.set("restarts (clock jumped)", self.restarts)
            self._last_now = now
        else:
            self._last_now = now if last is None else max(last, now)

    def on_audio(self, side: str, msg, now: float) -> Skip | None:
        self._handle()
        with self._lock:
            self._follow_clock(now)
            samples = self.inputs[side].decode(msg, now)
            if isinstance(samples, Skip):
                return samples
            gen = self.generator
            push = gen.push_user_audio if side == "user" else gen.push_avatar_audio
            push(samples, now, audio_stamp(msg))
            dropped = gen.avatar_audio.dropped_samples + gen.user_audio.dropped_samples
        if dropped:
            self.telemetry.set("audio samples over buffer", dropped)
        return None

    def on_user_motion(self, msg, now: float) -> Skip | None:
        self._handle()
        try:
            values, confidence, n_bad = read_face_motion(msg, self.space)
        except ValueError as exc:
            return self._skip("user face motion", str(exc))
        if n_bad:  # used, with the bad values at neutral
            self.telemetry.drop("user face motion non-finite", f"{n_bad} values replaced")
        self.telemetry.tick("user face motion")
        with self._lock:
            self._follow_clock(now)
            self.generator.push_user_motion(values, confidence, now)
        return None

    def on_expression(self, msg, now: float) -> Skip | None:
        """An hri_msgs/Expression (by fields): the expression the face shows from ``now`` on."""
        self._handle()
        with self._lock:
            try:
                shown = self.commands.set_expression(msg.expression, msg.valence, msg.arousal, msg.confidence, now)
            except CommandError as exc:
                return self._skip(exc.reason, exc.detail)
        self.telemetry.set("expression", shown)
        return None

    def on_look_at(self, msg, now: float) -> Skip | None:
        """A geometry_msgs/PointStamped in the avatar's frame: where the face looks from ``now`` on."""
        self._handle()
        with self._lock:
            try:
                self.commands.set_look_at(msg.point.x, msg.point.y, msg.point.z, msg.header.frame_id, now)
            except CommandError as exc:
                return self._skip(exc.reason, exc.detail)
            shown = self.commands.look_at
        self.telemetry.set("look at", shown)
        return None

    # -- ROS4HRI humans (user_source hri) ----------------------------------------------------

    def on_tracked(self, kind: str, msg, now: float) -> tuple[list[str], list[str]]:
        """An hri_msgs/IdsList of faces, persons or voices: (ids to subscribe, ids to drop)."""
        self._handle()
        with self._lock:
            return self.humans.on_tracked(kind, list(msg.ids), now)

    def on_engagement(self, person_id: str, msg, now: float) -> None:
        self._handle()
        with self._lock:
            self.humans.on_engagement(person_id, msg.level, now)

    def on_person_match(self, person_id: str, kind: str, msg, now: float) -> None:
        """A person's face_id or voice_id (std_msgs/String)."""
        self._handle()
        with self._lock:
            if kind == "face":
                self.humans.on_person_face(person_id, msg.data, now)
            else:
                self.humans.on_person_voice(person_id, msg.data)

    def on_face_landmarks(self, face_id: str, msg, now: float) -> Skip | None:
        """One face's hri_msgs/FacialLandmarks: the user's face motion when it is the user's."""
        self._handle()
        with self._lock:
            try:
                choice = self.humans.on_landmarks(face_id, msg, now)
            except LandmarkError as exc:
                return self._skip("face landmarks", str(exc))
            if face_id == self.look_at_face and (d := self.humans.direction(face_id)) is not None:
                self.commands.look_towards(*d, now)
            if choice is None:
                return None  # another person's face: tracked for the choice, not the user
            self._follow_clock(now)
            self.generator.push_user_motion(choice.values, choice.confidence, now)
        self.telemetry.tick("user face motion")
        return None

    def on_look_at_face(self, msg, now: float) -> Skip | None:
        """A face id (std_msgs/String) to keep looking at, followed on its landmarks (user_source
        hri); an empty one lets the target go."""
        self._handle()
        face_id = msg.data.strip()
        if self.humans is None:
            return self._skip("look-at face without user_source hri", repr(face_id))
        with self._lock:
            self.look_at_face = face_id
            if not face_id:
                self.commands.release_look(now)
            elif (d := self.humans.direction(face_id)) is not None:
                self.commands.look_towards(*d, now)
        self.telemetry.set("look at face", face_id or "none")
        return None

    def on_voice_audio(self, voice_id: str, msg, now: float) -> Skip | None:
        """A voice's audio: the user's audio when it is the selected person's voice."""
        with self._lock:
            mine = self.humans.voice_selected(voice_id)
        if not mine:
            self._handle()
            self.telemetry.tick("other voices' audio")
            return None
        return self.on_audio("user", msg, now)

    def tick(self, now: float) -> list[GeneratedFrame]:
        """Make every block that is due at ``now``; the frames whose presentation time came,
        with the face commands blended in."""
        with self._lock:
            self._follow_clock(now)
            gen = self.generator
            made = gen.step(now)
            frames = gen.pop_due(now)
            for f in frames:
                f.values = self.commands.apply(f.values, f.presentation_time)
            if made:
                self.telemetry.latency(gen.stats.last_block_compute_s)
            self.telemetry.set("frames skipped (late)", gen.stats.skipped_frames)
            # audio that completed its block after the block was made: played on time, unseen by the model
            self.telemetry.set("late audio (ms)", f"{gen.stats.late_audio_samples * 1e3 / SAMPLE_RATE:.0f}")
            # silence left out to bring a stream back to its own time after a delivery stall
            self.telemetry.set("silence skipped to catch up (ms)",
                               f"{gen.stats.skipped_silence_samples * 1e3 / SAMPLE_RATE:.0f}")
            for side, lead in gen.audio_lead_s(now).items():  # queued beyond "now" adds latency
                self.telemetry.set(f"{side} audio queued ahead (ms)", f"{lead * 1e3:.0f}")
        for _ in frames:
            self.telemetry.tick("avatar face motion")
        return frames


class RendererStage(_Stage):
    """The avatar's face motion -> an RGB image."""

    def __init__(self, renderer, space: MotionSpace, telemetry: Telemetry | None = None):
        super().__init__(telemetry, "renderer")
        self.renderer = renderer
        self.space = space

    def read(self, msg) -> np.ndarray | Skip:
        """The motion values of a FaceMotion, or why it cannot be drawn."""
        self._handle()
        try:
            values, _, n_bad = read_face_motion(msg, self.space)
        except ValueError as exc:
            return self._skip("face motion", str(exc))
        if n_bad:
            self.telemetry.drop("face motion non-finite", f"{n_bad} values replaced")
        return values

    def render(self, values: np.ndarray) -> np.ndarray:
        rgb = self.renderer.render(values)
        self.telemetry.tick("avatar image")
        return rgb

    def close(self) -> None:
        if hasattr(self.renderer, "close"):
            self.renderer.close()
