"""The streaming runtime with the procedural model: timing, sync and idle behaviour."""
import numpy as np
import pytest

from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
from avatar_forcing_ros.generation.procedural import ProceduralMotionModel
from avatar_forcing_ros.core.runtime import StreamingGenerator

SR = 16000
JAW = M.index("jawOpen")


def speech_like(seconds, start, end, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    voiced = (t >= start) & (t < end)
    return (amp * np.sin(2 * np.pi * 180 * t) * voiced).astype(np.float32)


def run(gen, avatar=None, user=None, seconds=2.0, chunk=320, user_motion=None):
    gen.start(0.0)
    frames = []
    for k in range(int(seconds * SR) // chunk):
        now = (k + 1) * chunk / SR
        if avatar is not None:
            gen.push_avatar_audio(avatar[k * chunk:(k + 1) * chunk], now)
        if user is not None:
            gen.push_user_audio(user[k * chunk:(k + 1) * chunk], now)
        if user_motion is not None:
            gen.push_user_motion(*user_motion(now), now)
        gen.step(now)
        frames += gen.pop_due(now)
    return frames


def test_mouth_opens_while_the_avatar_speaks_and_closes_in_silence():
    frames = run(StreamingGenerator(ProceduralMotionModel()), avatar=speech_like(2.0, 0.6, 1.4))
    jaw = np.array([f.values[JAW] for f in frames])
    times = np.array([f.content_time for f in frames])
    assert jaw[(times > 0.8) & (times < 1.3)].min() > 0.4
    assert jaw[times < 0.5].max() < 0.05 and jaw[times > 1.8].max() < 0.05


def test_frames_come_at_the_frame_rate_with_increasing_presentation_times():
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2))
    frames = run(gen, seconds=2.0)
    idx = [f.index for f in frames]
    assert idx == list(range(len(idx)))
    assert len(frames) >= 2.0 * 25 - 4
    pt = np.array([f.presentation_time for f in frames])
    assert np.allclose(np.diff(pt), 1 / 25)
    assert all(f.presentation_time - f.content_time >= 2 / 25 for f in frames)


def test_republished_speech_is_the_input_speech_delayed_not_altered():
    speech = speech_like(2.0, 0.3, 1.5)
    frames = run(StreamingGenerator(ProceduralMotionModel()), avatar=speech)
    out = np.concatenate([f.speech for f in frames])
    # a chunk ends on the clock when it arrives: sample for sample where it was captured
    assert np.allclose(out, speech[:out.size], atol=1e-6)


def test_a_tts_burst_is_spread_over_real_time():
    gen = StreamingGenerator(ProceduralMotionModel())
    gen.start(0.0)
    gen.push_avatar_audio(speech_like(1.0, 0.0, 1.0), 0.0)  # whole utterance at once
    frames = []
    for k in range(1, 101):
        gen.step(k * 0.02)
        frames += gen.pop_due(k * 0.02)
    jaw = np.array([f.values[JAW] for f in frames])
    times = np.array([f.content_time for f in frames])
    assert jaw[(times > 0.2) & (times < 0.9)].min() > 0.4
    assert jaw[times > 1.3].max() < 0.05


def test_user_smile_is_mirrored_after_a_delay():
    smile = {n: 0.9 for n in ("mouthSmileLeft", "mouthSmileRight")}
    smiling = M.from_dict(smile)
    frames = run(StreamingGenerator(ProceduralMotionModel()), seconds=3.0,
                 user_motion=lambda t: (smiling if t > 1.0 else M.neutral(), 1.0))
    s = np.array([f.values[M.index("mouthSmileLeft")] for f in frames])
    t = np.array([f.content_time for f in frames])
    assert s[t < 1.0].max() < 0.05
    assert s[(t > 1.0) & (t < 1.3)].max() < 0.2  # not instantly
    assert s[t > 2.5].min() > 0.4


def test_listener_nods_after_the_user_stops_speaking():
    user = speech_like(4.0, 0.5, 2.0)
    heard = run(StreamingGenerator(ProceduralMotionModel(seed=3)), user=user, seconds=4.0)
    alone = run(StreamingGenerator(ProceduralMotionModel(seed=3)), seconds=4.0)
    nod = np.array([a.values[M.index("head_pitch")] - b.values[M.index("head_pitch")]
                    for a, b in zip(heard, alone)])
    t = np.array([f.content_time for f in heard])
    assert np.abs(nod[t < 2.0]).max() < 1e-6  # no reaction while the user speaks
    pause = nod[(t > 2.0) & (t < 3.0)]
    assert pause.min() < -0.08  # a downward nod in the pause...
    assert t[(t > 2.0)][np.argmin(pause)] > 2.2  # ...after a human-like delay


def test_no_input_gives_idle_motion_with_blinks_and_a_closed_mouth():
    frames = run(StreamingGenerator(ProceduralMotionModel(seed=1)), seconds=10.0)
    v = np.stack([f.values for f in frames])
    assert np.all(np.isfinite(v))
    assert v[:, JAW].max() < 0.05
    assert v[:, M.index("eyeBlinkLeft")].max() > 0.9
    assert v[:, M.index("head_yaw")].std() > 0.005


def test_a_stalled_process_skips_ahead_and_counts_skipped_frames():
    gen = StreamingGenerator(ProceduralMotionModel(), max_lag_s=1.0)
    gen.start(0.0)
    gen.step(0.1)
    gen.step(10.0)  # 10 s without a tick
    assert gen.stats.skipped_frames > 200
    assert gen.pending() <= gen._queue.maxlen


def test_same_seed_same_motion():
    user = speech_like(3.0, 0.5, 2.0)
    a = run(StreamingGenerator(ProceduralMotionModel(seed=7)), user=user, seconds=3.0)
    b = run(StreamingGenerator(ProceduralMotionModel(seed=7)), user=user, seconds=3.0)
    assert np.array_equal(np.stack([f.values for f in a]), np.stack([f.values for f in b]))


def _deliver(gen, chunks, arrivals, stamps):
    """Push avatar speech chunks at the given arrival times, generating as a node's tick would;
    returns the frames and the largest lead of queued audio over the present."""
    gen.start(0.0)
    frames, now, lead = [], 0.0, 0.0
    for chunk, arrival, stamp in zip(chunks, arrivals, stamps):
        while now + 0.01 <= arrival:  # ticks at 100 Hz up to the arrival
            now += 0.01
            gen.step(now)
            frames += gen.pop_due(now)
        gen.push_avatar_audio(chunk, arrival, stamp)
        lead = max(lead, gen.audio_lead_s(arrival)["speech"])
    return frames, lead


def test_stamped_audio_keeps_its_place_when_delivery_jitters():
    """Chunks that arrive up to 30 ms late (a busy executor, DDS under load) must not push later
    speech back: by arrival alone every late chunk queues the rest behind it and the largest
    delay so far becomes latency for good; with stamps each chunk lands where it was captured,
    and a block waits for its late chunk as long as its frames can still be presented on time."""
    speech = speech_like(4.0, 0.0, 4.0)
    chunks = np.split(speech, 200)
    captured = np.arange(1, 201) * 0.02  # each chunk exists once its last sample does
    arrivals = captured + np.random.default_rng(0).uniform(0.0, 0.03, 200)
    arrivals = np.maximum.accumulate(arrivals)  # one topic: in order
    sender = 1000.0 + captured - 0.02  # the sender stamps the first sample, on its own clock

    def generator():  # 2-frame blocks (80 ms) presented 140 ms on: up to ~50 ms to wait
        return StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.14)

    stamped, lead_stamped = _deliver(generator(), chunks, arrivals, sender)
    _, lead_arrival = _deliver(generator(), chunks, arrivals, [None] * 200)
    assert lead_arrival > 0.02  # the worst jitter so far stays queued ahead of the present
    assert lead_stamped < 0.002  # nothing queued beyond the chunk that just arrived
    out = np.concatenate([f.speech for f in stamped])
    # once the offset is learned, the speech plays as captured, late only by the least
    # transport delay seen (here < 1 ms)
    tail = out[-SR:]
    delays = [d for d in range(33) if np.allclose(tail, speech[out.size - SR - d:out.size - d], atol=1e-6)]
    assert delays, "the last second of speech is not the input, played whole"
    assert all(f.presentation_time - f.content_time == pytest.approx(0.14) for f in stamped)


def test_a_block_waits_for_its_last_chunk_but_not_past_its_deadline():
    gen = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.14)
    gen.start(0.0)
    gen.push_avatar_audio(np.zeros(1280, np.float32), 0.08)  # speech: the whole first block
    assert gen.step(0.085) == 0  # the user's audio for it has not arrived yet
    gen.push_user_audio(np.zeros(1280, np.float32), 0.09)
    assert gen.step(0.09) == 2  # all in: made at once
    assert gen.step(0.2) == 0  # second block (0.08-0.16 s), no audio: waits ...
    assert gen.step(0.215) == 2  # ... until its first frame (shown at 0.22 s) would be late
    # A fixed compute budget (replay: bag time stands still) moves the deadline by that much.
    fixed = StreamingGenerator(ProceduralMotionModel(block_frames=2), output_delay_s=0.14,
                               compute_budget_s=0.03)
    fixed.start(0.0)
    assert fixed.step(0.175) == 2  # the first block, long overdue
    assert fixed.step(0.178) == 0 and fixed.step(0.181) == 2  # the second: 0.08 + 0.14 - 0.04


def test_a_sender_clock_going_back_is_relearned():
    from avatar_forcing_ros.core.runtime import SourceClock

    clock = SourceClock()
    assert clock.place(100.02, 5.03) == pytest.approx((5.03, 0.0))
    assert clock.place(100.04, 5.04) == pytest.approx((5.04, 0.01))  # offset learned 10 ms smaller
    assert clock.place(100.06, 5.07) == pytest.approx((5.06, 0.0))  # 10 ms late: where captured
    assert clock.place(0.02, 5.08) == pytest.approx((5.08, 0.0))  # sender restarted its clock
    assert clock.place(0.04, 5.10) == pytest.approx((5.10, 0.0))
