"""Streaming audio input: the resampler carried across chunks, and the timeline after long gaps."""
import tracemalloc

import numpy as np
import pytest

from avatar_forcing_ros.core.audio import (SAMPLE_RATE, AudioFormat, AudioTimeline, DecodedAudio, PcmDecoder,
                                           StreamResampler)

TONES = ((0.3, 300.0, 0.0), (0.2, 1234.0, 1.0), (0.1, 2900.0, 2.0))  # inside every rate's band


def signal(t):
    return sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in TONES)


def s16(x, channels=1):
    return (np.repeat(np.clip(x, -1, 1)[:, None], channels, axis=1) * 32767).round().astype("<i2").tobytes()


def decode_in_chunks(rate, seconds=1.0, chunk_s=0.02, channels=1):
    x = signal(np.arange(int(seconds * rate)) / rate)
    data = s16(x, channels)
    step = int(chunk_s * rate) * 2 * channels
    dec = PcmDecoder(AudioFormat(rate, channels, "S16LE"))
    parts = [dec.decode(data[k:k + step]) for k in range(0, len(data), step)]
    return dec, parts, data


@pytest.mark.parametrize("rate", [44101, 95999, 8000, 383999])
def test_chunked_decoding_is_the_whole_signal_resampled(rate):
    dec, parts, data = decode_in_chunks(rate)
    y = np.concatenate(parts)
    # the same stream decoded in one piece: the filter state carried across 50 chunks changes nothing
    whole = PcmDecoder(AudioFormat(rate, 1, "S16LE")).decode(data)
    assert abs(y.size - whole.size) <= 1
    n = min(y.size, whole.size)
    np.testing.assert_allclose(y[:n], whole[:n], atol=1e-5)
    # and it is the signal at 16 kHz, sample for sample (after a 10 ms start-up transient): the
    # filter's delay shows only as the last latency_s still held back, not as a shift
    ref = signal(np.arange(y.size) / SAMPLE_RATE)
    err = np.abs(y - ref)[int(0.01 * SAMPLE_RATE):]
    assert err.max() < 2e-3, f"max error {err.max():.2e}"
    assert abs(y.size - (1.0 - dec.latency_s) * SAMPLE_RATE) <= 1


def test_no_step_at_chunk_boundaries_even_for_odd_chunk_sizes():
    rate = 44101
    x = signal(np.arange(rate) / rate)
    data = s16(x)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, len(data) // 2), 60, replace=False)) * 2
    dec = PcmDecoder(AudioFormat(rate, 1, "S16LE"))
    parts = [dec.decode(data[a:b]) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(data)])]
    y = np.concatenate(parts)
    bounds = np.cumsum([p.size for p in parts])[:-1]
    bounds = bounds[(bounds > 160) & (bounds < y.size - 2)]
    ref = signal(np.arange(y.size) / SAMPLE_RATE)
    around = np.concatenate([bounds - 1, bounds, bounds + 1])
    assert np.abs(y - ref)[around].max() < 2e-3  # what a restarted filter would get wrong


def test_chunks_come_out_as_long_as_they_are_with_no_drift():
    """A chunk's sample count is what its stamp and length are placed by: over a minute of 20 ms
    chunks at 44101 Hz (not a whole number of samples at 16 kHz) the count never drifts."""
    rate = 44101
    dec = PcmDecoder(AudioFormat(rate, 1, "S16LE"))
    chunk = bytes(2 * 882)  # 882 frames: 19.9995 ms
    total_in, total_out, sizes = 0, 0, set()
    for k in range(3000):
        total_out += dec.decode(chunk).size
        total_in += 882
        if k:
            sizes.add(int(round(total_in * SAMPLE_RATE / rate - dec.latency_s * SAMPLE_RATE)) - total_out)
    assert sizes <= {-1, 0, 1}


def test_odd_byte_counts_are_carried_across_resampled_chunks():
    rate = 95999
    x = signal(np.arange(rate // 5) / rate)
    data = s16(x, channels=2)
    a = PcmDecoder(AudioFormat(rate, 2, "S16LE"))
    odd = [a.decode(data[k:k + 1001]) for k in range(0, len(data), 1001)]  # splits samples and frames
    assert a.pending_bytes == 0
    b = PcmDecoder(AudioFormat(rate, 2, "S16LE"))
    aligned = [b.decode(data[k:k + 1000]) for k in range(0, len(data), 1000)]
    np.testing.assert_allclose(np.concatenate(odd), np.concatenate(aligned), atol=1e-6)


def test_a_format_change_starts_a_fresh_stream():
    dec, _, _ = decode_in_chunks(44101, seconds=0.2)
    held = dec.latency_s
    other = s16(signal(np.arange(9600) / 48000), channels=2)
    dec.set_format(AudioFormat(48000, 2, "S16LE"))
    after = np.concatenate([dec.decode(other[k:k + 3840]) for k in range(0, len(other), 3840)])
    fresh = PcmDecoder(AudioFormat(48000, 2, "S16LE"))
    expected = np.concatenate([fresh.decode(other[k:k + 3840]) for k in range(0, len(other), 3840)])
    np.testing.assert_array_equal(after, expected)  # nothing of the 44101 Hz stream leaks in
    assert dec.discarded_samples == int(round(held * SAMPLE_RATE))  # the old filter's tail, counted
    dec.set_format(AudioFormat(SAMPLE_RATE, 1, "S16LE"))  # back to 16 kHz: passed through as is
    x = signal(np.arange(320) / SAMPLE_RATE)
    assert dec.latency_s == 0.0
    np.testing.assert_allclose(dec.decode(s16(x)), x, atol=1e-4)


def test_decoded_chunks_carry_the_decoders_delay():
    dec, parts, _ = decode_in_chunks(22050, seconds=0.1)
    assert isinstance(parts[-1], DecodedAudio)
    assert parts[-1].latency_s == dec.latency_s == StreamResampler(22050).latency_s
    assert 0.001 < dec.latency_s < 0.005
    assert parts[-1][:10].latency_s == dec.latency_s  # survives slicing
    assert PcmDecoder().decode(bytes(640)).latency_s == 0.0


def test_a_push_after_an_idle_hour_costs_a_chunk_not_the_gap():
    tl = AudioTimeline(capacity_s=30.0)
    before = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    tl.push(before, now_sample=16000)
    np.testing.assert_array_equal(tl.read(0, 16000), before)
    gap_end = 16000 + 60 * 60 * SAMPLE_RATE
    chunk = np.full(320, 0.25, np.float32)
    tracemalloc.start()
    start = tl.push(chunk, now_sample=gap_end + 320)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20, f"push after an hour's gap allocated {peak / 2**20:.1f} MiB at peak"
    assert start == gap_end and tl.write_head == gap_end + 320
    np.testing.assert_array_equal(tl.read(gap_end, gap_end + 320), chunk)
    # the hour before it is silence, whatever the ring held; what fell out of the ring too
    assert not tl.read(gap_end - tl.capacity, gap_end).any()
    assert not tl.read(0, 16000).any()


def test_a_gap_shorter_than_the_ring_clears_only_the_gap():
    tl = AudioTimeline(capacity_s=1.0)
    for k in range(3):  # 3 s of ones through a 1 s ring: every position holds stale samples
        tl.push(np.ones(SAMPLE_RATE, np.float32), now_sample=(k + 1) * SAMPLE_RATE)
    tl.push(np.full(100, 2.0, np.float32), now_sample=3 * SAMPLE_RATE + 5000)  # 4900-sample gap
    out = tl.read(3 * SAMPLE_RATE - 11000, 3 * SAMPLE_RATE + 5000)
    assert np.all(out[:11000] == 1.0)  # the last queued audio is still there
    assert not out[11000:15900].any()  # the gap reads as silence, not as what the ring held
    assert np.all(out[15900:] == 2.0)
