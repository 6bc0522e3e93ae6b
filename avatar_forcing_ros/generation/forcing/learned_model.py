"""The learned Avatar Forcing model behind the runtime's MotionModel interface.

    model = LearnedMotionModel("models/af_forcing_v4")                       # torch, CPU
    model = LearnedMotionModel("models/af_forcing_v4/model.onnx",
                               providers=["CUDAExecutionProvider"])          # onnxruntime
    model.reset(seed=0); motion = model.next_block(conditions)               # (B, 28)

Both backends stream with the KV cache and draw the same noise from ``seed`` (numpy), so
they produce the same motion. ``mouth_temperature`` scales the articulation channels' share of
that noise (ForcingConfig.noise_scale), before either backend sees it. Bad inputs: a wrong
shape is a ValueError naming the field; non-finite values are replaced (features by 0, user
motion by neutral, presence by 0) and counted in ``nonfinite_inputs``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...core.motion import get_motion_space
from ...core.motion_model import BlockConditions, MotionModel
from .config import CheckpointError, check_guidance, check_mouth_temperature

# torch (and safetensors) are imported by the torch backend only: the .onnx path runs on
# numpy + onnxruntime, e.g. in a ROS workspace whose rosdep install has no torch.

log = logging.getLogger("avatar_forcing.model")


class LearnedMotionModel(MotionModel):
    name = "af-forcing"

    def __init__(self, path, device: str = "cpu", providers=None, guidance_scale: float | None = None,
                 steps: int | None = None, seed: int = 0, threads: int = 2,
                 audio_guidance_scale: float | None = None, mouth_temperature: float | None = None,
                 nod_guidance_scale: float | None = None):
        path = Path(path)
        self.path = path
        self.backend = "onnx" if path.suffix == ".onnx" else "torch"
        if self.backend == "torch":
            import torch

            from .checkpoint import CONFIG_FILE, load_checkpoint

            if path.is_file():
                raise CheckpointError(f"{path}: expected a checkpoint directory ({CONFIG_FILE} + model.safetensors) "
                                      "or an .onnx file")
            torch.set_num_threads(threads)
            self.net, _ = load_checkpoint(path, device)
            self.cfg = self.net.cfg
            self.device = device
            if steps is not None:
                self.cfg.sample_steps = int(steps)
        else:
            from .onnx_runner import OnnxStreamingRunner
            self.runner = OnnxStreamingRunner(path, providers, threads)
            self.cfg = self.runner.cfg
            if steps is not None and steps != self.cfg.sample_steps:
                log.warning("%s: the ONNX graph has %d steps baked in; ignoring steps=%d", path,
                            self.cfg.sample_steps, steps)
        space = get_motion_space(self.cfg.motion_space)
        if space.dim != self.cfg.motion_dim:
            raise CheckpointError(f"{path}: motion_dim {self.cfg.motion_dim} does not match {space.id} ({space.dim})")
        self.space = space
        self.fps = self.cfg.fps
        self.block_frames = self.cfg.block_frames
        self.lookahead_frames = self.cfg.lookahead_frames
        self.guidance_scale = float(self.cfg.guidance_scale if guidance_scale is None else guidance_scale)
        try:
            self.audio_guidance_scale = self._audio_scale(audio_guidance_scale)
            self.nod_guidance_scale = self._nod_scale(nod_guidance_scale)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        self.set_mouth_temperature(mouth_temperature)
        self.nonfinite_inputs = 0
        self.seed = int(seed)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        # None: the model's own seed, so a node (which restarts without one) is reproducible too
        self.rng = np.random.default_rng(self.seed if seed is None else int(seed))
        if self.backend == "torch":
            from .sampler import StreamingSampler

            # every guidance row the model has, as the ONNX graph runs: the scales can then
            # change while streaming (set_guidance) without changing the caches' shape
            self.sampler = StreamingSampler(self.net, self.guidance_scale, self.cfg.sample_steps, 1, self.device,
                                            self.audio_guidance_scale, rows=self.cfg.guidance_rows,
                                            nod_guidance=self.nod_guidance_scale)
        else:
            self.runner.reset()

    def _audio_scale(self, scale: float | None) -> float:
        """The audio guidance to use: None or negative means the model's own tuned value; a
        model without a null for its audio (avatar_drop 0) takes only 1."""
        scale = self.cfg.audio_guidance_scale if scale is None or scale < 0 else float(scale)
        if scale != 1.0 and not self.cfg.two_way:
            raise ValueError("audio guidance needs a model trained with avatar_drop > 0")
        return scale

    def _nod_scale(self, scale: float | None) -> float | None:
        """The nod guidance to use: None or negative means the model's own (which may be None:
        the user scale on every channel). An ONNX graph exported before nod guidance has no
        input for it and takes only None."""
        scale = self.cfg.nod_guidance_scale if scale is None or scale < 0 else check_guidance(scale, "nod guidance")
        if scale is not None and self.backend == "onnx" and "nod" not in self.runner.guidance_names:
            raise ValueError("this ONNX graph was exported without a nod guidance input; re-export it "
                             "(avatar-forcing export --checkpoint DIR)")
        return scale

    def set_guidance(self, scale: float | None = None, audio_scale: float | None = None,
                     nod_scale: float | None = None) -> None:
        """Change the guidance scales from the next block on (live parameters; None keeps one,
        a negative audio or nod scale is the model's own). ValueError for audio or nod
        guidance the model cannot do; nothing changes then."""
        audio = self.audio_guidance_scale if audio_scale is None else self._audio_scale(audio_scale)
        nod = self.nod_guidance_scale if nod_scale is None else self._nod_scale(nod_scale)
        if scale is not None:
            self.guidance_scale = float(scale)
        self.audio_guidance_scale, self.nod_guidance_scale = audio, nod
        if self.backend == "torch":
            self.sampler.set_guidance(self.guidance_scale, self.audio_guidance_scale, self.nod_guidance_scale)

    def set_mouth_temperature(self, value: float | None) -> None:
        """The articulation channels' sampling temperature from the next block on (a live
        parameter); None or negative: the model's own tuned value. ValueError outside [0, 2]."""
        value = self.cfg.mouth_temperature if value is None or value < 0 else check_mouth_temperature(value)
        self.mouth_temperature = float(value)
        self._noise_scale = self.cfg.noise_scale(self.mouth_temperature)

    def _checked(self, name: str, x, shape: tuple, fill) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        if a.shape != shape:
            raise ValueError(f"{self.name}: {name} has shape {a.shape}, expected {shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            self.nonfinite_inputs += int(bad.sum())
            a = np.where(bad, fill, a).astype(np.float32)
        return a

    def next_block(self, cond: BlockConditions) -> np.ndarray:
        n = cond.frames
        B, A, D = self.block_frames, self.cfg.audio_dim, self.cfg.motion_dim
        if n <= 0 or n % B:
            raise ValueError(f"{self.name}: asked for {n} frames; the network makes blocks of {B}")
        aa = self._checked("avatar_audio", cond.avatar_audio, (n, A), 0.0)
        ua = self._checked("user_audio", cond.user_audio, (n, A), 0.0)
        um = self._checked("user_motion", cond.user_motion, (n, D), self.space.neutral())
        up = np.clip(self._checked("user_present", cond.user_present, (n,), 0.0), 0.0, 1.0)
        out = [self._block(aa[s:s + B], ua[s:s + B], um[s:s + B], up[s:s + B]) for s in range(0, n, B)]
        return self.space.clip(np.concatenate(out, axis=0))

    def _block(self, aa, ua, um, up) -> np.ndarray:
        noise = self.rng.standard_normal((self.block_frames, self.cfg.motion_dim)).astype(np.float32)
        noise *= self._noise_scale
        context = None  # drawn only where the model caches noised blocks: the same stream as before otherwise
        if self.cfg.context_noise:
            context = self.rng.standard_normal((self.block_frames, self.cfg.motion_dim)).astype(np.float32)
        if self.backend == "onnx":
            return self.runner.step(aa, ua, um, up, noise, self.guidance_scale, self.audio_guidance_scale, context,
                                    self.nod_guidance_scale)
        import torch

        net, dev = self.net, self.device
        with torch.no_grad():
            t = [torch.from_numpy(a)[None].to(dev) for a in (aa, ua, um)]
            naa, nua, num = net.normalize_conditions(*t)
            x = self.sampler.step(naa, nua, num, torch.from_numpy(up)[None].to(dev),
                                  torch.from_numpy(noise)[None].to(dev),
                                  None if context is None else torch.from_numpy(context)[None].to(dev))
            return net.denormalize_motion(x)[0].cpu().numpy()
