"""Preference tuning without labels (Diffusion-DPO on the flow-matching loss).

    avatar-forcing dpo --checkpoint models/af_forcing_v4 --data corpus/train --out models/af_forcing_v4_dpo

Winner: the real motion of a window. Loser: motion the model itself generates for the same
window with the user conditions dropped (guidance scale 0 = only the null-user branch), which
is under-reactive. With a frozen reference copy, the loss

    -log sigmoid(-beta * [(e_w - e_w_ref) - (e_l - e_l_ref)])

(e = velocity error on noisy frames, same noise and noise levels for both) pushes the model to
fit the reactive winner better than the reference does, relative to the loser.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .flow import block_noise_levels, per_frame_loss
from .network import AvatarForcingNet, block_causal_mask
from .sampler import sample_streaming
from .train import WindowSampler, load_sessions

log = logging.getLogger("avatar_forcing.dpo")


def normalised_batch(net: AvatarForcingNet, batch: dict):
    aa, ua, um = net.normalize_conditions(batch["avatar_audio"], batch["user_audio"], batch["user_motion"])
    return (aa, ua, um, batch["user_present"]), net.normalize_motion(batch["avatar_motion"])


@torch.no_grad()
def generate_losers(net: AvatarForcingNet, cond_inputs, generator=None) -> torch.Tensor:
    """The model's own motion for these windows with the user stream dropped (normalised),
    sampled as it samples at run time (its mouth temperature and context noise), so that a
    loser differs from what the model does only in not hearing or seeing the user."""
    aa = cond_inputs[0]
    noise = torch.randn(aa.shape[0], aa.shape[1], net.cfg.motion_dim, generator=generator)
    noise = noise * torch.from_numpy(net.cfg.noise_scale())
    ctx = torch.randn(noise.shape, generator=generator) if net.cfg.context_noise else None
    return sample_streaming(net, *cond_inputs, noise, guidance=0.0, context_noise=ctx)


def sequence_error(net, x0, eps, t, cond_inputs, mask) -> torch.Tensor:
    """Mean velocity error over the noisy frames of each window, (N,)."""
    drop = torch.zeros(x0.shape[0], dtype=torch.bool)
    cond, _ = net.encode(*cond_inputs, drop)
    err = per_frame_loss(net, x0, eps, t, cond, mask)
    w = (t > 0).float()
    return (err * w).sum(1) / w.sum(1).clamp(min=1.0)


def dpo_loss(net, ref, winner, loser, cond_inputs, beta: float, generator=None):
    """Diffusion-DPO loss and the mean implicit reward margin (> 0: winners preferred)."""
    n, T, _ = winner.shape
    cfg = net.cfg
    t = block_noise_levels(n, T, cfg.block_frames, 0.0, generator)
    eps = torch.randn(winner.shape, generator=generator)
    mask = block_causal_mask(T, cfg.block_frames, cfg.context_blocks)
    e_w = sequence_error(net, winner, eps, t, cond_inputs, mask)
    e_l = sequence_error(net, loser, eps, t, cond_inputs, mask)
    with torch.no_grad():
        r_w = sequence_error(ref, winner, eps, t, cond_inputs, mask)
        r_l = sequence_error(ref, loser, eps, t, cond_inputs, mask)
    margin = -((e_w - r_w) - (e_l - r_l))  # how much more the model prefers the winner than ref does
    return -F.logsigmoid(beta * margin).mean(), margin.mean().detach()


def dpo_train(net: AvatarForcingNet, windows: WindowSampler, steps: int = 200, batch_size: int = 16,
              pool: int = 128, lr: float = 2e-5, beta: float = 500.0, seed: int = 0, log_every: int = 10):
    """Tune ``net`` in place against a frozen copy of itself; returns the history."""
    gen = torch.Generator().manual_seed(seed)
    ref = copy.deepcopy(net).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    raw = windows.batch(pool)
    cond_pool, winners = normalised_batch(net, raw)
    net.eval()
    losers = generate_losers(net, cond_pool, gen)
    log.info("generated %d losing windows with the user conditions dropped", pool)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    history = []
    net.train()
    for step in range(steps):
        idx = torch.randint(0, pool, (batch_size,), generator=gen)
        loss, margin = dpo_loss(net, ref, winners[idx], losers[idx], tuple(c[idx] for c in cond_pool), beta, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append({"step": step + 1, "dpo_loss": round(loss.item(), 5), "margin": float(margin)})
            log.info("%s", history[-1])
    return net.eval(), history


def main_dpo(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing dpo", description="DPO with dropped-user-condition losers")
    p.add_argument("--checkpoint", required=True, help="trained checkpoint (also the frozen reference)")
    p.add_argument("--data", required=True, help="dyadic dataset directory (winners = its real motion)")
    p.add_argument("--out", required=True, help="checkpoint directory for the tuned model")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pool", type=int, default=128, help="windows (winner/loser pairs) generated up front")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--beta", type=float, default=500.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    net, meta = load_checkpoint(args.checkpoint)
    windows = WindowSampler(load_sessions(args.data), net.cfg.window_frames, args.seed,
                            lookahead=net.cfg.lookahead_frames)
    net, history = dpo_train(net, windows, args.steps, args.batch, args.pool, args.lr, args.beta, args.seed)
    save_checkpoint(args.out, net, meta.get("step", 0), metadata={
        "dpo": {"from": str(args.checkpoint), "data": str(args.data), "steps": args.steps, "beta": args.beta,
                "lr": args.lr, "final": history[-1] if history else None}})
    with open(Path(args.out) / "dpo_log.jsonl", "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in history)
    return 0
