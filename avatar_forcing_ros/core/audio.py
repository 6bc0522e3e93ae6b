"""Audio: PCM decoding, resampling, a timeline buffer per stream, and frame-rate features.

Every stream is converted to mono float32 at ``SAMPLE_RATE`` on arrival, so everything after
this module sees one format. Features come at the video frame rate (one row per frame).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import samplerate
from scipy.signal import resample_poly

SAMPLE_RATE = 16000

# sample_format (audio_common_msgs/AudioInfo) -> numpy dtype and full-scale value
_FORMATS = {
    "S16LE": (np.dtype("<i2"), 32768.0),
    "S16BE": (np.dtype(">i2"), 32768.0),
    "S32LE": (np.dtype("<i4"), 2147483648.0),
    "S32BE": (np.dtype(">i4"), 2147483648.0),
    "U8": (np.dtype("u1"), None),
    "S8": (np.dtype("i1"), 128.0),
    "F32LE": (np.dtype("<f4"), 1.0),
    "F32BE": (np.dtype(">f4"), 1.0),
}
SUPPORTED_SAMPLE_FORMATS = tuple(_FORMATS)

# libsamplerate's windowed-sinc converter for streams: output flows sample for sample (soxr's
# stream gives it in bursts of up to ~100 ms), 97 dB SNR, flat to 90 % of the output band, ~1 ms
# per 20 ms chunk even at 384 kHz. Its filter delays the stream by ~3 ms for input rates from
# 22 to 384 kHz, more for low ones (6 ms at 8 kHz, 47 ms at 1 kHz): ``latency_s`` says how much.
STREAM_CONVERTER = "sinc_medium"
_PRIME_S = 0.25  # longer than the filter's reach at every accepted rate


class AudioFormatError(ValueError):
    """The declared audio format cannot be decoded (unknown format, bad rate or channels)."""


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    sample_format: str = "S16LE"

    def validate(self) -> "AudioFormat":
        if self.sample_format.upper() not in _FORMATS:
            raise AudioFormatError(
                f"unsupported sample_format {self.sample_format!r}; "
                f"supported: {', '.join(SUPPORTED_SAMPLE_FORMATS)}")
        if not (1000 <= self.sample_rate <= 384000):
            raise AudioFormatError(f"sample_rate {self.sample_rate} Hz is out of range")
        if not (1 <= self.channels <= 32):
            raise AudioFormatError(f"channels {self.channels} is out of range")
        return self

    @property
    def frame_bytes(self) -> int:
        return _FORMATS[self.sample_format.upper()][0].itemsize * self.channels


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased, zero-phase) of a whole signal between integer rates.

    For offline use on whole signals: it designs a filter on every call and treats the ends as
    silence, so a stream cut in chunks goes through ``StreamResampler`` instead."""
    if rate_in == rate_out or x.size == 0:
        return x.astype(np.float32, copy=False)
    r = Fraction(rate_out, rate_in)
    return resample_poly(x, r.numerator, r.denominator).astype(np.float32)


class StreamResampler:
    """One mono stream converted to ``rate_out`` chunk by chunk, the filter carried across chunks.

    The filter is built once; every chunk continues where the last one ended, so a stream cut
    into chunks comes out sample for sample as the whole signal would (no restart, no edge
    artefacts at chunk boundaries), the fraction of a sample carried on. The filter needs
    ``latency_s`` of input past a sample to make it: that much of each chunk's end comes out
    with the next chunk (the first chunk comes out that much short), so a chunk's samples end
    ``latency_s`` before the chunk does.
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE, converter: str = STREAM_CONVERTER):
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.ratio = self.rate_out / self.rate_in
        self._src = samplerate.Resampler(converter, channels=1)
        self.latency_s = _latency_s(converter, self.rate_in, self.rate_out)
        self.fed = False  # any audio in yet (else nothing is held back)

    def process(self, x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return np.zeros(0, np.float32)
        self.fed = True
        return self._src.process(np.ascontiguousarray(x, dtype=np.float32), self.ratio, False)


@functools.lru_cache(maxsize=64)
def _latency_s(converter: str, rate_in: int, rate_out: int) -> float:
    """What a converter holds back once it runs steadily: fed _PRIME_S of silence, its output
    falls short of that duration by the filter's reach."""
    src = samplerate.Resampler(converter, channels=1)
    n = int(np.ceil(_PRIME_S * rate_in))
    made = src.process(np.zeros(n, np.float32), rate_out / rate_in, False).size
    return (n * rate_out / rate_in - made) / rate_out


class DecodedAudio(np.ndarray):
    """Decoded samples that know how much later than their input they are (``latency_s``), so
    ``StreamingGenerator`` places them where they were captured without every caller passing
    the decoder's delay along. Otherwise a plain float32 array."""

    latency_s: float = 0.0

    def __array_finalize__(self, obj):
        self.latency_s = getattr(obj, "latency_s", 0.0)


class PcmDecoder:
    """Raw interleaved PCM chunks -> mono float32 at SAMPLE_RATE.

    Chunks may split a sample frame (odd byte counts): the remainder is carried to the next
    chunk, never misaligned. Non-finite float samples are zeroed and counted. Other rates go
    through one ``StreamResampler`` per format, built in ``set_format``; a format change starts
    a new one (the old one's last ``latency_s`` of audio, still in its filter, is counted in
    ``discarded_samples``, like a partial sample frame left in the carry).
    """

    def __init__(self, fmt: AudioFormat = AudioFormat()):
        self.discarded_samples = 0
        self._resampler: StreamResampler | None = None
        self.set_format(fmt)

    def set_format(self, fmt: AudioFormat) -> None:
        fmt = fmt.validate()
        if self._resampler is not None and self._resampler.fed:
            self.discarded_samples += int(round(self._resampler.latency_s * SAMPLE_RATE))
        self.format = fmt
        self._dtype, self._scale = _FORMATS[fmt.sample_format.upper()]
        self._carry = b""
        self.nonfinite_samples = 0
        self._resampler = StreamResampler(fmt.sample_rate) if fmt.sample_rate != SAMPLE_RATE else None

    @property
    def latency_s(self) -> float:
        """How much later than its input the decoded audio is (the resampler's filter delay; 0
        at SAMPLE_RATE). A chunk's samples end this long before the chunk's last input sample."""
        return self._resampler.latency_s if self._resampler is not None else 0.0

    def decode(self, data: bytes) -> np.ndarray:
        buf = self._carry + bytes(data)
        fb = self.format.frame_bytes
        usable = len(buf) - len(buf) % fb
        self._carry = buf[usable:]
        if usable == 0:
            return self._out(np.zeros(0, dtype=np.float32))
        raw = np.frombuffer(buf[:usable], dtype=self._dtype)
        if self._scale is None:  # unsigned 8-bit is offset binary
            x = (raw.astype(np.float32) - 128.0) / 128.0
        else:
            x = raw.astype(np.float32) / self._scale
        ch = self.format.channels
        if ch > 1:  # channel by channel: a strided sum is ~10x faster than mean(axis=1) here
            mono = x[0::ch].copy()
            for k in range(1, ch):
                mono += x[k::ch]
            x = mono * np.float32(1.0 / ch)
        bad = ~np.isfinite(x)
        if bad.any():
            self.nonfinite_samples += int(bad.sum())
            x[bad] = 0.0
        x = np.clip(x, -1.0, 1.0)
        return self._out(x if self._resampler is None else self._resampler.process(x))

    def _out(self, x: np.ndarray) -> DecodedAudio:
        out = x.view(DecodedAudio)
        out.latency_s = self.latency_s
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._carry)


def encode_s16le(x: np.ndarray) -> bytes:
    """float32 [-1, 1] -> S16LE bytes (what the pipeline publishes)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class AudioTimeline:
    """One audio stream laid on the generator's sample clock.

    A chunk is laid to end where it belongs on the clock (its arrival, or where its stamp maps
    to): a microphone's chunk exists only once its last sample is captured, so placing it after
    its arrival would add a chunk of latency to every frame made from it. It never overlaps
    what is already queued, so a TTS that bursts a whole utterance is spread over real time as a
    speaker would play it, and never lands before ``earliest`` (time the caller has already
    presented or turned into frames, where it would be lost). Storage is a fixed-size ring (no
    unbounded growth; a push writes its chunk and clears at most one ring's worth of gap, so the
    first chunk after an idle hour costs what any chunk costs); audio queued further ahead than
    the ring holds is dropped and counted.
    """

    def __init__(self, capacity_s: float = 30.0, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = sample_rate
        self.capacity = int(capacity_s * sample_rate)
        self._ring = np.zeros(self.capacity, dtype=np.float32)
        self.write_head = 0  # absolute sample index where the next chunk starts
        self.last_chunk = 0  # samples in the last chunk pushed
        self.dropped_samples = 0

    def push(self, x: np.ndarray, now_sample: int, earliest: int | None = None,
             end_sample: int | None = None, rewind: int = 0) -> int:
        """Queue samples that arrived at ``now_sample`` and end at ``end_sample`` (default: on
        arrival); returns the absolute index where they start. ``rewind``: how many queued
        samples they may overwrite (the sender's clock estimate moved back by that much, so
        what was queued last sits that much too late)."""
        end = now_sample if end_sample is None else min(int(end_sample), now_sample)
        self.last_chunk = x.size
        start = max(end - x.size, self.write_head - max(int(rewind), 0),
                    earliest if earliest is not None else end - x.size)
        # Everything older than now_sample - capacity/2 may be overwritten; keep room for reads.
        room = now_sample + self.capacity // 2 - start
        if room <= 0:
            self.dropped_samples += x.size
            return start
        if x.size > room:
            self.dropped_samples += x.size - room
            x = x[:room]
        # samples between the old head and start are silence (a gap in the stream); only the
        # last ring's worth of a gap can still be read, however long it was (an idle hour)
        if start > self.write_head:
            self._fill(max(self.write_head, start - self.capacity), start, None)
        self._fill(start, start + x.size, x)
        self.write_head = start + x.size
        return start

    def _fill(self, lo: int, hi: int, x: np.ndarray | None) -> None:
        """Ring positions of absolute samples [lo, hi) (at most ``capacity``) := x, or zeros."""
        if hi <= lo:
            return
        if hi - lo > self.capacity:  # only the last ``capacity`` samples survive anyway
            if x is not None:
                x = x[hi - lo - self.capacity:]
            lo = hi - self.capacity
        a = lo % self.capacity
        n1 = min(hi - lo, self.capacity - a)
        if x is None:
            self._ring[a:a + n1] = 0.0
            self._ring[:hi - lo - n1] = 0.0
        else:
            self._ring[a:a + n1] = x[:n1]
            self._ring[:hi - lo - n1] = x[n1:]

    def shift(self, n: int) -> None:
        """Renumber every queued sample n later (the clock's origin moved n samples back)."""
        if n and self.write_head > 0:  # an empty timeline has nothing to move
            self._ring = np.roll(self._ring, n)
            self.write_head += n

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end); silence where nothing was queued or the ring has moved on."""
        n = end - start
        out = np.zeros(max(n, 0), dtype=np.float32)
        if n <= 0:
            return out
        lo = max(start, self.write_head - self.capacity)
        hi = min(end, self.write_head)
        if hi > lo:
            a = lo % self.capacity
            n1 = min(hi - lo, self.capacity - a)
            out[lo - start:lo - start + n1] = self._ring[a:a + n1]
            out[lo - start + n1:hi - start] = self._ring[:hi - lo - n1]
        return out


class LogMelFeatures:
    """Log-mel band energies at the video frame rate, computed causally.

    Each frame i covers samples [i*hop, (i+1)*hop) where hop = sample_rate / fps; its feature
    is the mean over ``sub`` short-time windows inside that span (window ``n_fft`` ending at
    each sub-hop, so only past samples are used), plus log RMS energy. Shape (T, n_mels + 1).
    """
    MEL_FLOOR = 1e-6  # added under the logs: silence reads as log(floor)
    RMS_FLOOR = 1e-4

    def __init__(self, sample_rate: int = SAMPLE_RATE, fps: float = 25.0, n_mels: int = 40,
                 n_fft: int = 512, sub: int = 4, fmin: float = 60.0, fmax: float = 7600.0):
        hop = sample_rate / fps
        if abs(hop - round(hop)) > 1e-6:
            raise ValueError(f"sample_rate/fps must be an integer, got {hop}")
        self.sample_rate, self.fps, self.n_mels, self.n_fft, self.sub = sample_rate, fps, n_mels, n_fft, sub
        self.hop = int(round(hop))
        if self.hop % sub:
            raise ValueError("samples per frame must divide into sub-windows")
        self.dim = n_mels + 1
        self.context = n_fft  # samples of history a frame needs
        self._window = np.hanning(n_fft).astype(np.float32)
        self._mel = _mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)

    def frames(self, samples: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """Features of consecutive frames of ``samples`` (length a multiple of hop).

        ``history``: the ``context`` samples before ``samples`` (zeros if None), so a stream
        cut into blocks gives the same features as the whole signal at once.
        """
        samples = np.asarray(samples, dtype=np.float32)
        t = samples.size // self.hop
        if history is None:
            history = np.zeros(self.context, dtype=np.float32)
        x = np.concatenate([history[-self.context:], samples[: t * self.hop]])
        step = self.hop // self.sub
        ends = self.context + step * (np.arange(t * self.sub) + 1)
        idx = ends[:, None] - self.n_fft + np.arange(self.n_fft)[None, :]
        win = x[idx] * self._window
        power = np.abs(np.fft.rfft(win, axis=1)) ** 2
        mel = np.log(power @ self._mel.T + self.MEL_FLOOR)  # (t*sub, n_mels)
        rms = np.log(np.sqrt(np.mean(x[idx[:, -step:]] ** 2, axis=1)) + self.RMS_FLOOR)[:, None]
        feats = np.concatenate([mel, rms], axis=1).reshape(t, self.sub, self.dim).mean(axis=1)
        return feats.astype(np.float32)


def _mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    bins = np.fft.rfftfreq(n_fft, 1.0 / sr)
    pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, bins.size), dtype=np.float32)
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (bins - lo) / (c - lo)
        down = (hi - bins) / (hi - c)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return fb
