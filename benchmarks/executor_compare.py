"""The same node classes spun by each rclpy executor: what the executor itself costs.

    source scripts/env.sh && python benchmarks/executor_compare.py [--nodes generator|all]
        [--executors multi,single,events] [--seconds 15] [--load 1] [--no-mic] [--model procedural]

Builds GeneratorNode (or all three nodes) in this process, exactly as the package's entry
points do but on the chosen executor (MultiThreadedExecutor as shipped, SingleThreadedExecutor,
rclpy.experimental.EventsExecutor), while a publisher process feeds camera 15 Hz, microphone
50 Hz and speech bursts, and a receiver process counts avatar/face_motion and images. Prints
per executor: face motion Hz, its 1-s bins, images fps, CPU % of this process, and the feed's
own lateness (so a bad figure is not the driver's). Does not change the package.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402


def spin_case(executor_kind: str, nodes: str, ns: str, model: str, seconds: float, logs: Path) -> dict:
    """In this (child) process: build the nodes, spin them on the executor for ``seconds``."""
    import psutil
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.task import Future

    from avatar_forcing_ros.ros.generator_node import GeneratorNode

    rclpy.init(args=["bench", *H.node_args(ns, {"model": model})])
    classes = [GeneratorNode]
    if nodes == "all":
        from avatar_forcing_ros.ros.perception_node import PerceptionNode
        from avatar_forcing_ros.ros.renderer_node import RendererNode
        classes = [PerceptionNode, GeneratorNode, RendererNode]
    built = [c() for c in classes]
    if executor_kind == "multi":
        ex = MultiThreadedExecutor()
    elif executor_kind == "single":
        ex = SingleThreadedExecutor()
    else:
        from rclpy.experimental import EventsExecutor
        ex = EventsExecutor()
    for n in built:
        ex.add_node(n)
    (logs / f"spin_{executor_kind}.ready").touch()
    me = psutil.Process()
    ex.spin_until_future_complete(Future(), timeout_sec=3.0)  # warm-up (discovery, first frames)
    cpu0, t0 = me.cpu_times(), time.time()
    ex.spin_until_future_complete(Future(), timeout_sec=seconds)
    cpu1, t1 = me.cpu_times(), time.time()
    result = {"t0": t0, "t1": t1,
              "cpu_pct": 100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (t1 - t0)}
    ex.shutdown()
    for n in built:
        n.finalize()
    rclpy.try_shutdown()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", choices=("generator", "all"), default="generator")
    p.add_argument("--executors", default="multi,single,events")
    p.add_argument("--model", default="procedural")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--load", type=int, default=0)
    p.add_argument("--no-mic", action="store_true", help="do not publish the microphone")
    p.add_argument("--camera-hz", type=float, default=15.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--ns", help=argparse.SUPPRESS)
    p.add_argument("--logs", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        r = spin_case(a.child, a.nodes, a.ns, a.model, a.seconds, a.logs)
        (a.logs / f"spin_{a.child}.json").write_text(json.dumps(r))
        return 0

    print(f"== executors, nodes: {a.nodes}, model {a.model}, mic {'off' if a.no_mic else '50 Hz'}, "
          f"camera {a.camera_hz:g} Hz, speech bursts, load {a.load}, {a.seconds:g} s each")
    hogs = H.start_hogs(a.load)
    try:
        for kind in a.executors.split(","):
            env = H.ros_env()
            logs = Path(tempfile.mkdtemp(prefix=f"af_exec_{kind}_"))
            ns = f"/exec_{kind}"
            n_on = int((a.seconds + 20) / 1.5)
            speech, onsets = H.onset_plan(n_on, warmup_s=1.0)
            mic = np.zeros_like(speech)
            H.save_plan(logs / "plan.npz", speech, mic, onsets, a.camera_hz if a.nodes == "all" else 0.0,
                        publish_mic=not a.no_mic)
            child = H.Proc([sys.executable, __file__, "--child", kind, "--nodes", a.nodes, "--ns", ns,
                            "--logs", str(logs), "--model", a.model, "--seconds", str(a.seconds)],
                           logs / "spin.log", env, f"spin_{kind}")
            sink, sink_out, _ = H.start_sink(ns, env, logs, seconds=a.seconds + 60)
            feed = None
            try:
                H.wait_file(logs / f"spin_{kind}.ready", 120, [child, sink])
                feed, feed_out = H.start_feed(ns, env, logs, logs / "plan.npz")
                while child.alive():
                    time.sleep(0.2)
                feed.stop()
                sink.stop()
                if child.popen.returncode != 0:
                    print(f"  {kind}: spin process failed\n{child.tail()}")
                    continue
                r = json.loads((logs / f"spin_{kind}.json").read_text())
                sd, fd = np.load(sink_out, allow_pickle=True), np.load(feed_out)
            finally:
                for x in (feed, sink, child):
                    if x is not None:
                        x.stop()
            hz, bins = H.rate_bins(sd["motion"][:, 0], r["t0"], r["t1"])
            line = (f"  {kind:6s}: avatar/face_motion {hz:5.1f} Hz, bins min {min(bins)} "
                    f"{bins[:12]}{'...' if len(bins) > 12 else ''}; CPU {r['cpu_pct']:.0f} %")
            if a.nodes == "all" or sd["image"].size:
                fps, ib = H.rate_bins(sd["image"][:, 0], r["t0"], r["t1"])
                line += f"; images {fps:.1f} fps (bins min {min(ib) if ib else 0})"
            fl = fd["chunk_late"] * 1e3
            line += f"; feed lateness p95 {H.pct(fl, 95):.1f} ms max {np.nanmax(fl):.0f} ms"
            print(line, flush=True)
    finally:
        H.stop_hogs(hogs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
