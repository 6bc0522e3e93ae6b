"""The user's camera through the official motion encoder (perception with the official backend).

The released code crops the user's face as a square of twice the detected face box around its
centre (``pad_ratio`` 1), resized to 512x512, and encodes it with the motion auto-encoder's
encoder into the 512-d motion latent. Here the face box comes from the package's face tracker
(mediapipe face mesh: the landmarks' bounding box) instead of the release's face detector.
"""
from __future__ import annotations

import numpy as np

from ...core.motion import AVATARFORCING_LATENT_512
from ...core.perception import FaceObservation, FaceTracker


def face_crop(rgb: np.ndarray, box: tuple[float, float, float, float], pad_ratio: float = 1.0) -> np.ndarray:
    """Square crop of (1 + pad_ratio) x the larger half-side of ``box`` (x0, y0, x1, y1) around
    its centre, kept inside the image (as the released preprocessing)."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    half = max((x1 - x0) / 2, (y1 - y0) / 2) * (1 + pad_ratio)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ax0, ay0 = max(int(cx - half), 0), max(int(cy - half), 0)
    ax1, ay1 = min(int(cx + half), w), min(int(cy + half), h)
    s = min(ax1 - ax0, ay1 - ay0) // 2
    mx, my = ax0 + (ax1 - ax0) // 2, ay0 + (ay1 - ay0) // 2
    return rgb[my - s:my + s, mx - s:mx + s]


class OfficialFaceEncoder:
    """Camera frames -> the user's motion latent (motion space avatarforcing-latent-512):
    the ``estimator`` of the perception stage when the official backend is active."""

    space = AVATARFORCING_LATENT_512

    def __init__(self, weights_dir, device: str = "cpu", tracker: FaceTracker | None = None):
        import torch

        from .model import image_to_tensor
        from .motion_autoencoder import MotionAutoencoder
        from .weights import load_parts, read_config
        self.torch, self._to_tensor = torch, image_to_tensor
        self.cfg = read_config(weights_dir)
        ae = MotionAutoencoder(self.cfg)
        ae.load_state_dict({k[len("motion_autoencoder."):]: v
                            for k, v in load_parts(weights_dir, self.cfg)["autoencoder"].items()}, strict=True)
        self.autoencoder = ae.to(device).eval().requires_grad_(False)
        self.device = device
        self.tracker = tracker or FaceTracker()

    def estimate(self, rgb: np.ndarray, timestamp: float) -> FaceObservation:
        pts = self.tracker.track(rgb)
        if pts is None or not np.isfinite(pts).all():
            return FaceObservation(self.space.neutral(), 0.0, False)
        crop = face_crop(rgb, (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()))
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return FaceObservation(self.space.neutral(), 0.0, False)
        latent = self.autoencoder.encode_motion(
            self._to_tensor(np.ascontiguousarray(crop), self.cfg.image_size).to(self.device))[0]
        return FaceObservation(latent.float().cpu().numpy(), 1.0, True)

    def close(self) -> None:
        self.tracker.close()
