"""Audio decoding, the timeline buffer and frame-rate features."""
import numpy as np
import pytest

from avatar_forcing_ros.core.audio import (SAMPLE_RATE, AudioFormat, AudioFormatError, AudioTimeline,
                                      LogMelFeatures, PcmDecoder, encode_s16le)


def tone(seconds, rate=SAMPLE_RATE, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_s16le_round_trip_keeps_the_signal():
    x = tone(0.1)
    y = PcmDecoder().decode(encode_s16le(x))
    assert np.max(np.abs(x - y)) < 1e-3


def test_odd_byte_counts_are_carried_not_misaligned():
    x = tone(0.05)
    data = encode_s16le(x)
    dec = PcmDecoder()
    parts = [dec.decode(data[:101]), dec.decode(data[101:202]), dec.decode(data[202:])]
    assert dec.pending_bytes == 0
    assert np.allclose(np.concatenate(parts), PcmDecoder().decode(data))


def test_other_rates_and_channels_are_resampled_to_16k_mono():
    x = tone(0.5, rate=48000)
    stereo = np.stack([x, x], axis=1).reshape(-1)
    dec = PcmDecoder(AudioFormat(48000, 2, "S16LE"))
    y = dec.decode(encode_s16le(stereo))
    # the stream's last few ms stay in the resampler's filter until the next chunk pushes them out
    assert 0 < dec.latency_s < 0.005
    assert abs(y.size - (0.5 - dec.latency_s) * SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / y.size - 440) < 5


def test_float_samples_that_are_not_finite_are_zeroed_and_counted():
    x = np.array([0.1, np.nan, np.inf, -0.2], dtype="<f4")
    dec = PcmDecoder(AudioFormat(SAMPLE_RATE, 1, "F32LE"))
    y = dec.decode(x.tobytes())
    assert np.all(np.isfinite(y)) and dec.nonfinite_samples == 2


@pytest.mark.parametrize("fmt", [AudioFormat(16000, 1, "MP3"), AudioFormat(10, 1, "S16LE"),
                                 AudioFormat(16000, 0, "S16LE")])
def test_undecodable_formats_are_a_clear_error(fmt):
    with pytest.raises(AudioFormatError):
        PcmDecoder(fmt)


def test_timeline_lays_a_chunk_to_end_on_arrival_and_a_burst_back_to_back():
    tl = AudioTimeline(capacity_s=4.0)
    a, b = np.ones(100, np.float32), 2 * np.ones(100, np.float32)
    assert tl.push(a, now_sample=1100) == 1000  # a captured chunk ends when it arrives
    assert tl.push(b, now_sample=1110) == 1100  # queued after the first chunk, not overlapping
    out = tl.read(990, 1210)
    assert np.all(out[:10] == 0) and np.all(out[10:110] == 1) and np.all(out[110:210] == 2)
    assert np.all(out[210:] == 0)


def test_timeline_never_lays_audio_before_earliest_or_after_arrival():
    tl = AudioTimeline(capacity_s=4.0)
    # a whole utterance at once starts at the earliest sample not yet turned into frames
    assert tl.push(np.ones(8000, np.float32), now_sample=5000, earliest=4800) == 4800
    assert tl.write_head == 12800
    tl2 = AudioTimeline(capacity_s=4.0)
    # a stamp mapped into the future is held at the arrival: audio cannot come from the future
    assert tl2.push(np.ones(100, np.float32), now_sample=1000, end_sample=3000) == 900
    assert tl2.push(np.ones(100, np.float32), now_sample=1200, end_sample=1150) == 1050


def test_timeline_memory_is_bounded_and_overflow_is_counted():
    tl = AudioTimeline(capacity_s=1.0)
    for _ in range(10):  # 10 s of audio queued at once into a 1 s ring
        tl.push(np.ones(SAMPLE_RATE, np.float32), now_sample=0)
    assert tl._ring.size == SAMPLE_RATE
    assert tl.dropped_samples >= 9 * SAMPLE_RATE


def test_features_are_causal_and_equal_when_streamed_in_blocks():
    feats = LogMelFeatures()
    x = tone(1.0) * (np.arange(SAMPLE_RATE) > 8000)
    whole = feats.frames(x)
    hop, ctx = feats.hop, feats.context
    padded = np.concatenate([np.zeros(ctx, np.float32), x])
    blocks = [feats.frames(padded[ctx + s:ctx + s + 2 * hop], padded[s:ctx + s])
              for s in range(0, x.size, 2 * hop)]
    assert np.allclose(np.concatenate(blocks), whole, atol=1e-4)
    # causality: frames before the tone starts do not see it
    assert whole[:10, -1].max() < whole[15:, -1].min() - 3


def test_speech_energy_shows_in_the_last_feature():
    feats = LogMelFeatures()
    loud, quiet = feats.frames(tone(0.2)), feats.frames(tone(0.2, amp=0.001))
    assert loud[:, -1].mean() > quiet[:, -1].mean() + 5


@pytest.mark.parametrize("gap_s", [29.9, 29.99, 30.0, 30.02, 45.0])
def test_a_chunk_after_a_ring_long_silence_is_kept_whole(gap_s):
    # the silence before it is cleared without touching the chunk itself (the gap clearing
    # once wrapped around the 30 s ring onto the chunk just written and erased it)
    tl = AudioTimeline(30.0)
    tl.push(np.ones(320, np.float32), 320)
    start = tl.push(np.full(320, 0.5, np.float32), 320 + int(gap_s * 16000) + 320)
    np.testing.assert_array_equal(tl.read(start, start + 320), np.full(320, 0.5, np.float32))
    assert not tl.read(start - 320, start).any()
