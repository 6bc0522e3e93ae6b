"""Cost of audio input per 20 ms chunk: resampling at each rate, old path beside new, and the
first push after a long silence.

    python benchmarks/audio_input.py [--chunks 50] [--old-limit-s 20]

Old: scipy ``resample_poly`` on every chunk (a filter designed per call, restarted at every
chunk edge), as ``PcmDecoder`` did before. New: ``PcmDecoder`` with its stream resampler, built
once per format ("build": that once). Both decode the same S16LE chunks of a tone; figures are
per chunk (median / p95 / max, ms; the max shows the machine's scheduling as much as the code).
The old path is timed on fewer chunks where it is slow (``--old-limit-s`` per rate).
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from avatar_forcing_ros.core.audio import SAMPLE_RATE, AudioFormat, AudioTimeline, PcmDecoder, encode_s16le

RATES = (8000, 16000, 22050, 44100, 44101, 48000, 95999, 383999)


def old_decode(data: bytes, rate: int) -> np.ndarray:
    x = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    if rate == SAMPLE_RATE:
        return x
    r = Fraction(SAMPLE_RATE, rate)
    return resample_poly(x, r.numerator, r.denominator).astype(np.float32)


def chunks(rate: int, n: int) -> list[bytes]:
    per = rate // 50
    t = np.arange(per * n) / rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return [encode_s16le(x[k * per:(k + 1) * per]) for k in range(n)]


def time_each(fn, items, limit_s: float, cpu: list | None = None) -> list[float]:
    """Wall time of each call; ``cpu`` gets this thread's CPU time of each (what the call costs
    without the time it waited for a core on a busy machine)."""
    out, t_end = [], time.perf_counter() + limit_s
    for item in items:
        c, t = time.thread_time(), time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.thread_time() - c)
        if time.perf_counter() > t_end:
            break
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=50, help="20 ms chunks per rate (default 50)")
    p.add_argument("--old-limit-s", type=float, default=20.0, help="time the old path at most this long per rate")
    a = p.parse_args(argv)

    print(f"per 20 ms chunk, wall ms (median / p95 / max), and the new path's median CPU ms; "
          f"{a.chunks} chunks per rate")
    print(f"{'rate Hz':>8} | {'old: scipy per chunk':>28} {'n':>3} | {'new: stream':>22} {'cpu':>6} {'build':>8} | speed-up")
    for rate in RATES:
        items = chunks(rate, a.chunks)
        old = time_each(lambda d: old_decode(d, rate), items, a.old_limit_s)
        t = time.perf_counter()
        dec = PcmDecoder(AudioFormat(rate, 1, "S16LE"))
        build = time.perf_counter() - t
        cpu: list[float] = []
        new = time_each(dec.decode, items, float("inf"), cpu)
        om, nm = np.median(old) * 1e3, np.median(new) * 1e3

        def fig(v, w):
            v = np.asarray(v) * 1e3
            return f"{np.median(v):>{w}.3f} / {np.percentile(v, 95):>{w}.3f} / {v.max():>{w}.3f}"

        print(f"{rate:>8} | {fig(old, 8)} {len(old):>3} | {fig(new, 6)} {np.median(cpu) * 1e3:>6.3f} "
              f"{build * 1e3:>6.1f}ms | {om / nm:>6.0f}x", flush=True)

    rate, ch = 383999, 32  # the widest accepted format
    dec = PcmDecoder(AudioFormat(rate, ch, "S16LE"))
    data = [np.repeat(np.frombuffer(c, "<i2")[:, None], ch, axis=1).tobytes() for c in chunks(rate, a.chunks)]
    cpu = []
    new = np.asarray(time_each(dec.decode, data, float("inf"), cpu)) * 1e3
    print(f"{rate} Hz x {ch} channels, new: {np.median(new):.3f} / {np.percentile(new, 95):.3f} / {new.max():.3f}, "
          f"cpu {np.median(cpu) * 1e3:.3f}")

    print("\nAudioTimeline.push of a 20 ms chunk after a silence with no audio at all (the 30 s ring")
    print("has run full once before it, as on a robot that has been talking)")
    print("(median of 5 tries: wall ms and CPU ms; the largest peak of memory a push allocated)")
    chunk = np.ones(320, np.float32)
    tl = AudioTimeline()
    for k in range(1, 1501):
        tl.push(chunk, now_sample=320 * k)
    for minutes in (0, 0.5, 10, 60):
        wall, cpu, peak = [], [], 0
        for _ in range(5):
            now = tl.write_head + 320 + int(minutes * 60 * SAMPLE_RATE)
            tracemalloc.start()
            wall += time_each(lambda n: tl.push(chunk, now_sample=n), [now], float("inf"), cpu)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        print(f"  after {minutes:>4} min: {np.median(wall) * 1e3:7.3f} ms, CPU {np.median(cpu) * 1e3:7.3f} ms, "
              f"peak {peak / 2**20:6.2f} MiB allocated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
