"""Do the back-channel nods fail because of the model's own past, or is the nod not learned?

For every back-channel cue (a pause in the user's speech) of a protocol set, one stream: up to
the cue the KV cache is written from the real listener's motion (teacher forcing), from the
cue on the model samples its own. The nod rate in the second after the cue is compared with
the free-running model (its own past all along) and with the same teacher forcing at random
listening moments (the chance for the line above).

    python benchmarks/results/backchannel-2026-12-07/teacher_forced.py /tmp/afe3/test models/af_forcing_v2 [GUIDANCE|config] [SESSIONS]
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from avatar_forcing_ros.generation import evaluation as E  # noqa: E402
from avatar_forcing_ros.generation.forcing.sampler import Guidance, StreamState, denoise_block  # noqa: E402


@torch.no_grad()
def stream_with_teacher(net, aa, ua, um, up, real, switch, guidance, gen, mouth_temperature=0.25):
    """(N, T, .) normalised inputs; row n takes the real motion as its past for frames < switch[n]."""
    cfg = net.cfg
    B, N, T = cfg.block_frames, aa.shape[0], aa.shape[1]
    guide = Guidance.plan(cfg, guidance, 1.0)
    st = StreamState.empty(net, N * guide.rows)
    scale = torch.from_numpy(cfg.noise_scale(mouth_temperature))
    out = []
    for s in range(0, T, B):
        cond, st.conv_state = guide.encode(net, aa[:, s:s + B], ua[:, s:s + B], um[:, s:s + B], up[:, s:s + B],
                                           st.conv_state)
        noise = torch.randn(N, B, cfg.motion_dim, generator=gen) * scale
        ctx = torch.randn(N, B, cfg.motion_dim, generator=gen)
        teacher = torch.as_tensor(s < switch)[:, None, None]
        x, st.cache_k, st.cache_v, st.cache_valid = denoise_block(
            net, cond, noise, guide, st.cache_k, st.cache_v, st.cache_valid, cfg.sample_steps, ctx,
            cfg.context_noise, write_as=lambda x, s=s, teacher=teacher: torch.where(teacher, real[:, s:s + B], x))
        out.append(x)
    return torch.cat(out, 1)


def rate(net, sessions, moments, guidance, seed=0):
    """Teacher-forced up to each moment (session index, frame), then free: nods in the second after."""
    rows = list(moments)
    B = net.cfg.block_frames
    T = min(s.frames for s in sessions)
    T -= T % B

    def stack(k):
        return torch.from_numpy(np.stack([np.asarray(getattr(sessions[i].arrays, k))[:T] for i, _ in rows]))
    aa, ua, um = net.normalize_conditions(stack("avatar_audio"), stack("user_audio"), stack("user_motion"))
    real = net.normalize_motion(stack("avatar_motion").float())
    switch = np.array([f - f % B for _, f in rows])
    gen = torch.Generator().manual_seed(seed)
    x = net.denormalize_motion(stream_with_teacher(net, aa, ua, um, stack("user_present"), real, switch,
                                                   guidance, gen)).numpy()
    hits = [E.nod_detected(x[n, :, E.PITCH], f, 25, 0.05) for n, (_, f) in enumerate(rows)]
    return float(np.mean(hits)), len(hits)


def main(corpus, checkpoint, guidance=None, sessions=None):
    torch.set_num_threads(2)
    net = E._load_net(checkpoint, 2)
    g = net.cfg.guidance_scale if guidance in (None, "config") else float(guidance)
    sessions = E.load_eval_sessions(corpus, int(sessions) if sessions else None)
    T = min(s.frames for s in sessions) - 30
    cues = [(i, f) for i, s in enumerate(sessions) for f in s.backchannel if 25 <= f < T]
    chance = [(i, int(f)) for i, s in enumerate(sessions)  # the protocol's random moments, 3 per session
              for f in [f for f in E._chance_moments(s.frames, s, 0) if 25 <= f < T][:3]]
    real = np.mean([E.nod_detected(np.asarray(sessions[i].arrays.avatar_motion)[:, E.PITCH], f, 25, 0.05)
                    for i, f in cues])
    free = E.generate_batched(net, sessions, 0, g, mouth_temperature=0.25)
    free_rate = np.mean([E.nod_detected(free[i][:, E.PITCH], f, 25, 0.05) for i, f in cues])
    tf, n = rate(net, sessions, cues, g)
    tf_chance, m = rate(net, sessions, chance, g)
    print(f"{checkpoint} guidance {g} context noise {net.cfg.context_noise}: {n} cues, {m} random moments")
    print(f"  real listener after cues          {real:.2f}")
    print(f"  free-running after cues           {free_rate:.2f}")
    print(f"  teacher-forced to the cue, after  {tf:.2f}")
    print(f"  teacher-forced, random moments    {tf_chance:.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
