"""The streaming runtime: input streams in, the avatar's motion frames out, on one clock.

Everything is laid on the generator's sample clock (16 kHz from ``start``). Inputs are placed
by arrival; stamped audio by its stamps mapped onto this clock through the smallest delay seen
(SourceClock), so a late or bursty delivery does not add latency, while a sender whose clock
differs from ours still lines up. Frame i covers samples [i*hop, (i+1)*hop). Blocks of B
frames are handed to the motion model as soon as their last sample has arrived (or at their
deadline, if some never does); a model with a look-ahead of L frames answers the conditions of
frames [s, s + B) with the motion of frames [s - L, s + B - L). Each frame is released at its
presentation time = content time + ``output_delay_s``, together with the avatar speech of its
span, so a node that republishes that speech keeps voice and face in sync. Speech is read when
its frame is presented, not when the frame is made: audio that completes a block after the
block's deadline still plays at its own time + ``output_delay_s`` (its motion is made without
it, counted in ``late_audio_samples``) instead of pushing all later speech back. Audio that
could not be placed at its own time (a delivery stall: its time was already presented) queues
behind what is there, so speech is never lost; the next silence catches the stream up to its
own time again (the part of a silent chunk whose time is already queued or presented is
left out, counted in ``skipped_silence_samples``; not in a burst whose chunks' times overlap,
a TTS handing over an utterance, which plays whole with its pauses).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE, AudioTimeline, LogMelFeatures
from .motion_model import BlockConditions, MotionModel


@dataclass
class GeneratedFrame:
    index: int
    content_time: float        # clock time the frame's inputs happened
    presentation_time: float   # clock time to show it (and play its speech)
    values: np.ndarray         # (D,) motion
    speech: np.ndarray         # (hop,) avatar speech samples of this frame, float32


@dataclass
class RuntimeStats:
    blocks: int = 0
    frames: int = 0
    skipped_frames: int = 0        # frames skipped because generation fell behind
    late_audio_samples: int = 0    # audio that came after its block was made: played on time, unseen by the motion
    dropped_output_frames: int = 0  # frames dropped because nobody took them in time
    skipped_silence_samples: int = 0  # queued-late silence left out so the stream caught up
    last_block_compute_s: float = 0.0
    compute_s: deque = field(default_factory=lambda: deque(maxlen=200))

    def compute_percentiles(self) -> tuple[float, float]:
        if not self.compute_s:
            return 0.0, 0.0
        a = np.asarray(self.compute_s)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95))


class UserMotionTrack:
    """Recent observations of the user's face; per frame, the newest one not after it."""

    def __init__(self, neutral: np.ndarray, timeout_s: float = 0.5, maxlen: int = 64):
        self.neutral = neutral.astype(np.float32)
        self.timeout_s = timeout_s
        self._obs: deque = deque(maxlen=maxlen)  # (time, values, confidence)

    def push(self, t: float, values: np.ndarray, confidence: float) -> None:
        if self._obs and t < self._obs[-1][0]:
            t = self._obs[-1][0]  # arrival order is the truth; never go back in time
        self._obs.append((t, values.astype(np.float32), float(confidence)))

    def at(self, t: float) -> tuple[np.ndarray, float]:
        for ot, values, conf in reversed(self._obs):
            if ot <= t:
                if t - ot > self.timeout_s:
                    break  # the stream stopped: treat the user as absent
                return values, conf
        return self.neutral, 0.0


class SourceClock:
    """Maps one sender's audio stamps onto the local clock.

    The offset is the smallest (arrival - stamp) among the last ``window`` chunks: the least
    delayed chunk is taken to have arrived the moment its last sample was captured. A chunk that
    was delayed (a busy executor, a stalled sender flushing its backlog) then still lands where
    it was captured instead of pushing all later audio back, and a sender whose clock is offset
    from ours is absorbed. Which end of its chunk a sender stamps drops out of the difference.
    """

    def __init__(self, window: int = 100, backwards_reset_s: float = 0.5):
        self._offsets: deque[float] = deque(maxlen=window)
        self._last_end: float | None = None
        self.last_own_end: float | None = None  # clock time the sender's last chunk was put at
        self.backwards_reset_s = backwards_reset_s

    def place(self, stamp_end: float, arrival: float) -> tuple[float, float]:
        """Clock time the chunk whose stamp (+ its duration) is ``stamp_end`` ends at, and how
        much earlier the offset estimate now puts the sender's clock than it did before."""
        if self._last_end is not None and stamp_end < self._last_end - self.backwards_reset_s:
            self._offsets.clear()  # the sender's clock went back (restart, looped bag): relearn
        before = min(self._offsets) if self._offsets else None
        self._last_end = stamp_end
        self._offsets.append(arrival - stamp_end)
        offset = min(self._offsets)
        return stamp_end + offset, max(before - offset, 0.0) if before is not None else 0.0


class StreamingGenerator:
    def __init__(self, model: MotionModel, output_delay_s: float | None = None,
                 user_motion_timeout_s: float = 0.5, audio_capacity_s: float = 30.0,
                 max_lag_s: float = 1.0, max_queued_frames: int | None = None,
                 schedule_margin_s: float = 0.01, compute_budget_s: float | None = None,
                 silence_level: float = 1e-3):
        self.model = model
        # peak |sample| at or below which a chunk is silence that may be left out to catch up
        self.silence_level = silence_level
        self.fps = model.fps
        self.block = model.block_frames
        self.lookahead = model.lookahead_frames
        self.features = LogMelFeatures(SAMPLE_RATE, self.fps)
        self.hop = self.features.hop
        # A frame can only be made once its whole block has arrived, and the L frames it looks
        # ahead: the delay must cover that.
        min_delay = (self.block + self.lookahead) / self.fps
        self.min_output_delay_s = min_delay
        self.output_delay_s = max(output_delay_s if output_delay_s is not None else min_delay + 0.02,
                                  min_delay)
        self.max_lag_frames = int(max_lag_s * self.fps)
        self.audio_capacity_s = audio_capacity_s
        self.avatar_audio = AudioTimeline(audio_capacity_s)
        self.user_audio = AudioTimeline(audio_capacity_s)
        self.user_motion = UserMotionTrack(model.space.neutral(), user_motion_timeout_s)
        self._avatar_clock, self._user_clock = SourceClock(), SourceClock()
        # time kept for computing a block before its deadline: None = the measured p95 (live);
        # a fixed figure where the clock stands still while computing (replay in bag time)
        self.schedule_margin_s, self.compute_budget_s = schedule_margin_s, compute_budget_s
        self._queue: deque[GeneratedFrame] = deque(
            maxlen=max_queued_frames or self.block + int(self.output_delay_s * self.fps) + 2 * self.block)
        self.stats = RuntimeStats()
        self._t0: float | None = None
        self._next_frame = 0

    # -- clock ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def start(self, now: float, seed: int | None = None) -> None:
        """Start (or restart) the stream at ``now``: empty inputs, a fresh model state."""
        self._t0 = now
        self._next_frame = 0
        self._avatar_clock, self._user_clock = SourceClock(), SourceClock()
        self.avatar_audio = AudioTimeline(self.audio_capacity_s)
        self.user_audio = AudioTimeline(self.audio_capacity_s)
        self.user_motion = UserMotionTrack(self.model.space.neutral(), self.user_motion.timeout_s)
        self._queue.clear()
        self.model.reset(seed)

    def sample_at(self, now: float) -> int:
        return int(round((now - self._t0) * SAMPLE_RATE))

    def frame_time(self, index: int) -> float:
        return self._t0 + index / self.fps

    # -- inputs -----------------------------------------------------------------------------

    def push_avatar_audio(self, samples: np.ndarray, now: float, stamp: float | None = None,
                          latency_s: float | None = None) -> None:
        """Robot speech that arrived at ``now``; ``stamp``: its sender's time of the chunk, if
        it has one (None or 0: placed by arrival). ``latency_s``: how much later than the chunk
        its samples are (a resampler's filter delay; default: what ``PcmDecoder`` output says),
        placed that much earlier, where they were captured."""
        self._push_audio(self.avatar_audio, self._avatar_clock, samples, now, stamp, latency_s)

    def push_user_audio(self, samples: np.ndarray, now: float, stamp: float | None = None,
                        latency_s: float | None = None) -> None:
        self._push_audio(self.user_audio, self._user_clock, samples, now, stamp, latency_s)

    def _push_audio(self, timeline: AudioTimeline, clock: SourceClock, samples: np.ndarray,
                    now: float, stamp: float | None, latency_s: float | None = None) -> None:
        if latency_s is None:
            latency_s = getattr(samples, "latency_s", 0.0)
        end_t, rewind = now, 0
        if stamp:
            end_t, correction = clock.place(stamp + samples.size / SAMPLE_RATE, now)
            # a better clock estimate moves the stream back to where it belongs; a burst whose
            # stamps overlap (a TTS handing over a whole utterance) still queues back to back
            rewind = int(round(correction * SAMPLE_RATE))
        now_s = self.sample_at(now)
        end = min(self.sample_at(end_t - max(latency_s, 0.0)), now_s)
        # A chunk whose own time follows the sender's previous one (a real-time stream, also
        # one delivered late) may have silence left out to catch up; overlapping own times are
        # more audio than time (a TTS handing over an utterance): played whole, pauses too.
        own_end_t = min(end_t - max(latency_s, 0.0), now)
        prev = clock.last_own_end
        follows = prev is None or own_end_t - samples.size / SAMPLE_RATE >= prev - 0.002
        clock.last_own_end = own_end_t
        own_start = end - samples.size
        if own_start < 0 and self._next_frame == 0:  # no block made yet
            # Audio from before the clock started (a replay starts it at the first message, which
            # is the end of a chunk): move the origin back so it sits at its own time instead of
            # pushing the whole stream one chunk later, as far as the first block can still be
            # made and presented on time.
            room = self._deadline(0) - now
            n = min(-own_start, max(int(room * SAMPLE_RATE), 0))
            if n > 0:
                self._t0 -= n / SAMPLE_RATE
                self.avatar_audio.shift(n)
                self.user_audio.shift(n)
                now_s, end, own_start = now_s + n, end + n, own_start + n
        made = self._next_frame * self.hop  # first sample not yet turned into frames
        # Samples whose frames are made but not yet presented still play at their own time (a
        # frame's speech is read when it is presented): a chunk that completes a block after
        # the block's deadline must not push all later speech back. A chunk that would start
        # in audio already presented (a burst, a sender far behind) is queued where frames can
        # still be made from it, so the face moves with it.
        shown = self._first_unpresented(now) * self.hop
        earliest = shown if own_start >= shown else made
        if follows and _is_silent(samples, self.silence_level):
            # Silence of a real-time stream is never queued later than its own time: the part
            # of it whose time is already queued (a delivery stall pushed the stream back) or
            # already presented is left out, so the stream catches up instead of delaying all
            # later speech for good.
            keep = end - max(timeline.write_head - rewind, earliest, own_start)
            if keep < samples.size:
                self.stats.skipped_silence_samples += samples.size - max(keep, 0)
                if keep <= 0:
                    return
                samples = samples[samples.size - keep:]
        start = timeline.push(samples, now_s, earliest=earliest, end_sample=end, rewind=rewind)
        if start < made:
            self.stats.late_audio_samples += min(made - start, samples.size)

    def _deadline(self, start: int) -> float:
        """The latest clock time a block starting at frame ``start`` can be made and still be
        presented on time: keeps the compute budget (None: the measured p95) and a margin."""
        budget = self.compute_budget_s
        if budget is None:
            _, budget = self.stats.compute_percentiles()
        return self.frame_time(start - self.lookahead) + self.output_delay_s - budget - self.schedule_margin_s

    def _first_unpresented(self, now: float) -> int:
        """Index of the first frame whose presentation time is still to come at ``now``."""
        due = int(np.floor(round((now - self.output_delay_s - self._t0) * self.fps, 9))) + 1
        return min(max(due, 0), max(self._next_frame - self.lookahead, 0))

    def push_user_motion(self, values: np.ndarray, confidence: float, now: float) -> None:
        self.user_motion.push(now, values, confidence)

    def audio_lead_s(self, now: float) -> dict[str, float]:
        """How far each audio stream is queued beyond ``now`` (s): a real-time source keeps this
        near zero; more is latency every frame made from it pays."""
        at = self.sample_at(now)
        return {name: max(tl.write_head - at, 0) / SAMPLE_RATE
                for name, tl in (("speech", self.avatar_audio), ("user", self.user_audio))}

    # -- generation -------------------------------------------------------------------------

    def step(self, now: float) -> int:
        """Generate every block whose inputs are complete at ``now``; returns frames made."""
        made = 0
        now_frame = self.sample_at(now) // self.hop
        if now_frame - self._next_frame > self.max_lag_frames:
            # Fell behind (e.g. the process stalled): jump to the present rather than replay
            # stale input at high speed; count what was skipped.
            skip = (now_frame - self._next_frame) // self.block * self.block - self.block
            self.stats.skipped_frames += skip
            self._next_frame += skip
        while (self._next_frame + self.block) <= now_frame and self._block_due(self._next_frame, now):
            made += self._generate_block(self._next_frame)
            self._next_frame += self.block
        return made

    def _block_due(self, start: int, now: float) -> bool:
        """A block whose time has passed is made once its audio has arrived, or at the latest
        moment that still presents its first frame on time. Made at the clock alone, the chunk
        that completes it (always a little behind the clock) would miss it and, played in the
        next block instead, push all later speech back."""
        end = (start + self.block) * self.hop
        if self.avatar_audio.write_head >= end and self.user_audio.write_head >= end:
            return True
        return now >= self._deadline(start)

    def _generate_block(self, start: int) -> int:
        b, hop, ctx = self.block, self.hop, self.features.context
        s0, s1 = start * hop, (start + b) * hop
        avatar = _with_tail_held(self.avatar_audio, s0 - ctx, s1)
        user = _with_tail_held(self.user_audio, s0 - ctx, s1)
        motion, present = zip(*(self.user_motion.at(self.frame_time(start + k)) for k in range(b)))
        cond = BlockConditions(
            start_frame=start,
            avatar_audio=self.features.frames(avatar[ctx:], avatar[:ctx]),
            user_audio=self.features.frames(user[ctx:], user[:ctx]),
            user_motion=np.stack(motion),
            user_present=np.asarray(present, dtype=np.float32),
            avatar_wave=avatar[ctx:], user_wave=user[ctx:])
        t = time.perf_counter()
        values = self.model.next_block(cond)
        dt = time.perf_counter() - t
        self.stats.compute_s.append(dt)
        self.stats.last_block_compute_s = dt
        self.stats.blocks += 1
        values, _ = zip(*(self.model.space.sanitize(v) for v in values))
        made = 0
        for k in range(b):
            index = start + k - self.lookahead  # the frame this motion belongs to
            if index < 0:
                continue  # a look-ahead model's first answers are for frames before the start
            if len(self._queue) == self._queue.maxlen:
                self.stats.dropped_output_frames += 1
            ct = self.frame_time(index)
            # speech is filled in when presented: audio that arrives meanwhile still plays
            self._queue.append(GeneratedFrame(
                index, ct, ct + self.output_delay_s, values[k], np.zeros(0, np.float32)))
            made += 1
        self.stats.frames += made
        return made

    def pop_due(self, now: float) -> list[GeneratedFrame]:
        """Frames whose presentation time has come, oldest first."""
        out = []
        while self._queue and self._queue[0].presentation_time <= now:
            f = self._queue.popleft()
            f.speech = self.avatar_audio.read(f.index * self.hop, (f.index + 1) * self.hop)
            out.append(f)
        return out

    def pending(self) -> int:
        return len(self._queue)


def _is_silent(x: np.ndarray, level: float) -> bool:
    return x.size == 0 or float(np.max(np.abs(x))) <= level


def _with_tail_held(timeline: AudioTimeline, start: int, end: int) -> np.ndarray:
    """Samples [start, end) for features. A block made at its deadline before the chunk that
    completes it has arrived (it will still play in its place) gets the stream's last samples
    repeated over the missing tail, up to one chunk: the features go on as the sound did, where
    silence would close the mouth for a moment at every block the stream is late for. (A sender
    that stops sending mid-block gets at most one chunk of its last sound held.)"""
    x = timeline.read(start, end)
    have = timeline.write_head - start
    if 0 < have < x.size:
        n = min(x.size - have, timeline.last_chunk)
        x[have:have + n] = np.resize(x[:have][-min(have, n):], n)
    return x


def generate_offline(gen: StreamingGenerator, avatar_audio: np.ndarray, user_audio: np.ndarray,
                     user_motion=None, chunk: int = 320) -> list[GeneratedFrame]:
    """Drive the streaming generator on a simulated clock, exactly as a live node would:
    audio arrives in ``chunk``-sample pieces, the user's face once a frame.

    ``user_motion(t) -> (values, confidence)`` or None for an absent user. Runs until every
    input sample has been turned into frames and the last frame has been presented.
    """
    n = max(avatar_audio.size, user_audio.size)
    avatar_audio = np.pad(avatar_audio, (0, n - avatar_audio.size))
    user_audio = np.pad(user_audio, (0, n - user_audio.size))
    gen.start(0.0)
    frames: list[GeneratedFrame] = []
    next_face = 0.0
    end = n / SAMPLE_RATE + gen.output_delay_s + 2 * gen.block / gen.fps
    k = 0
    while True:
        now = (k + 1) * chunk / SAMPLE_RATE
        if now > end:
            break
        s = slice(k * chunk, (k + 1) * chunk)
        if s.start < n:
            gen.push_avatar_audio(avatar_audio[s], now)
            gen.push_user_audio(user_audio[s], now)
        if user_motion is not None and now >= next_face:
            values, conf = user_motion(now)
            gen.push_user_motion(values, conf, now)
            next_face += 1.0 / gen.fps
        gen.step(now)
        frames += gen.pop_due(now)
        k += 1
    return frames
