"""Where the time goes in the running nodes: py-spy on each node process while a publisher
process feeds camera (15 Hz), microphone (50 Hz) and speech bursts, and a receiver process
takes the images.

    source scripts/env.sh && python benchmarks/profile_nodes.py [--all-in-one] [--load 1]
        [--model procedural|default] [--seconds 20] [--camera-hz 15] [--gil] [--keep DIR]

Prints per process: CPU %, py-spy samples by category (rclpy executor, take/deserialise,
publish/serialise, message conversion, timers, runtime, model, perception, rendering,
telemetry, ...) and the top frames; the avatar/face_motion rate with its 1-s bins, the image
fps, and the feed's and receiver's own lateness. Needs py-spy (benchmarks/requirements.txt)
and ptrace rights (root, or kernel.yama.ptrace_scope=0).
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

# (category, pattern on "function (file:line)" of a frame) in priority order: a sample counts
# for the first category that any frame of its stack matches, so work done in a callback
# counts as that work and only the rest of the executor's stacks as executor overhead.
IDLE = "idle (blocked in wait/get/sleep)"
CATEGORIES = [
    ("perception (mediapipe)", r"mediapipe|core/perception\.py"),
    ("rendering", r"avatar_forcing_ros/render/|cv2"),
    ("telemetry/diagnostics", r"Telemetry\.|publish_diagnostics"),
    ("rclpy publish (serialise + DDS write)", r"Publisher\.publish \("),
    ("rclpy take (deserialise)", r"_take_subscription|take_message"),
    ("msg conversion (python)", r"core/imaging\.py|ros/messages\.py|/msg/_|audio_bytes|encode_s16le|PcmDecoder"),
    ("model", r"onnxruntime|generation/|torch/|motion_model\.py"),
    ("runtime (features, timeline)", r"core/runtime\.py|core/audio\.py"),
    ("generator callbacks (python)", r"GeneratorNode\._|GeneratorNode\.configure\.<locals>"),
    ("node callbacks (python)", r"RendererNode\._|PerceptionNode\._|NewestFirstNode\.|AvatarNode\.(param|now_s)"),
    ("driver (feed/sink python)", r"run_sink\.<locals>|audio_msg \(.*harness"),
    ("rclpy timers", r"_take_timer|_execute_timer|rclpy/timer\.py"),
    ("rclpy executor (wait set, dispatch)", r"rclpy/executors\.py|rclpy/experimental"),
    ("rclpy other", r"rclpy/"),
    ("threads/queues", r"threading\.py|queue\.py|concurrent/futures"),
    ("numpy/other", r"."),
]


_IDLE_CALL = re.compile(r"\.wait\(|\.get\(|sleep\(|\.acquire\(|\.join\(|select\(|poll\(")
_line_cache: dict[str, str] = {}


def source_line(frame: str) -> str:
    """The source line of a py-spy frame 'func (pkg/file.py:123)', found on sys.path."""
    m = re.search(r"\((.+):(\d+)\)$", frame)
    if not m:
        return ""
    key = f"{m.group(1)}:{m.group(2)}"
    if key not in _line_cache:
        _line_cache[key] = ""
        for root in [*sys.path, str(H.REPO / "benchmarks")]:
            f = Path(root) / m.group(1)
            if f.is_file():
                lines = f.read_text(errors="replace").splitlines()
                n = int(m.group(2))
                _line_cache[key] = lines[n - 1] if 0 < n <= len(lines) else ""
                break
    return _line_cache[key]


def classify(stack: list[str]) -> str:
    # Without pausing the process (--nonblocking) py-spy cannot tell a thread blocked in C
    # from one running: a leaf line that calls a blocking function counts as idle.
    if stack and _IDLE_CALL.search(source_line(stack[-1])):
        return IDLE
    if stack and "harness.py" in stack[-1]:
        return "driver (feed/sink python)"  # the driver's own loop
    for name, pat in CATEGORIES[:-1]:
        if any(re.search(pat, frame) for frame in stack):
            return name
    return CATEGORIES[-1][0]


def read_raw(path: Path) -> tuple[collections.Counter, collections.Counter, collections.Counter, int]:
    """py-spy --format raw: 'frame;frame;...;leaf count' per line (root first); with --threads
    the root frame is the thread. Returns samples per category, per leaf frame, per thread."""
    cats, leaves, threads, total = collections.Counter(), collections.Counter(), collections.Counter(), 0
    if not path.exists():
        return cats, leaves, threads, 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        cat = classify(frames)
        cats[cat] += n
        total += n
        if cat == IDLE:
            continue
        leaves[re.sub(r":\d+\)?$", "", frames[-1]) if frames else "?"] += n
        threads[thread] += n
    return cats, leaves, threads, total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--all-in-one", action="store_true", help="the three nodes in one process")
    p.add_argument("--load", type=int, default=0, help="CPU hogs (one core each) during the run")
    p.add_argument("--model", default="procedural", help="generator model parameter")
    p.add_argument("--seconds", type=float, default=20.0, help="profiled seconds")
    p.add_argument("--camera-hz", type=float, default=15.0)
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--gil", action="store_true", help="py-spy --gil: only samples holding the GIL")
    p.add_argument("--keep", type=Path, help="keep logs and profiles here")
    a = p.parse_args()

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    env = H.ros_env()
    logs = a.keep or Path(tempfile.mkdtemp(prefix="af_profile_"))
    logs.mkdir(parents=True, exist_ok=True)
    ns = f"/prof_{int(time.time()) % 100000}"
    warm = 4.0
    n_onsets = int((a.seconds + warm + 2) / 1.5) + 1
    speech, onsets = H.onset_plan(n_onsets, warmup_s=1.0)
    rng = np.random.default_rng(0)
    mic = (0.01 * rng.standard_normal(speech.size)).astype(np.float32)  # a room's noise
    plan = logs / "plan.npz"
    H.save_plan(plan, speech, mic, onsets, a.camera_hz)
    hogs = H.start_hogs(a.load)
    params = {"model": a.model}
    graph = H.start_graph(ns, env, logs, params, a.all_in_one)
    sink, sink_out, ready = H.start_sink(ns, env, logs, seconds=a.seconds + 120)
    feed = None
    try:
        H.wait_file(ready, 120, graph + [sink])
        feed, feed_out = H.start_feed(ns, env, logs, plan)
        time.sleep(warm)
        procs = {g.name: g.pid for g in graph} | {"feed": feed.pid, "sink": sink.pid}
        sampler = H.ProcessSampler(procs)
        spies = {}
        for name, pid in procs.items():
            argv = [pyspy, "record", "--pid", str(pid), "--duration", str(int(a.seconds)),
                    "--rate", str(a.rate), "--format", "raw", "--threads", "--nonblocking",
                    "-o", str(logs / f"{name}.raw")] + (["--gil"] if a.gil else [])
            spies[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(logs / f"{name}.pyspy.log", "wb"))
        t_start = time.time()
        while time.time() - t_start < a.seconds:
            time.sleep(1.0)
            sampler.sample()
            for g in graph + [sink, feed]:
                if not g.alive():
                    raise RuntimeError(f"{g.name} exited\n{g.tail()}")
        t_end = time.time()
        for s in spies.values():
            s.wait(timeout=60)
        feed.stop()
        sink.stop()
        feed_d, sink_d = np.load(feed_out), np.load(sink_out, allow_pickle=True)
    finally:
        for g in graph:
            g.stop()
        for x in (feed, sink):
            if x is not None:
                x.stop()
        H.stop_hogs(hogs)

    mode = "all-in-one (one process)" if a.all_in_one else "three processes"
    print(f"== profile: {mode}, model {a.model}, camera {a.camera_hz:g} Hz, mic 50 Hz, speech bursts, "
          f"load {a.load} hog(s), {a.seconds:g} s, py-spy {a.rate} Hz{' --gil' if a.gil else ''}")
    motion, images = sink_d["motion"], sink_d["image"]
    r, bins = H.rate_bins(motion[:, 0], t_start, t_end)
    fps, ibins = H.rate_bins(images[:, 0], t_start, t_end)
    print(f"avatar/face_motion {r:.1f} Hz, 1-s bins min {min(bins) if bins else 0} {bins}")
    print(f"avatar/image {fps:.1f} fps, 1-s bins min {min(ibins) if ibins else 0}")
    fl = feed_d["chunk_late"] * 1e3
    print(f"feed lateness (ms): audio p50 {H.pct(fl, 50):.1f} p95 {H.pct(fl, 95):.1f} max {np.nanmax(fl):.1f}; "
          f"camera p95 {H.pct(feed_d['cam_late'] * 1e3, 95):.1f}; receiver loop lateness p95 "
          f"{H.pct(sink_d['lateness'] * 1e3, 95):.1f} max {np.max(sink_d['lateness']) * 1e3:.1f}")
    for name in procs:
        cats, leaves, threads, total = read_raw(logs / f"{name}.raw")
        cpu = sampler.mean_cpu(name)
        idle = cats.pop(IDLE, 0)
        busy = total - idle
        print(f"\n-- {name}: CPU {cpu:.0f} % of one core (psutil); py-spy {total} samples, {idle} idle, "
              f"{busy} busy = {busy / (a.seconds * a.rate) * 100:.0f} % of one thread-second per second"
              f"{' (GIL held)' if a.gil else ''}; busy samples by category:")
        for c, n in cats.most_common():
            print(f"   {100 * n / max(busy, 1):5.1f} %  {c}")
        print("   top leaf frames: " + "; ".join(f"{f} {100 * n / max(total, 1):.0f}%" for f, n in leaves.most_common(6)))
        if len(threads) > 1:
            print("   by thread: " + "; ".join(f"{t.split(' ')[0]}{' ' + t.split(' ')[1] if ' ' in t else ''} "
                                              f"{100 * n / max(total, 1):.0f}%" for t, n in threads.most_common(6)))
    print(f"\nprofiles and logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
