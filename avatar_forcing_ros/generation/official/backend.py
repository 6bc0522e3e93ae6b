"""The official network in the generator's motion-model slot (``model: avatarforcing:<dir>``).

The streaming runtime asks for 10-frame blocks (the network's own block) with the raw audio of
each block; this model keeps the network's state: its KV cache, the 2 context frames and a
sliding window of audio for wav2vec2. The released network starts with a 50-frame block: the
first 40 frames of a stream are the portrait at rest (zero motion) while its conditions
gather; the 50-frame block is made with the fifth runtime block, whose 10 frames it returns.
Output: the 512-d motion latent per frame (motion space ``avatarforcing-latent-512``), which
the ``avatarforcing`` renderer decodes with the same portrait.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...core.motion import AVATARFORCING_LATENT_512
from ...core.motion_model import BlockConditions, MotionModel
from .config import OfficialWeightsError
from .model import OfficialAvatarForcing, OfficialStream

SPEC_PREFIX = "avatarforcing:"
PORTRAIT_NAMES = ("portrait.png", "portrait.jpg", "portrait.jpeg")


def portrait_rgb(weights_dir, path: str | None = None) -> np.ndarray:
    """The avatar's portrait, HxWx3 RGB: ``path`` if given, else <dir>/portrait.png|jpg, else
    scikit-image's public-domain astronaut (the portrait renderer's default); centre square."""
    import cv2
    candidates = [Path(path)] if path else [Path(weights_dir) / n for n in PORTRAIT_NAMES]
    for c in candidates:
        if c.is_file():
            bgr = cv2.imread(str(c), cv2.IMREAD_COLOR)
            if bgr is None:
                raise OfficialWeightsError(f"{c}: not an image OpenCV can read")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            break
    else:
        if path:
            raise FileNotFoundError(f"portrait {path} does not exist")
        from skimage import data
        rgb = data.astronaut()
    h, w = rgb.shape[:2]
    s = min(h, w)
    return np.ascontiguousarray(rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])


class OfficialMotionModel(MotionModel):
    name = "avatarforcing"
    space = AVATARFORCING_LATENT_512

    def __init__(self, weights_dir, device: str = "cpu", seed: int = 0, nfe: int | None = None,
                 threads: int = 2, portrait_path: str | None = None):
        if device == "cpu":
            torch.set_num_threads(max(1, int(threads)))
        self.weights_dir = Path(weights_dir)
        self.network = OfficialAvatarForcing.load(weights_dir, device=device)
        # on a GPU in bf16 as the released inference (autocast); fp32 on a CPU
        self.network.set_precision("bf16" if str(device).startswith("cuda") else "fp32")
        self.cfg = self.network.cfg
        self.fps = float(self.cfg.fps)
        self.block_frames = self.cfg.block_frames
        self.portrait = portrait_rgb(weights_dir, portrait_path)
        self.nfe, self.seed = nfe, seed
        self.stream: OfficialStream | None = None
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.stream = OfficialStream(self.network, self.portrait, nfe=self.nfe,
                                     seed=self.seed if seed is None else seed)
        self._pushed = 0                 # frames of conditions given so far
        self._ready: list[np.ndarray] = []

    def next_block(self, cond: BlockConditions) -> np.ndarray:
        b, spf = cond.frames, self.cfg.samples_per_frame
        zeros = np.zeros(b * spf, np.float32)
        avatar = cond.avatar_wave if cond.avatar_wave is not None else zeros
        user = cond.user_wave if cond.user_wave is not None else zeros
        self.stream.push_audio(np.asarray(avatar, np.float32)[: b * spf], np.asarray(user, np.float32)[: b * spf])
        for k in range(b):
            present = cond.user_present[k] > 0 and cond.user_motion.shape[-1] == self.cfg.latent_dim
            self.stream.push_user_motion(cond.user_motion[k] if present else None)
        self._pushed += b
        s, start = self.stream, self._pushed - b
        while self._pushed >= s.next_frame + (self.cfg.clip_frames if s.sampler.first else self.cfg.block_frames):
            self._ready.extend(s.next_block()[0].cpu().numpy())
        ready_start = s.next_frame - len(self._ready)      # frame index of self._ready[0]
        out = np.zeros((b, self.space.dim), np.float32)  # at rest until the first block is made
        for k in range(b):
            i = start + k - ready_start
            if 0 <= i < len(self._ready):
                out[k] = self._ready[i]
        self._ready = []     # earlier frames were returned (at rest), later ones are never made early
        return out


def load_official_motion_model(spec: str, *, device: str = "cpu", seed: int = 0, threads: int = 2):
    weights_dir = spec[len(SPEC_PREFIX):]
    if not weights_dir:
        raise ValueError("model 'avatarforcing:<dir>': the directory of the official weights is missing")
    return OfficialMotionModel(weights_dir, device=device, seed=seed, threads=threads)
