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
import skimage.data

from avatar_forcing_ros.perception import FaceMotionEstimator


def frames(width, height, n):
    """n frames of the portrait drifting a few pixels, so tracking mode has something to track."""
    face = np.ascontiguousarray(skimage.data.astronaut()[0:250, 100:350])
    side = int(0.8 * min(width, height))
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 200, np.uint8)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas[y0:y0 + side, x0:x0 + side] = face
    for i in range(n):
        dx, dy = 8 * np.sin(i / 15), 5 * np.cos(i / 20)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        yield cv2.warpAffine(canvas, shift, (width, height), borderMode=cv2.BORDER_REPLICATE)


def bench(width, height, n):
    images = list(frames(width, height, n + 10))
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
