"""Speech is presented exactly ``output_delay_s`` after it was captured: in the runtime, whatever
the chunk size and its phase against the generator's blocks, and through a replayed bag."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from avatar_forcing_ros.core.audio import SAMPLE_RATE as SR
from avatar_forcing_ros.core.audio import AudioFormat, PcmDecoder, encode_s16le
from avatar_forcing_ros.core.runtime import StreamingGenerator
from avatar_forcing_ros.generation.procedural import ProceduralMotionModel

SENDER = 5000.0  # the sender's clock runs this far ahead of the generator's


def speech(seconds=1.6, lead_s=0.3):
    """A voiced signal that changes all the time (a lag of one pitch period would not fit)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 + 40 * np.sin(2 * np.pi * 1.3 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / SR) * (0.6 + 0.4 * np.sin(2 * np.pi * 3.1 * t))
    x[t < lead_s] = 0.0
    return x.astype(np.float32)


def presented_delay(out, t_out0, x, t_in0):
    """Delay (s) at which ``out`` (first sample presented at t_out0) best matches ``x`` (first
    sample captured at t_in0), by cross-correlation; and the matched output."""
    c = correlate(out, x, mode="full", method="fft")
    lag = int(np.argmax(c)) - (x.size - 1)
    return t_out0 + lag / SR - t_in0, lag


def run_stream(gen, x, chunk_s, phase_s, mic=True, stamped=True, t_end=None):
    """Speech in ``chunk_s`` chunks captured from ``phase_s`` on (clock time), each arriving the
    moment its last sample is captured; a microphone in 20 ms chunks from 0; ticks at 100 Hz."""
    n = int(round(chunk_s * SR))
    x = np.pad(x, (0, -x.size % n))
    events = [((k + 1) * n / SR + phase_s, "speech", k) for k in range(x.size // n)]
    t_end = t_end or events[-1][0] + 0.5
    if mic:
        events += [((k + 1) * 0.02, "mic", k) for k in range(int(t_end / 0.02))]
    events += [(k * 0.01, "tick", k) for k in range(1, int(t_end / 0.01))]
    order = {"tick": 0, "mic": 1, "speech": 2}  # a tick at the same instant runs first
    frames = []
    gen.start(0.0)
    for t, kind, k in sorted(events, key=lambda e: (round(e[0], 9), order[e[1]])):
        if kind == "tick":
            gen.step(t)
            frames += gen.pop_due(t)
        elif kind == "mic":
            gen.push_user_audio(np.zeros(320, np.float32), t, SENDER + t - 0.02 if stamped else None)
        else:
            stamp = SENDER + t - chunk_s if stamped else None
            gen.push_avatar_audio(x[k * n:(k + 1) * n], t, stamp)
    return frames, x


@pytest.mark.parametrize("stamped", [True, False])
@pytest.mark.parametrize("delay", [0.1, 0.14])
@pytest.mark.parametrize("chunk_s", [0.02, 0.04])
def test_speech_is_presented_exactly_output_delay_after_capture(chunk_s, delay, stamped):
    x = speech()
    for phase in (0.0, 0.005, 0.055, 0.07):
        gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=delay)
        frames, xp = run_stream(gen, x, chunk_s, phase, stamped=stamped)
        out = np.concatenate([f.speech for f in frames])
        d, lag = presented_delay(out, frames[0].presentation_time - frames[0].content_time + gen.frame_time(0),
                                 xp, phase)
        assert d == pytest.approx(delay, abs=0.005), f"phase {phase}: presented {d * 1e3:.1f} ms"
        # every sample of the speech is played, unchanged
        np.testing.assert_array_equal(out[lag:lag + xp.size], xp)


def test_a_chunk_that_completes_a_block_after_its_deadline_plays_in_its_place():
    """40 ms chunks ending 30 ms after a block ends, with 10 ms of slack: the block is made
    before its last chunk is in. That chunk's samples still play at their own time (counted as
    late for the motion) instead of pushing every later chunk 30 ms back."""
    x = speech()
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    frames, xp = run_stream(gen, x, 0.04, 0.05)
    assert gen.stats.late_audio_samples > 0  # the situation did happen
    out = np.concatenate([f.speech for f in frames])
    d, _ = presented_delay(out, gen.frame_time(0) + 0.1, xp, 0.05)
    assert d == pytest.approx(0.1, abs=1e-9)


def test_audio_from_before_the_clock_started_keeps_its_time():
    """A replay starts the clock at its first message: the end of the first chunk."""
    x = speech(lead_s=0.0)
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    gen.start(0.04)
    frames = []
    for k in range(x.size // 640):
        t = 0.04 * (k + 1)
        gen.step(t)
        frames += gen.pop_due(t)
        gen.push_avatar_audio(x[k * 640:(k + 1) * 640], t, SENDER + t - 0.04)
    for k in range(1, 30):
        gen.step(t + 0.01 * k)
        frames += gen.pop_due(t + 0.01 * k)
    assert frames[0].content_time == pytest.approx(0.0)  # the origin moved back to the capture
    out = np.concatenate([f.speech for f in frames])
    np.testing.assert_array_equal(out[:x.size - 640], x[:x.size - 640])


def run_burst(gen, push, ticks, at=50):
    """Tick ``gen`` every 10 ms; ``push(t)`` hands a TTS burst over at tick ``at``. The speech
    presented."""
    frames = []
    for k in range(1, ticks):
        t = 0.01 * k
        if k == at:
            push(t)
        gen.step(t)
        frames += gen.pop_due(t)
    return np.concatenate([f.speech for f in frames])


def test_a_tts_burst_is_still_laid_where_its_frames_are_made():
    """A whole utterance at once cannot play at its own time: it queues after the frames already
    made, so the mouth moves with all of it (and none of it is counted as late)."""
    x = speech(seconds=1.0, lead_s=0.0)
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    gen.start(0.0)
    out = run_burst(gen, lambda t: gen.push_avatar_audio(x, t), ticks=200)
    assert gen.stats.late_audio_samples == 0
    start = int(np.flatnonzero(out)[0])
    assert start >= 0.48 * SR  # from the first frame still to be made, not from the past
    np.testing.assert_array_equal(out[start:start + x.size][:x.size], x[:out.size - start])


def test_resampled_speech_is_placed_where_it_was_captured():
    """44.1 kHz speech through the stream resampler: its filter delay (~3 ms) is taken off."""
    rate = 44100
    t = np.arange(int(1.6 * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 1.3 * t)
    x = (0.3 * np.sin(2 * np.pi * np.cumsum(f0) / rate) * (t >= 0.3)).astype(np.float32)
    dec = PcmDecoder(AudioFormat(rate, 1, "S16LE"))
    assert dec.latency_s > 0.002
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    gen.start(0.0)
    frames, n = [], 882
    for k in range(x.size // n):
        t_arr = (k + 1) * 0.02
        gen.step(t_arr)
        frames += gen.pop_due(t_arr)
        gen.push_avatar_audio(dec.decode(encode_s16le(x[k * n:(k + 1) * n])), t_arr, SENDER + k * 0.02)
    for k in range(1, 30):
        gen.step(t_arr + 0.01 * k)
        frames += gen.pop_due(t_arr + 0.01 * k)
    out = np.concatenate([f.speech for f in frames])
    ref = PcmDecoder(AudioFormat(rate, 1, "S16LE")).decode(encode_s16le(x))  # same samples, one piece
    d, _ = presented_delay(out, gen.frame_time(0) + 0.1, ref, 0.0)
    assert d == pytest.approx(0.1, abs=1 / SR)


def test_the_origin_moves_back_only_as_far_as_frames_stay_on_time():
    """Audio from before the start that arrives once the clock has run a while may move the
    origin back only so far that the first block can still be presented on time."""
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    gen.start(0.0)
    gen.step(0.07)
    gen.push_avatar_audio(speech(seconds=0.2, lead_s=0.0), 0.07)  # 200 ms, ends on arrival
    assert gen.frame_time(0) + gen.output_delay_s >= 0.07 + gen.schedule_margin_s - 1e-9
    assert gen.frame_time(0) < 0.0  # it did move back, as far as that allows
    late = []
    for k in range(8, 60):
        t = 0.01 * k
        gen.step(t)
        late += [t - f.presentation_time for f in gen.pop_due(t)]
    assert max(late) < 0.01  # every frame popped at the first tick after its presentation time


def test_the_mouth_moves_as_much_when_blocks_are_made_before_their_last_chunk():
    """Blocks made at their deadline before the chunk that completes them arrives (40 ms chunks
    30 ms out of phase, every block) see the stream's last sound held over the missing tail:
    the mouth follows the speech as when every chunk is in time, instead of closing at every
    block edge."""
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M

    jaw = M.index("jawOpen")
    x = speech(seconds=2.0)

    def mouth(chunk_s, phase):
        gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1, compute_budget_s=0.0)
        frames, _ = run_stream(gen, x, chunk_s, phase)
        t = np.array([f.content_time for f in frames]) - phase
        return t, np.array([f.values[jaw] for f in frames]), gen.stats.late_audio_samples

    t_ref, j_ref, late_ref = mouth(0.005, 0.0)
    t, j, late = mouth(0.04, 0.05)
    assert late_ref == 0 and late > 0.2 * x.size  # a quarter of every block came after it was made
    voiced = (t > 0.4) & (t < 1.9)
    ref = np.interp(t, t_ref, j_ref)
    assert j[voiced].mean() > 0.9 * ref[voiced].mean() > 0.2
    assert np.abs(j - ref)[voiced].mean() < 0.06


def run_with_stall(gen, x, stall, chunk_s=0.02):
    """Stamped speech chunks (sender on another clock) delivered the moment their last sample
    is captured, except those captured in ``stall`` = (t0, t1): held back and all delivered at
    t1 (a busy executor). Microphone silence in 20 ms chunks, stalled alike; ticks at 100 Hz."""
    n = int(round(chunk_s * SR))
    x = np.pad(x, (0, -x.size % n))
    t_end = x.size / SR + 0.5

    def arrival(t):
        return stall[1] if stall[0] < t < stall[1] else t
    events = [(arrival((k + 1) * n / SR), 2, (k + 1) * n / SR, "speech", k) for k in range(x.size // n)]
    events += [(arrival((k + 1) * 0.02), 1, (k + 1) * 0.02, "mic", k) for k in range(int(t_end / 0.02))]
    events += [(k * 0.01, 0, k * 0.01, "tick", k) for k in range(1, int(t_end / 0.01))]
    frames = []
    gen.start(0.0)
    for t, _, captured, kind, k in sorted(events, key=lambda e: (round(e[0], 9), e[1], e[2])):
        if kind == "tick":
            gen.step(t)
            frames += gen.pop_due(t)
        elif kind == "mic":
            gen.push_user_audio(np.zeros(320, np.float32), t, SENDER + captured - 0.02)
        else:
            gen.push_avatar_audio(x[k * n:(k + 1) * n], t, SENDER + captured - chunk_s)
    out = np.concatenate([f.speech for f in frames])
    t_out0 = frames[0].presentation_time - frames[0].content_time + gen.frame_time(0)
    return out, t_out0, x


@pytest.mark.parametrize("stall_end", [0.35, 0.6])
def test_a_delivery_stall_in_silence_does_not_delay_later_speech(stall_end):
    """Chunks captured in 0.1 s - ``stall_end`` (silence) all arrive at its end: their time was
    already presented. Silence is not queued behind it (0.6: the stall ends just as the speech
    starts), or the silence after it catches the stream up: the speech (from 0.6 s) is
    presented output_delay_s after capture, every sample of it. (Queued behind for good, as
    before the catch-up, it came out a stall late: the all-in-one process's start-up stall
    under a CPU hog put every utterance of the benchmark 200 ms late.)"""
    x = speech(seconds=1.6, lead_s=0.6)
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    out, t_out0, xp = run_with_stall(gen, x, (0.1, stall_end))
    first = int(np.argmax(np.abs(xp) > 0))
    d, lag = presented_delay(out, t_out0, xp[first:], first / SR)
    assert d == pytest.approx(0.1, abs=0.005)
    np.testing.assert_array_equal(out[lag:lag + xp.size - first], xp[first:])
    assert gen.stats.skipped_silence_samples > 0
    # the same stall with catch-up off (nothing counts as silence): the speech stays late
    stuck = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1, silence_level=-1.0)
    out, t_out0, xp = run_with_stall(stuck, x, (0.1, stall_end))
    d_stuck, _ = presented_delay(out, t_out0, xp[first:], first / SR)
    assert d_stuck > 0.25
    assert stuck.stats.skipped_silence_samples == 0


def test_a_stall_during_speech_loses_none_of_it_and_the_next_utterance_is_on_time():
    """A stall in the middle of an utterance: its speech plays late but whole (never dropped, it
    is not silence); the pause after it catches up, so the next utterance is on time again."""
    a, b = speech(seconds=1.0, lead_s=0.3), speech(seconds=1.2, lead_s=0.5)
    x = np.concatenate([a, b])
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    out, t_out0, xp = run_with_stall(gen, x, (0.5, 0.7))
    voiced = out[np.abs(out) > 0]
    np.testing.assert_array_equal(voiced, xp[np.abs(xp) > 0])  # every voiced sample, in order
    second = a.size + int(np.argmax(np.abs(b) > 0))
    d, _ = presented_delay(out, t_out0, xp[second:], second / SR)
    assert d == pytest.approx(0.1, abs=0.005)
    assert gen.stats.skipped_silence_samples > 0


@pytest.mark.parametrize("stamped", [True, False])
def test_a_tts_burst_keeps_its_pauses(stamped):
    """A TTS hands over a whole utterance at once, in 20 ms chunks stamped alike (or not at all),
    with a 200 ms pause of digital silence between two phrases: it plays whole, pause included
    (the catch-up leaves out silence only where the chunks' own times follow each other, a
    stall, never the overlapping times of a burst)."""
    x = np.concatenate([speech(0.5, 0.0), np.zeros(int(0.2 * SR), np.float32), speech(0.5, 0.0)])
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.1)
    gen.start(0.0)

    def burst(t):
        for c in range(x.size // 320):
            gen.push_avatar_audio(x[c * 320:(c + 1) * 320], t, 1000.0 + t if stamped else None)

    out = run_burst(gen, burst, ticks=250)
    start = int(np.flatnonzero(out)[0])
    np.testing.assert_array_equal(out[start:start + x.size], x)
    assert gen.stats.skipped_silence_samples == 0
