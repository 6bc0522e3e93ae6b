"""End-to-end figures of the ROS pipeline over real DDS (three node processes).

    source scripts/env.sh && python benchmarks/pipeline_latency.py [--model procedural] [--onsets 20]

Prints: per-node processing time (p50/p95, from each node's /diagnostics), the stylised
renderer's fps at 480x480 on one thread, and the end-to-end latency from publishing the audio
chunk where speech starts to receiving the first avatar image with an open mouth (p50/p95).
Targets (issue 2): renderer >= 60 fps on one core; end-to-end p95 <= 150 ms on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the test harness starts and drives the same processes

from ros_helpers import NodeProcess, RosTestContext, ros_test_environment, unique_topic, wait_for  # noqa: E402

DOMAIN = random.SystemRandom().randint(101, 200)
os.environ.update(ros_test_environment(DOMAIN))  # loopback discovery only, before rclpy starts

from pipeline_driver import CHUNK, SR, PipelineDriver, mouth_cavity_pixels, node_args, pcm16  # noqa: E402


def renderer_fps(seconds: float = 3.0) -> float:
    import cv2

    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

    cv2.setNumThreads(1)
    r = StylisedFaceRenderer(width=480, height=480)
    rng = np.random.default_rng(0)
    frames, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        r.render(M.clip(rng.uniform(-0.3, 1.0, M.dim).astype(np.float32)))
        frames += 1
    return frames / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="procedural", help="generator model parameter")
    p.add_argument("--onsets", type=int, default=20, help="speech onsets to time")
    p.add_argument("--block-frames", type=int, default=2, help="generator block_frames")
    p.add_argument("--output-delay", type=float, default=0.1, help="generator output_delay_s")
    a = p.parse_args()

    print(f"stylised renderer, 480x480, 1 thread: {renderer_fps():.0f} fps")

    ros = RosTestContext(DOMAIN)
    ns = unique_topic("bench")
    logs = Path(tempfile.mkdtemp(prefix="af_bench_"))
    nodes = [NodeProcess(f"avatar_forcing_ros.ros.{n}", node_args(ns, *extra), log_path=logs / f"{n}.log")
             for n, extra in (("perception_node", ()), ("generator_node", (f"model:={a.model}", f"block_frames:={a.block_frames}",
                                                   f"output_delay_s:={a.output_delay}")),
                              ("renderer_node", ()))]
    try:
        drv = PipelineDriver(ros, ns, compressed=False)  # the renderer skips unwanted JPEGs
        drv.wait_connected(["camera", "mic", "speech"], nodes)
        wait_for(lambda: drv.images, timeout=60, spin=ros, processes=nodes, what="a first image")
        from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

        renderer = StylisedFaceRenderer()
        from avatar_forcing_ros.corpus.speech import synthesize

        # A spoken "ah" (espeak-ng), so that the learned model, trained on speech, opens up too.
        ah = synthesize("Ah!", voice="en-us").audio
        start = int(np.argmax(np.abs(ah) > 0.02))
        burst = ah[start:start + int(0.4 * SR)]
        silence = pcm16(np.zeros(CHUNK, np.float32))
        latencies, presented = [], []
        drv.stream(1.0, processes=nodes)  # warm up: camera + silence
        for _ in range(a.onsets):
            seen = len(drv.images)
            t0 = time.time()
            for k in range(burst.size // CHUNK):  # the burst in real time, as a microphone would:
                deadline = t0 + (k + 1) * CHUNK / SR  # a chunk goes out once its last sample is in
                while time.time() < deadline:
                    ros.spin_once(0.002)
                drv.pub["speech"].publish(drv.audio_msg(pcm16(burst[k * CHUNK:(k + 1) * CHUNK])))
                drv.pub["mic"].publish(drv.audio_msg(silence))
                if k == 0:
                    t_pub = time.time()  # latency counts from the first speech chunk's publish
            drv.stream(1.1, processes=nodes)  # silence: the mouth closes again
            opened = [i for i in range(seen, len(drv.images))
                      if mouth_cavity_pixels(drv.images[i], renderer) > 20]
            if opened:
                img = drv.images[opened[0]]
                stamp = img.header.stamp.sec + img.header.stamp.nanosec * 1e-9
                latencies.append(drv.image_times[opened[0]] - t_pub)
                presented.append(stamp - t_pub)
        time.sleep(1.2)  # one more diagnostics period
        for _ in range(50):
            ros.spin_once(0.02)
        print(f"\nprocessing time per frame (node diagnostics, p50 / p95), model {a.model}:")
        for node in ("perception", "generator", "renderer"):
            for array_msg in reversed(drv.diagnostics):
                st = next((s for s in array_msg.status if s.hardware_id == f"{ns}/{node}"), None)
                if st:
                    kv = {k.key: k.value for k in st.values}
                    print(f"  {node:10s} {kv['latency p50 (ms)']:>6s} / {kv['latency p95 (ms)']:>6s} ms"
                          f"   ({'; '.join(f'{k}={v}' for k, v in kv.items() if k.startswith(('rate', 'speech audio q', 'user audio q')))})")
                    break
        lat = np.array(latencies) * 1e3
        print(f"\nend-to-end, speech onset chunk published -> first open-mouth image received "
              f"({len(lat)}/{a.onsets} onsets seen):")
        if lat.size:
            print(f"  p50 {np.percentile(lat, 50):.0f} ms   p95 {np.percentile(lat, 95):.0f} ms   "
                  f"max {lat.max():.0f} ms   (target p95 <= 150 ms)")
            pres = np.array(presented) * 1e3
            print(f"  of which until the frame's presentation stamp (block + output delay): "
                  f"p50 {np.percentile(pres, 50):.0f} ms; rendering + DDS after it: "
                  f"p50 {np.percentile(lat - pres, 50):.0f} ms")
    finally:
        for n in nodes:
            n.stop()
        ros.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
