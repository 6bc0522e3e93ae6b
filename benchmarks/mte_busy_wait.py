"""Does rclpy's MultiThreadedExecutor busy-wait while a callback of a mutually exclusive group
runs? (The mechanism behind the generator's executor overhead in PROFILE.md.)

    source scripts/env.sh && python benchmarks/mte_busy_wait.py [--seconds 5]

One node, a publisher at 50 Hz and two subscriptions in one MutuallyExclusiveCallbackGroup
(as the generator's inputs are) whose callbacks block for ``--work-ms`` without using the CPU
(sleep: releases the GIL, like a wait on a lock or I/O). An executor that waits properly uses
almost no CPU; one that polls shows up as CPU time and as wait-set wake-ups per callback.
Compares MultiThreadedExecutor, SingleThreadedExecutor and EventsExecutor (if present).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time


def run(kind: str, seconds: float, work_ms: float) -> str:
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.task import Future
    from std_msgs.msg import Empty

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"busy_{kind}", context=ctx)
    group = MutuallyExclusiveCallbackGroup()
    calls = [0]

    def cb(_msg):
        calls[0] += 1
        time.sleep(work_ms / 1e3)

    node.create_subscription(Empty, "a", cb, 10, callback_group=group)
    node.create_subscription(Empty, "b", cb, 10, callback_group=group)
    pa, pb = node.create_publisher(Empty, "a", 10), node.create_publisher(Empty, "b", 10)
    node.create_timer(0.02, lambda: (pa.publish(Empty()), pb.publish(Empty())))
    if kind == "multi":
        ex = MultiThreadedExecutor(context=ctx)
    elif kind == "single":
        ex = SingleThreadedExecutor(context=ctx)
    else:
        from rclpy.experimental import EventsExecutor
        ex = EventsExecutor(context=ctx)
    ex.add_node(node)
    waits = [0]
    if hasattr(ex, "_wait_for_ready_callbacks"):  # count the wait-set wake-ups (Python executors)
        orig = ex._wait_for_ready_callbacks

        def counted(*a, **k):
            for item in orig(*a, **k):
                waits[0] += 1
                yield item
        ex._wait_for_ready_callbacks = counted
    ex.spin_until_future_complete(Future(), timeout_sec=1.0)
    c0, n0, w0, t0 = time.process_time(), calls[0], waits[0], time.time()
    ex.spin_until_future_complete(Future(), timeout_sec=seconds)
    cpu, n, w, dt = time.process_time() - c0, calls[0] - n0, waits[0] - w0, time.time() - t0
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)
    per = f"{w / max(n, 1):.1f} handlers yielded by the wait loop per subscription callback (the 50 Hz timer adds 0.5)" if hasattr(ex, "_wait_for_ready_callbacks") else ""
    return (f"{kind:6s}: {n / dt:5.1f} callbacks/s (expected 100), CPU {100 * cpu / dt:5.1f} % of a core, "
            f"{1e3 * cpu / max(n, 1):.2f} ms CPU per callback {per}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--work-ms", type=float, default=5.0)
    a = p.parse_args()
    os.environ.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1",
                       "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID") or str(random.SystemRandom().randint(101, 200))})
    print(f"== 2 subscriptions x 50 Hz in one mutually exclusive group, callbacks block {a.work_ms:g} ms (sleep)")
    for kind in ("multi", "single", "events"):
        print(run(kind, a.seconds, a.work_ms), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
