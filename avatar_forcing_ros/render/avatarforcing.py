"""Renderer ``avatarforcing``: the official network's motion latents -> photo frames.

The motion auto-encoder of the user's official weights decodes each 512-d latent (motion
space ``avatarforcing-latent-512``, from the generator's ``avatarforcing:<dir>`` model) with
the avatar's portrait, encoded once at start: 512x512 RGB, resized to the configured size.
The portrait must be the one the generator uses (<dir>/portrait.png|jpg, or the same file).
"""
from __future__ import annotations

import numpy as np

from ..core.motion import AVATARFORCING_LATENT_512


class OfficialLatentRenderer:
    space = AVATARFORCING_LATENT_512

    def __init__(self, weights_dir: str, portrait_path: str | None = None, width: int = 512,
                 height: int = 512, device: str = "cpu"):
        import torch

        from ..generation.official.backend import portrait_rgb
        from ..generation.official.config import OfficialWeightsError
        from ..generation.official.model import image_to_tensor
        from ..generation.official.motion_autoencoder import MotionAutoencoder
        from ..generation.official.weights import load_parts, read_config

        if not weights_dir:
            raise OfficialWeightsError("renderer avatarforcing: avatarforcing_dir is empty (the "
                                       "directory of the converted official weights)")
        self.torch, self.width, self.height, self.device = torch, int(width), int(height), device
        cfg = read_config(weights_dir)
        weights = load_parts(weights_dir, cfg)["autoencoder"]
        ae = MotionAutoencoder(cfg)
        ae.load_state_dict({k[len("motion_autoencoder."):]: v for k, v in weights.items()}, strict=True)
        self.autoencoder = ae.to(device).eval().requires_grad_(False)
        self.cfg = cfg
        portrait = image_to_tensor(portrait_rgb(weights_dir, portrait_path), cfg.image_size)
        self.code, _, self.feats = self.autoencoder.encode_identity(portrait.to(device))

    def render(self, values: np.ndarray) -> np.ndarray:
        import cv2

        from ..generation.official.model import tensor_to_image
        latent = self.torch.from_numpy(np.asarray(values, np.float32).reshape(1, -1)).to(self.device)
        on_gpu = str(self.device).startswith("cuda")   # bf16 on a GPU, as the released inference
        with self.torch.autocast("cuda" if on_gpu else "cpu", dtype=self.torch.bfloat16, enabled=on_gpu):
            rgb = tensor_to_image(self.autoencoder.decode(self.code, latent, self.feats)[0])
        if rgb.shape[:2] != (self.height, self.width):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return rgb

    def close(self) -> None:
        pass
