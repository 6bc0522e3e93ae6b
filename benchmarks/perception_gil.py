"""How much of the GIL perception takes from the rest of its process (issue 14: "perception off
the GIL-critical path"), measured side by side in one run.

    python benchmarks/perception_gil.py [--seconds 5]

In ``avatar_forcing_all`` the perception node's worker thread shares one interpreter with the
generator's 100 Hz tick and the renderer. This runs the node's estimator (mediapipe face mesh
plus the estimator's own maths) flat out on a worker thread over drifting 640x480 portrait
frames and measures, on the main thread, in turn without and with it:

- pure-Python work done in the same wall time (iterations of a busy loop): the share the
  worker left to the rest of the process is the ratio, and 1 - ratio its GIL share;
- a 100 Hz tick's wake-up lateness (p50/p95/max): a tick that must wait for the GIL is late.

A worker that held the GIL for its whole frame would leave about (1 - its busy share) of the
loop; one that releases it inside mediapipe leaves nearly all of it (two cores).

Then, with the worker still running, the garbage collector's pauses (which hold the GIL for
every thread) as the loaded process has them and after ``GcPauses.settle()`` (what an active
node does): full collections and the longest pause per generation, with the tick's lateness.
"""
from __future__ import annotations

import argparse
import gc
import threading
import time

import cv2
import numpy as np

from avatar_forcing_ros.core.perception import FaceMotionEstimator
from avatar_forcing_ros.core.telemetry import GcPauses
from camera import drifting_face_frames  # benchmarks/camera.py


class PerceptionWorker(threading.Thread):
    def __init__(self, images):
        super().__init__(daemon=True)
        self.images, self.frames, self.busy_s = images, 0, 0.0
        self.stop = threading.Event()
        self.estimator = FaceMotionEstimator(auto_calibration_frames=0)
        for i, img in enumerate(images[:5]):  # warm-up: graph start, first detection
            self.estimator.estimate(img, i / 25)

    def run(self):
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            self.estimator.estimate(self.images[i % len(self.images)], i / 25)
            self.busy_s += time.perf_counter() - t0
            self.frames += 1
            i += 1


def python_work(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(1000):
            n += 1
    return n


def tick_lateness(seconds: float, period: float = 0.01) -> np.ndarray:
    late, t = [], time.perf_counter()
    end = t + seconds
    while t < end:
        t += period
        time.sleep(max(0.0, t - time.perf_counter()))
        late.append(time.perf_counter() - t)
    return 1e3 * np.array(late)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args()
    cv2.setNumThreads(1)
    images = list(drifting_face_frames(640, 480, 40))
    alone_work = python_work(a.seconds)
    alone_late = tick_lateness(a.seconds)
    worker = PerceptionWorker(images)
    worker.start()
    t0 = time.perf_counter()
    with_work = python_work(a.seconds)
    with_late = tick_lateness(a.seconds)
    wall = time.perf_counter() - t0
    frames, busy_s = worker.frames, worker.busy_s
    gc_rows = gc_pauses(a.seconds)
    worker.stop.set()
    worker.join()
    worker.estimator.close()
    ratio = with_work / alone_work
    print(f"perception worker: {frames / wall:.0f} frames/s flat out, busy {100 * busy_s / wall:.0f} % "
          f"of the wall time, {1e3 * busy_s / max(frames, 1):.1f} ms per frame")
    print(f"pure-Python work on the main thread: {ratio:.2f} of what it did alone "
          f"(perception's GIL share about {100 * (1 - ratio):.0f} % of the wall time)")
    for name, late in (("alone", alone_late), ("with perception", with_late)):
        print(f"100 Hz tick lateness {name}: p50 {np.median(late):.2f} / p95 {np.percentile(late, 95):.2f} / "
              f"max {late.max():.2f} ms")
    for row in gc_rows:
        print(row)


def gc_pauses(seconds: float) -> list[str]:
    """What a full collection costs (timed gc.collect(), median of 3) and the collections that
    came on their own over ``seconds`` of the 100 Hz tick, before and after settling the heap.
    Its own watcher, not GcPauses': this needs every collection by generation, GcPauses keeps
    only the slow ones, in a bounded queue."""
    pauses, started = [], {}

    def watch(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            pauses.append((info["generation"], time.perf_counter() - started.pop("t")))
    rows = []
    try:
        for name in ("heap as loaded", "heap settled"):
            if name == "heap settled":
                GcPauses.settle()
            full = []
            for _ in range(3):
                t0 = time.perf_counter()
                gc.collect()
                full.append(1e3 * (time.perf_counter() - t0))
            gc.callbacks.append(watch)
            pauses.clear()
            late = tick_lateness(seconds)
            gc.callbacks.remove(watch)
            per = {g: [1e3 * d for gen, d in pauses if gen == g] for g in (0, 1, 2)}
            rows.append(f"gc, {name} ({gc.get_freeze_count()} objects frozen): a full collection "
                        f"{np.median(full):.1f} ms; on their own in {seconds:.0f} s: "
                        + ", ".join(f"gen {g} {len(d)}x max {max(d, default=0):.1f} ms" for g, d in per.items())
                        + f"; tick lateness p99 {np.percentile(late, 99):.2f} / max {late.max():.2f} ms")
    finally:
        if watch in gc.callbacks:
            gc.callbacks.remove(watch)
        GcPauses.unsettle()
    return rows


if __name__ == "__main__":
    main()
