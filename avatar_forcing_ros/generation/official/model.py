"""The official network as one object: load a weights directory, encode the avatar's portrait
once, stream latents block by block from live audio and user face crops, decode images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .audio import StreamingAudioFeatures, Wav2VecFeatures, load_wav2vec2
from .config import OfficialConfig, OfficialWeightsError
from .flow import AudioProjection, FlowTransformer
from .motion_autoencoder import MotionAutoencoder
from .sampler import FlowSampler
from .weights import WAV2VEC_DIR, load_parts, read_config


def image_to_tensor(rgb: np.ndarray, size: int) -> torch.Tensor:
    """HxWx3 uint8 RGB (already the face crop) -> (1, 3, size, size) in [-1, 1]."""
    import cv2
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [-1, 1] -> SxSx3 uint8 RGB."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 0).cpu().numpy()


class OfficialAvatarForcing:
    """Flow transformer + audio projection + motion auto-encoder + wav2vec2, in eval mode."""

    def __init__(self, cfg: OfficialConfig, flow: FlowTransformer, projection: AudioProjection,
                 autoencoder: MotionAutoencoder, wav2vec: Wav2VecFeatures, device: str = "cpu"):
        self.cfg, self.flow, self.projection, self.autoencoder = cfg, flow, projection, autoencoder
        self.wav2vec, self.device = wav2vec, device
        self.precision = "fp32"

    def set_precision(self, precision: str) -> None:
        """'fp32', 'bf16' or 'fp16': the networks run under torch.autocast in that type (as the
        released inference does with bf16 on CUDA); the sampler's state stays fp32."""
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision {precision!r}: expected fp32, bf16 or fp16")
        self.precision = precision

    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        kind = "cuda" if str(self.device).startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    @classmethod
    def load(cls, weights_dir, device: str = "cpu") -> "OfficialAvatarForcing":
        d = Path(weights_dir)
        if not d.is_dir():
            raise OfficialWeightsError(f"{d}: not a directory (expected the official weights "
                                       "directory: converted safetensors + wav2vec2-base-960h/)")
        cfg = read_config(d)
        parts = load_parts(d, cfg)
        wav2vec = Wav2VecFeatures(load_wav2vec2(d / WAV2VEC_DIR, device), cfg.samples_per_frame)
        if wav2vec.dim != cfg.audio_features:
            raise OfficialWeightsError(
                f"{d / WAV2VEC_DIR}: gives {wav2vec.dim} features per frame, the audio projection "
                f"expects {cfg.audio_features}")
        flow, proj, ae = FlowTransformer(cfg), AudioProjection(cfg.audio_features, cfg.latent_dim), \
            MotionAutoencoder(cfg)
        fl = parts["flow"]
        flow.load_state_dict({k[len("flow_transformer."):]: v for k, v in fl.items()
                              if k.startswith("flow_transformer.")}, strict=True)
        proj.load_state_dict({k[len("audio_encoder."):]: v for k, v in fl.items()
                              if k.startswith("audio_encoder.")}, strict=True)
        ae.load_state_dict({k[len("motion_autoencoder."):]: v for k, v in parts["autoencoder"].items()},
                           strict=True)
        flow, proj, ae = (m.to(device).eval().requires_grad_(False) for m in (flow, proj, ae))
        return cls(cfg, flow, proj, ae, wav2vec, device)

    def sampler(self, nfe: int | None = None, seed: int = 0, **kw) -> FlowSampler:
        return FlowSampler(self.flow, nfe=nfe, seed=seed, **kw)

    @torch.inference_mode()
    def audio_features(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """Normalised 16 kHz waveform (1, n) -> projected features (1, frames, 512)."""
        return self.projection(self.wav2vec(wav.to(self.device), frames))

    def streaming_audio(self, window_frames: int | None = None) -> StreamingAudioFeatures:
        return StreamingAudioFeatures(self.wav2vec, window_frames or self.cfg.clip_frames)


class OfficialStream:
    """One conversation: the portrait encoded once, then block after block from raw audio and
    user face crops; each block's latents and (optionally) its decoded 512x512 frames."""

    def __init__(self, model: OfficialAvatarForcing, portrait_rgb: np.ndarray, nfe: int | None = None,
                 seed: int = 0, audio_window_frames: int | None = None):
        self.model, cfg = model, model.cfg
        self.cfg = cfg
        with torch.inference_mode():
            image = image_to_tensor(portrait_rgb, cfg.image_size).to(model.device)
            self.code, self.identity, self.feats = model.autoencoder.encode_identity(image)
        self.sampler = model.sampler(nfe=nfe, seed=seed)
        self.sampler.reset(self.identity)
        self.avatar_audio = model.streaming_audio(audio_window_frames)
        self.user_audio = model.streaming_audio(audio_window_frames)
        self.user_motion: list[torch.Tensor] = []    # per frame (512,), the newest window only
        self.user_motion_start = 0
        self.next_frame = 0                          # first frame of the next block's new frames

    def push_audio(self, avatar: np.ndarray | None = None, user: np.ndarray | None = None) -> None:
        """16 kHz float samples as they arrive (the same count of each keeps them aligned)."""
        if avatar is not None:
            self.avatar_audio.push(avatar)
        if user is not None:
            self.user_audio.push(user)

    @torch.inference_mode()
    def push_user_face(self, crop_rgb: np.ndarray | None) -> None:
        """The user's face crop of the next video frame (None: no face seen: zero motion)."""
        if crop_rgb is None:
            self.push_user_motion(None)
        else:
            self.push_user_motion(self.model.autoencoder.encode_motion(
                image_to_tensor(crop_rgb, self.cfg.image_size).to(self.model.device))[0])

    def push_user_motion(self, latent) -> None:
        """The user's motion latent (512,) of the next video frame, or None (no user: zeros,
        the unconditioned input the network was trained with)."""
        if latent is None:
            m = torch.zeros(self.cfg.latent_dim)
        else:
            m = torch.as_tensor(np.asarray(latent, np.float32) if not torch.is_tensor(latent)
                                else latent).float().reshape(-1).cpu()
        self.user_motion.append(m)
        keep = self.cfg.clip_frames
        if len(self.user_motion) > keep:
            drop = len(self.user_motion) - keep
            self.user_motion = self.user_motion[drop:]
            self.user_motion_start += drop

    @property
    def frames_needed(self) -> int:
        return self.sampler.frames_needed

    def _motion_window(self, first: int, count: int) -> torch.Tensor:
        rows = []
        for f in range(first, first + count):
            i = f - self.user_motion_start
            if 0 <= i < len(self.user_motion):
                rows.append(self.user_motion[i])
            elif self.user_motion and i >= len(self.user_motion):
                rows.append(self.user_motion[-1])     # not arrived yet: the newest (replicate)
            else:
                rows.append(torch.zeros(self.cfg.latent_dim))
        return torch.stack(rows)[None]

    @torch.inference_mode()
    def next_block(self) -> torch.Tensor:
        """Latents (1, n, 512) of the next frames (50 first, then 10 per block)."""
        cfg, m = self.cfg, self.model
        count = self.sampler.frames_needed
        first = self.next_frame - (0 if self.sampler.first else cfg.context_frames)
        with m.autocast():
            a = m.projection(self.avatar_audio.frames(first, count).to(m.device))
            u = m.projection(self.user_audio.frames(first, count).to(m.device))
        um = self._motion_window(first, count).to(m.device)
        with m.autocast():
            out = self.sampler.next_block(a.float(), u.float(), um).float()
        self.next_frame += out.shape[1]
        return out

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> list[np.ndarray]:
        """(1, n, 512) -> n images SxSx3 uint8 RGB."""
        with self.model.autocast():
            images = self.model.autoencoder.decode(self.code, latents[0].to(self.model.device), self.feats)
        return [tensor_to_image(x) for x in images]
