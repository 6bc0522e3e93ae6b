"""Diffusion-forcing training of the Avatar Forcing network on a dyadic dataset.

    avatar-forcing train --data corpus/train --out runs/af --steps 1400 --user-noise 0.5

Random windows of W frames; every block of a window gets its own noise level; the network
learns the flow-matching velocity under the block-causal mask; the user stream is replaced by
the learned null with probability cond_drop (for classifier-free guidance). AdamW, cosine LR
with warm-up, gradient clipping, resumable safetensors checkpoints. Multi-GPU: run under
``torchrun --nproc_per_node=K``; with WORLD_SIZE > 1 the model is wrapped in DDP.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ...core.audio import LogMelFeatures
from .checkpoint import load_checkpoint, load_optimizer_state, read_config, save_checkpoint
from .config import ForcingConfig
from .flow import block_noise_levels, flow_matching_loss
from .network import AvatarForcingNet, block_causal_mask
from .tracker_noise import TrackerNoise

log = logging.getLogger("avatar_forcing.train")


@dataclass
class SessionArrays:
    """One session as per-frame training arrays (all at the video frame rate, T frames)."""
    avatar_audio: np.ndarray   # (T, 41) LogMelFeatures of the avatar's speech
    user_audio: np.ndarray     # (T, 41)
    user_motion: np.ndarray    # (T, 28)
    user_present: np.ndarray   # (T,)
    avatar_motion: np.ndarray  # (T, 28) the target
    name: str = ""

    def __post_init__(self):
        for field in ("avatar_audio", "user_audio", "user_motion", "user_present", "avatar_motion"):
            setattr(self, field, np.ascontiguousarray(getattr(self, field), dtype=np.float32))
        T = self.avatar_motion.shape[0]
        for field in ("avatar_audio", "user_audio", "user_motion", "user_present"):
            a = getattr(self, field)
            if a.shape[0] != T:
                raise ValueError(f"session {self.name!r}: {field} has {a.shape[0]} frames, motion has {T}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"session {self.name!r}: {field} has non-finite values")

    @property
    def frames(self) -> int:
        return int(self.avatar_motion.shape[0])


def _pcm_to_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    return x.astype(np.float32)


def session_arrays(session, features: LogMelFeatures | None = None) -> SessionArrays:
    """A DyadicSession (corpus/dataset.py) -> training arrays; audio becomes LogMelFeatures."""
    features = features or LogMelFeatures()
    motion = np.asarray(session.avatar_motion, dtype=np.float32)
    T = motion.shape[0]
    a = features.frames(_pcm_to_float(session.avatar_audio))[:T]
    u = features.frames(_pcm_to_float(session.user_audio))[:T]
    if a.shape[0] != T or u.shape[0] != T:
        raise ValueError(f"session {getattr(session, 'name', '?')!r}: audio gives {a.shape[0]}/{u.shape[0]} "
                         f"feature frames, motion has {T}")
    return SessionArrays(a, u, np.asarray(session.user_motion, np.float32),
                         np.asarray(session.user_present, np.float32), motion,
                         name=str(getattr(session, "name", "")))


@dataclass(frozen=True)
class AudioAugmentation:
    """What a robot's microphone and loudspeaker chain does to speech, drawn per session copy:
    a gain (the model must not read loudness as mouth opening), a spectral tilt (a first-order
    filter: microphone and voice timbre), additive noise (room, fans), and clipping."""
    gain_db: tuple = (-24.0, 6.0)
    tilt: tuple = (-0.7, 0.7)       # y[n] = x[n] + a x[n-1]: a < 0 brightens, a > 0 darkens
    noise_prob: float = 0.6
    noise_dbfs: tuple = (-75.0, -40.0)  # RMS of the added noise, dB re full scale

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = np.asarray(x, np.float32)
        a = float(rng.uniform(*self.tilt))
        y = x.copy()
        y[1:] += a * x[:-1]
        y *= np.float32(10.0 ** (rng.uniform(*self.gain_db) / 20.0) / (1.0 + abs(a)))
        if rng.random() < self.noise_prob:
            noise = rng.standard_normal(x.size).astype(np.float32)
            if rng.random() < 0.5:  # pink-ish (brown-filtered) rather than white
                noise = np.cumsum(noise - noise.mean()).astype(np.float32)
                noise -= np.convolve(noise, np.ones(64) / 64, mode="same").astype(np.float32)
            noise *= np.float32(10.0 ** (rng.uniform(*self.noise_dbfs) / 20.0) / (noise.std() + 1e-9))
            y += noise
        return np.clip(y, -1.0, 1.0)


@dataclass(frozen=True)
class FeatureTimbre:
    """A voice's and a microphone's timbre on the features, drawn per training window and
    stream: a level and a smooth curve across the mel bands (a few cosines), applied to the
    power under the log (so silence stays at the floor), so that the mouth is read from how the
    sound changes rather than from the spectrum of the synthesizers heard in training."""
    level: float = 0.7     # sd of the overall offset, ln power (0.7 = 3 dB)
    curve: float = 0.35    # sd of each cosine's weight, ln power
    cosines: int = 4

    def apply(self, feats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, n_mels + 1) LogMelFeatures -> the same sound through another timbre."""
        n_mels = feats.shape[1] - 1
        bands = np.arange(n_mels) / max(n_mels - 1, 1)
        level = rng.normal(0.0, self.level)
        curve = sum(rng.normal(0.0, self.curve) * np.cos(np.pi * k * bands) for k in range(1, self.cosines + 1))
        out = np.array(feats, np.float64)
        mel_floor, rms_floor = LogMelFeatures.MEL_FLOOR, LogMelFeatures.RMS_FLOOR
        power = np.maximum(np.exp(out[:, :n_mels]) - mel_floor, 0.0)
        out[:, :n_mels] = np.log(power * np.exp(level + curve) + mel_floor)
        amplitude = np.maximum(np.exp(out[:, n_mels]) - rms_floor, 0.0)  # log RMS: half the log power
        out[:, n_mels] = np.log(amplitude * np.exp(level / 2) + rms_floor)
        return out.astype(np.float32)


def augmented_arrays(session, copies: int, seed: int, augmentation: AudioAugmentation | None = None,
                     features: LogMelFeatures | None = None) -> list[SessionArrays]:
    """``copies`` versions of a session whose audio (both sides, independently) went through
    random AudioAugmentation; the motion is shared. Features are computed from the augmented
    waveforms by the same LogMelFeatures the runtime uses."""
    features = features or LogMelFeatures()
    augmentation = augmentation or AudioAugmentation()
    rng = np.random.default_rng([int(seed), zlib.crc32(str(getattr(session, "name", "")).encode())])
    motion = np.asarray(session.avatar_motion, dtype=np.float32)
    T = motion.shape[0]
    out = []
    for k in range(copies):
        a = features.frames(augmentation.apply(_pcm_to_float(session.avatar_audio), rng))[:T]
        u = features.frames(augmentation.apply(_pcm_to_float(session.user_audio), rng))[:T]
        out.append(SessionArrays(a, u, np.asarray(session.user_motion, np.float32),
                                 np.asarray(session.user_present, np.float32), motion,
                                 name=f"{getattr(session, 'name', '')}~aug{k}"))
    return out


def load_sessions(path, augment_copies: int = 0, seed: int = 0) -> list[SessionArrays]:
    """The sessions of a dataset as training arrays, plus ``augment_copies`` audio-augmented
    copies of each (see AudioAugmentation)."""
    if not (Path(path) / "dataset.json").is_file():
        raise FileNotFoundError(f"{path}: no dataset.json (expected an af-dyadic-v1 dataset directory)")
    from ...corpus.dataset import load_dataset  # the dataset module validates files and shapes
    out = []
    features = LogMelFeatures()
    for s in load_dataset(path):
        out.append(session_arrays(s, features))
        if augment_copies:
            out.extend(augmented_arrays(s, augment_copies, seed, features=features))
    return out


def compute_stats(sessions: list[SessionArrays]) -> dict[str, np.ndarray]:
    """Mean/std per channel over all frames; std floored so constant channels stay finite."""
    stats = {}
    for name, field in (("avatar_audio", "avatar_audio"), ("user_audio", "user_audio"),
                        ("user_motion", "user_motion"), ("motion", "avatar_motion")):
        x = np.concatenate([getattr(s, field) for s in sessions], axis=0).astype(np.float64)
        stats[f"{name}_mean"] = x.mean(axis=0).astype(np.float32)
        stats[f"{name}_std"] = np.maximum(x.std(axis=0), 1e-2).astype(np.float32)
    return stats


def set_stats(net: AvatarForcingNet, stats: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        for k, v in stats.items():
            getattr(net, k).copy_(torch.from_numpy(v))


class WindowSampler:
    """Random W-frame windows from the sessions (sessions picked in proportion to length).
    ``lookahead`` L: the conditions of a window are taken L frames later than its motion, so
    motion frame t is learned from the inputs up to t + L (ForcingConfig.lookahead_frames)."""

    def __init__(self, sessions: list[SessionArrays], window: int, seed: int = 0, user_noise: float = 0.0,
                 timbre: float = 0.0, lookahead: int = 0, tracker: TrackerNoise | None = None):
        self.user_noise = float(user_noise)  # probability per window of TrackerNoise on the user's motion
        # the tracker's figures: given (TrackerNoise.from_file, per channel) or the built-in ones
        self.tracker = (tracker or TrackerNoise()) if self.user_noise > 0 else None
        self.timbre_p = float(timbre)  # probability per window and audio stream of FeatureTimbre
        self.timbre = FeatureTimbre() if self.timbre_p > 0 else None
        self.noise_rng = np.random.default_rng([seed, 1])  # its own: the windows drawn stay the same
        self.lookahead = int(lookahead)
        span = window + self.lookahead
        self.sessions = [s for s in sessions if s.frames >= span]
        if not self.sessions:
            raise ValueError(f"no session has at least {span} frames (the training window and the look-ahead)")
        self.window = window
        self.rng = np.random.default_rng(seed)
        lengths = np.array([s.frames - span + 1 for s in self.sessions], dtype=np.float64)
        self.p = lengths / lengths.sum()

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        out = {k: [] for k in ("avatar_audio", "user_audio", "user_motion", "user_present", "avatar_motion")}
        for i in self.rng.choice(len(self.sessions), size=n, p=self.p):
            s = self.sessions[i]
            start = int(self.rng.integers(0, s.frames - self.window - self.lookahead + 1))
            for k in out:
                at = start if k == "avatar_motion" else start + self.lookahead
                out[k].append(getattr(s, k)[at:at + self.window])
            if self.tracker is not None and self.noise_rng.random() < self.user_noise:
                out["user_motion"][-1], out["user_present"][-1] = self.tracker.apply(
                    out["user_motion"][-1], out["user_present"][-1], self.noise_rng)
            for k in ("avatar_audio", "user_audio"):
                if self.timbre is not None and self.noise_rng.random() < self.timbre_p:
                    out[k][-1] = self.timbre.apply(out[k][-1], self.noise_rng)
        return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}


def training_loss(net: AvatarForcingNet, batch: dict, generator: torch.Generator | None = None,
                  device="cpu") -> torch.Tensor:
    """Diffusion-forcing flow-matching loss of one batch of raw (un-normalised) windows."""
    raw = net.module.net if hasattr(net, "module") else net  # DDP wraps _DDPLoss(network)
    cfg = raw.cfg
    b = {k: v.to(device) for k, v in batch.items()}
    n, T, _ = b["avatar_motion"].shape
    aa, ua, um = raw.normalize_conditions(b["avatar_audio"], b["user_audio"], b["user_motion"])
    x0 = raw.normalize_motion(b["avatar_motion"])
    drop = torch.rand(n, generator=generator) < cfg.cond_drop
    drop_avatar = None
    if cfg.two_way:
        # the avatar's audio dropped alone, and half of those times with the user too: the
        # (-, -) row of two-way guidance must be trained as well as (a, -) and (a, u)
        drop_avatar = torch.rand(n, generator=generator) < cfg.avatar_drop
        drop = drop | (drop_avatar & (torch.rand(n, generator=generator) < 0.5))
        drop_avatar = drop_avatar.to(device)
    drop = drop.to(device)
    t = block_noise_levels(n, T, cfg.block_frames, cfg.clean_context_prob, generator).to(device)
    eps = torch.randn(x0.shape, generator=generator).to(device)
    mask = block_causal_mask(T, cfg.block_frames, cfg.context_blocks, device)
    if net is raw:
        cond, _ = raw.encode(aa, ua, um, b["user_present"], drop, drop_avatar=drop_avatar)
        return flow_matching_loss(raw, x0, eps, t, cond, mask)
    return net(x0, eps, t, (aa, ua, um, b["user_present"], drop, None, drop_avatar), mask)  # DDP: see _DDPLoss


class _DDPLoss(torch.nn.Module):
    """Wraps encode + loss in one forward so DDP sees every parameter used in one call."""

    def __init__(self, net: AvatarForcingNet):
        super().__init__()
        self.net = net

    def forward(self, x0, eps, t, cond_inputs, mask):
        cond, _ = self.net.encode(*cond_inputs)
        return flow_matching_loss(self.net, x0, eps, t, cond, mask)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: ForcingConfig, sessions: list[SessionArrays], out_dir=None, steps: int = 1000,
          batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.01, warmup: int = 100,
          grad_clip: float = 1.0, device: str = "cpu", seed: int = 0, resume: bool = False,
          log_every: int = 50, ckpt_every: int = 500, progress: bool = True,
          metadata: dict | None = None, user_noise: float = 0.0,
          timbre: float = 0.0, tracker: TrackerNoise | None = None) -> tuple[AvatarForcingNet, list[dict]]:
    """Train (or resume) and return the network and the logged history."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
    torch.manual_seed(seed + rank)
    gen = torch.Generator().manual_seed(seed + 1000 * rank)
    start = 0
    if resume and out_dir and (Path(out_dir) / "model.safetensors").is_file():
        net, meta = load_checkpoint(out_dir, device, cfg.motion_space, cfg.motion_dim, cfg.audio_dim)
        net.train()
        cfg = net.cfg
        log.info("resuming from %s at step %d", out_dir, meta.get("step", 0))
    else:
        net = AvatarForcingNet(cfg)
        set_stats(net, compute_stats(sessions))
        net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    if resume and out_dir:
        start = load_optimizer_state(out_dir, opt)
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(_DDPLoss(net))
    windows = WindowSampler(sessions, cfg.window_frames, seed + rank, user_noise, timbre, cfg.lookahead_frames,
                            tracker)
    history: list[dict] = []
    log_path = Path(out_dir) / "train_log.jsonl" if out_dir and rank == 0 else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"n_params": net.param_count(), "batch_size": batch_size * world, "lr": lr,
            "sessions": len(sessions), "frames": int(sum(s.frames for s in sessions)), **(metadata or {})}
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=steps, initial=start, desc="train", unit="step")
    t0 = time.time()
    running = None
    net.train()
    for step in range(start, steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        loss = training_loss(model, windows.batch(batch_size), gen, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if bar:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
        if (step + 1) % log_every == 0 or step + 1 == steps:
            rec = {"step": step + 1, "loss": round(loss.item(), 5), "loss_smooth": round(running, 5),
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.time() - t0, 1)}
            history.append(rec)
            if log_path:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            log.debug("%s", rec)
        if out_dir and rank == 0 and ((step + 1) % ckpt_every == 0 or step + 1 == steps):
            save_checkpoint(out_dir, net, step + 1, opt, meta)
    if bar:
        bar.close()
    if world > 1:
        import torch.distributed as dist
        dist.destroy_process_group()
    return net.eval(), history


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatar-forcing train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dyadic dataset directory (af-dyadic-v1)")
    p.add_argument("--out", required=True, help="checkpoint directory to write (and resume from)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--ckpt-every", type=int, default=500)
    p.add_argument("--augment", type=int, default=0,
                   help="audio-augmented copies per session (gain, tilt, noise, clipping) added to the data")
    p.add_argument("--timbre", type=float, default=0.0,
                   help="probability per training window and audio stream that the features go through "
                        "FeatureTimbre (another voice's and microphone's level and spectral curve)")
    p.add_argument("--user-noise", type=float, default=0.0,
                   help="probability per training window that the user's motion goes through TrackerNoise "
                        "(the measured face tracker's lag, calibration, noise, dropouts); 0: off")
    p.add_argument("--tracker-stats", default=None,
                   help="the tracker's figures for --user-noise, channel by channel: a tracker_stats.json "
                        "that perceive-corpus wrote beside a perceived copy of training sessions "
                        "(default: the built-in per-group figures)")
    p.add_argument("--config", help="JSON file of ForcingConfig fields (overridden by the flags below)")
    for name, typ in (("layers", int), ("width", int), ("heads", int), ("block", int), ("window", int),
                      ("cache", int), ("cond-drop", float), ("steps-sample", int), ("guidance", float),
                      ("avatar-drop", float), ("audio-guidance", float), ("lookahead", int),
                      ("cond-encoder", str)):
        p.add_argument(f"--{name}", type=typ)
    return p


def config_from_args(args) -> ForcingConfig:
    d = ForcingConfig().to_dict()
    if args.config:
        d.update(json.loads(Path(args.config).read_text()))
    for flag, key in (("layers", "n_layer"), ("width", "n_embd"), ("heads", "n_head"), ("block", "block_frames"),
                      ("window", "window_frames"), ("cache", "max_cache_frames"), ("cond_drop", "cond_drop"),
                      ("steps_sample", "sample_steps"), ("guidance", "guidance_scale"),
                      ("avatar_drop", "avatar_drop"), ("audio_guidance", "audio_guidance_scale"),
                      ("lookahead", "lookahead_frames"), ("cond_encoder", "cond_encoder")):
        if getattr(args, flag) is not None:
            d[key] = getattr(args, flag)
    if args.window is not None and args.cache is None:
        d["max_cache_frames"] = d["window_frames"] - d["block_frames"]
    return ForcingConfig.from_dict(d)


def main_train(argv=None) -> int:
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    tracker = None  # checked before the data is loaded: a wrong path fails at once
    if args.tracker_stats:
        if not args.user_noise:
            print("avatar-forcing train: --tracker-stats needs --user-noise > 0 (the probability it is used)")
            return 2
        try:
            tracker = TrackerNoise.from_file(args.tracker_stats)
        except ValueError as e:
            print(f"avatar-forcing train: {e}")
            return 2
    cfg = config_from_args(args)
    if args.resume and (Path(args.out) / "config.json").is_file():
        cfg, _ = read_config(args.out)
    sessions = load_sessions(args.data, args.augment, args.seed)
    log.info("%d sessions, %d frames from %s", len(sessions), sum(s.frames for s in sessions), args.data)
    meta = {"data": str(args.data), "command": "avatar-forcing train " + " ".join(argv if argv is not None else [])}
    if args.augment:
        meta["augment"] = {"copies_per_session": args.augment, **asdict(AudioAugmentation())}
    if args.user_noise:
        meta["user_noise"] = {"prob_per_window": args.user_noise, "figures": args.tracker_stats or "built-in",
                              **asdict(tracker or TrackerNoise())}
    if args.timbre:
        meta["timbre"] = {"prob_per_window_and_stream": args.timbre, **asdict(FeatureTimbre())}
    net, history = train(cfg, sessions, args.out, args.steps, args.batch, args.lr, warmup=args.warmup,
                         device=args.device, seed=args.seed, resume=args.resume, log_every=args.log_every,
                         ckpt_every=args.ckpt_every, metadata=meta, user_noise=args.user_noise,
                         timbre=args.timbre, tracker=tracker)
    if history:
        log.info("done: step %d loss %.4f -> %s", history[-1]["step"], history[-1]["loss_smooth"], args.out)
    return 0
