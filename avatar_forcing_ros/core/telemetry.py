"""What each stage reports about itself: rates, latencies, drops and the last error.

Pure Python so that the ROS nodes, the offline replay and the benchmarks count the same way;
the ROS layer turns a ``Telemetry.report()`` into a diagnostic_msgs/DiagnosticStatus.
"""
from __future__ import annotations

import gc
import threading
import time
from collections import Counter, deque

import numpy as np

OK, WARN, ERROR = 0, 1, 2


class RateMeter:
    """Events per second over a sliding window of recent event times."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._times: deque = deque(maxlen=1000)
        self.count = 0

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)
        self.count += 1

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._times if now - t <= self.window_s]
        return len(recent) / self.window_s


class Telemetry:
    """Thread-safe counters of one stage. ``log`` is called once per new kind of problem and
    then every ``log_every`` occurrences, so a broken input never floods the log."""

    def __init__(self, name: str, log=None, log_every: int = 100,
                 latency_warn_s: float = 0.1, latency_error_s: float = 0.5, recent_s: float = 2.0):
        self.name = name
        self._log = log or (lambda msg: None)
        self.log_every = log_every
        self.latency_warn_s, self.latency_error_s = latency_warn_s, latency_error_s
        self._lock = threading.Lock()
        self.rates: dict[str, RateMeter] = {}
        self.drops: Counter = Counter()
        self._latency: deque = deque(maxlen=500)
        self.last_error = ""
        self.values: dict[str, str] = {}
        # a drop keeps the level at WARN this long (s); then, the cause gone, it is OK again
        self.recent_s = recent_s
        self._last_drop: float | None = None

    def tick(self, stream: str) -> None:
        with self._lock:
            self.rates.setdefault(stream, RateMeter()).tick()

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency.append(seconds)

    def drop(self, reason: str, detail: str = "") -> None:
        """Count a dropped input; log the first of each reason and then every log_every-th."""
        with self._lock:
            self.drops[reason] += 1
            n = self.drops[reason]
            self.last_error = f"{reason}: {detail}" if detail else reason
            self._last_drop = time.monotonic()
        if n == 1 or n % self.log_every == 0:
            self._log(f"{self.name}: dropped input ({reason}, {n} so far){': ' + detail if detail else ''}")

    def set(self, key: str, value) -> None:
        with self._lock:
            self.values[key] = str(value)

    def latency_percentiles(self) -> tuple[float, float]:
        with self._lock:
            if not self._latency:
                return 0.0, 0.0
            a = np.asarray(self._latency)
        return float(np.percentile(a, 50)), float(np.percentile(a, 95))

    def report(self, now: float | None = None) -> tuple[int, str, dict[str, str]]:
        """(level, message, key/values) for a diagnostic status. Dropped input is a WARN while
        drops keep coming (within ``recent_s``); the counters and the last error stay listed."""
        p50, p95 = self.latency_percentiles()
        now = time.monotonic() if now is None else now
        with self._lock:
            dropping = self._last_drop is not None and now - self._last_drop <= self.recent_s
            kv = {f"rate {k} (Hz)": f"{m.rate():.1f}" for k, m in self.rates.items()}
            kv.update({f"dropped {k}": str(v) for k, v in self.drops.items()})
            kv.update(self.values)
            kv["latency p50 (ms)"] = f"{p50 * 1e3:.1f}"
            kv["latency p95 (ms)"] = f"{p95 * 1e3:.1f}"
            kv["last error"] = self.last_error
        level, msg = OK, "ok"
        if p95 > self.latency_error_s:
            level, msg = ERROR, f"processing latency p95 {p95 * 1e3:.0f} ms"
        elif p95 > self.latency_warn_s:
            level, msg = WARN, f"processing latency p95 {p95 * 1e3:.0f} ms"
        elif dropping:
            level, msg = WARN, f"dropping input: {self.last_error}"
        return level, msg, kv


class GcPauses:
    """The process's garbage-collector pauses, watched through ``gc.callbacks`` (one watcher per
    process, shared by the nodes in it). A full (generation 2) collection walks every object the
    interpreter tracks, with the GIL held: with rclpy, torch and mediapipe loaded that is ~10^5
    objects and 50-60 ms (benchmarks/perception_gil.py), more than a frame at 25 fps, in every
    thread of the process. ``settle()`` after start-up moves the long-lived heap out of the
    collector's walk (``gc.freeze``), so later collections only see what was made since.
    Process-wide, like the collector: in ``avatar_forcing_all`` one node's deactivation gives
    the whole heap back until the next activation settles it again."""

    SLOW_S = 0.02  # a pause this long costs half a frame's budget at 25 fps

    _lock = threading.Lock()
    _installed = False
    _started: float | None = None
    _settling = False                   # settle()'s own collection is not a pause of the running node
    pauses: deque = deque(maxlen=256)   # (monotonic end time, seconds, generation) of slow pauses
    slow = 0                            # slow pauses since the watcher was installed

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if not cls._installed:
                gc.callbacks.append(cls._on_gc)
                cls._installed = True

    @classmethod
    def _on_gc(cls, phase: str, info: dict) -> None:
        # runs inside the collector, on whichever thread triggered it: no locks (a deque append
        # and these updates are atomic under the GIL), nothing that could block
        if phase == "start":
            cls._started = time.monotonic()
            return
        if cls._started is None or cls._settling:
            return
        now = time.monotonic()
        took, cls._started = now - cls._started, None
        if took >= cls.SLOW_S:
            cls.slow += 1
            cls.pauses.append((now, took, info.get("generation", 0)))

    @classmethod
    def report(cls, recent_s: float = 10.0, now: float | None = None) -> dict[str, str]:
        """Diagnostic key/values: the longest pause of the last ``recent_s`` s and the count of
        slow ones since start."""
        now = time.monotonic() if now is None else now
        recent = [took for t, took, _ in list(cls.pauses) if now - t <= recent_s]
        return {f"gc longest pause, last {recent_s:g} s (ms)": f"{1e3 * max(recent, default=0.0):.1f}",
                "gc pauses >= 20 ms": str(cls.slow),
                "gc heap frozen (objects)": str(gc.get_freeze_count())}

    @classmethod
    def settle(cls) -> None:
        """Collect once, then freeze what is left (the loaded model, the node, the libraries):
        call when a node has become active, off its real-time path."""
        cls._settling = True
        try:
            gc.collect()
        finally:
            cls._settling = False
        gc.freeze()

    @staticmethod
    def unsettle() -> None:
        """Give the frozen heap back to the collector (a node deactivating may drop a model
        whose reference cycles a frozen heap would keep forever)."""
        gc.unfreeze()


class LatestWorker:
    """Runs ``work(item)`` on its own thread for the newest item only.

    Callbacks ``offer`` items without blocking; an item replaced before the worker got to it
    is counted as stale (camera frames that arrive faster than they can be processed).
    Exceptions in ``work`` are passed to ``on_error`` and the worker keeps going.
    """

    def __init__(self, work, name: str, on_stale=None, on_error=None):
        self._work, self.name = work, name
        self._on_stale = on_stale or (lambda: None)
        self._on_error = on_error or (lambda exc: None)
        self._cond = threading.Condition()
        self._item = None
        self._has_item = False
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def offer(self, item) -> None:
        with self._cond:
            if self._has_item:
                self._on_stale()
            self._item, self._has_item = item, True
            self._cond.notify()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the item in hand; False if it was still being worked on after ``timeout``
        s: then whatever ``work`` uses must not be freed (a model's first inference on a busy
        machine takes seconds, and closing mediapipe under it crashed the process)."""
        with self._cond:
            self._running = False
            self._has_item = False
            self._item = None
            self._cond.notify()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._has_item:
                    self._cond.wait()
                if not self._running:
                    return
                item, self._item, self._has_item = self._item, None, False
            try:
                self._work(item)
            except Exception as exc:  # keep serving; the caller logs and counts it
                self._on_error(exc)
