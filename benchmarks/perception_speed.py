"""Perception speed: ms per frame for face tracking + motion estimation, CPU, one thread.

    python benchmarks/perception_speed.py [--frames 200]

The astronaut portrait (scikit-image) is moved a little every frame, as a live camera would,
at 640x480 and 480x480. Prints the mean, median and 95th percentile per frame, and the share
of it spent in mediapipe (tracking) vs the estimator's own maths (PnP, features).
"""
import argparse
import time

import cv2
import numpy as np

from avatar_forcing_ros.core.perception import FaceMotionEstimator
from camera import drifting_face_frames  # benchmarks/camera.py


def bench(width, height, n):
    images = list(drifting_face_frames(width, height, n + 10))
    with FaceMotionEstimator(auto_calibration_frames=0) as est:
        for i, img in enumerate(images[:10]):  # warm-up: graph start, first detection
            est.estimate(img, i / 25)
        total, tracking, found = [], [], 0
        for i, img in enumerate(images[10:]):
            t0 = time.perf_counter()
            est.tracker.track(img)
            t1 = time.perf_counter()
            obs = est.estimate(img, (i + 10) / 25)
            t2 = time.perf_counter()
            tracking.append(t1 - t0)
            total.append(t2 - t1)
            found += obs.face_present
    total_ms, track_ms = 1000 * np.array(total), 1000 * np.array(tracking)
    print(f"{width}x{height}: {total_ms.mean():.2f} ms/frame mean, {np.median(total_ms):.2f} median, "
          f"{np.percentile(total_ms, 95):.2f} p95 (mediapipe alone {track_ms.mean():.2f}, "
          f"estimator maths {total_ms.mean() - track_ms.mean():.2f}); face in {found}/{n} frames")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    for width, height in ((640, 480), (480, 480)):
        bench(width, height, args.frames)


if __name__ == "__main__":
    main()
