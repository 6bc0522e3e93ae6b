"""wav2vec2 features of speech, one vector per video frame, as the released network reads them.

The model is ``transformers``' Wav2Vec2Model loaded from a LOCAL folder (the user's copy of
wav2vec2-base-960h; never a hub download). Its convolutional features (50 per second) are
resampled linearly to the video frame count, then go through the feature projection and the
transformer; the hidden states of every layer are stacked per frame (12 x 768 = 9216 for the
base model) and projected to 512 by ``AudioProjection``.

Offline the released code runs this over a whole recording. Streaming cannot see the future, so
``StreamingAudioFeatures`` runs it over a sliding window of the most recent audio (the
transformer then sees less right-context near the window's end: the features of the newest
frames differ from the offline ones; the flow network is unchanged).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import OfficialWeightsError


def normalise(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance (wav2vec2-base-960h's preprocessor: do_normalize)."""
    wav = np.asarray(wav, dtype=np.float32)
    return ((wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)).astype(np.float32)


def load_wav2vec2(folder, device: str = "cpu"):
    """transformers' Wav2Vec2Model from a local folder (config.json + weights)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise OfficialWeightsError(
            f"{folder}: no config.json; expected a local copy of wav2vec2-base-960h (config.json "
            "and model.safetensors), which this package never downloads")
    try:
        from transformers import Wav2Vec2Model
    except ImportError as exc:
        raise ImportError("the official backend needs the 'transformers' package "
                          "(pip install transformers==4.57.6)") from exc
    try:
        model = Wav2Vec2Model.from_pretrained(str(folder), local_files_only=True, use_safetensors=None)
    except OSError as exc:
        raise OfficialWeightsError(f"{folder}: could not load wav2vec2 weights ({exc})") from None
    return model.to(device).eval()


class Wav2VecFeatures:
    """Waveform (16 kHz, already normalised) -> (1, frames, layers * hidden) per video frame."""

    def __init__(self, model, samples_per_frame: int = 640):
        self.model = model
        self.samples_per_frame = samples_per_frame
        cfg = model.config
        self.dim = cfg.num_hidden_layers * cfg.hidden_size

    @torch.inference_mode()
    def __call__(self, wav: torch.Tensor, frames: int) -> torch.Tensor:
        """wav (1, n) float. Audio shorter than frames * 640 samples is padded with its last
        sample (as the released code)."""
        if wav.ndim == 1:
            wav = wav[None]
        need = frames * self.samples_per_frame
        if wav.shape[1] % need != 0:
            if wav.shape[1] > need:
                raise ValueError(f"{wav.shape[1]} samples is more than {frames} frames of audio")
            wav = F.pad(wav[:, None], (0, need - wav.shape[1]), mode="replicate")[:, 0]
        m = self.model
        conv = m.feature_extractor(wav.to(next(m.parameters()).device))     # (1, C, n / 320)
        conv = F.interpolate(conv.float(), size=frames, mode="linear", align_corners=True)
        hidden, _ = m.feature_projection(conv.transpose(1, 2))
        out = m.encoder(hidden, output_hidden_states=True, return_dict=True)
        layers = torch.stack(out.hidden_states[1:], dim=2)                 # (1, T, layers, H)
        return layers.reshape(layers.shape[0], frames, -1)


class StreamingAudioFeatures:
    """Per-frame features of a live audio stream from a sliding window of ``window_frames``."""

    def __init__(self, features: Wav2VecFeatures, window_frames: int = 50):
        self.features = features
        self.window_frames = window_frames
        self.spf = features.samples_per_frame
        self.reset()

    def reset(self) -> None:
        self.buffer = np.zeros(0, dtype=np.float32)
        self.start_frame = 0          # video frame index of buffer[0]

    def push(self, samples: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, np.asarray(samples, np.float32)])
        keep = 2 * self.window_frames * self.spf   # slack: audio may run ahead of the blocks
        extra_frames = max(0, (len(self.buffer) - keep) // self.spf)
        if extra_frames:
            self.buffer = self.buffer[extra_frames * self.spf:]
            self.start_frame += extra_frames

    def frames(self, first: int, count: int) -> torch.Tensor:
        """Features of frames [first, first+count) from the window ending at the last of them
        (silence where audio has not arrived)."""
        end = first + count
        begin = max(0, end - self.window_frames)
        lo = (begin - self.start_frame) * self.spf
        if lo < 0:
            raise ValueError(f"frame {begin} is no longer buffered (window starts at {self.start_frame})")
        wav = self.buffer[lo:(end - self.start_frame) * self.spf]
        n = (end - begin) * self.spf
        if len(wav) < n:
            wav = np.concatenate([wav, np.zeros(n - len(wav), np.float32)])
        feats = self.features(torch.from_numpy(normalise(wav))[None], end - begin)
        return feats[:, first - begin:]
