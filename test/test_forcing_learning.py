"""A short training run learns the relations that synthetic.py plants in its toy sessions.

One small network is trained once (about 800 steps, tens of seconds on one core) and then
sampled by the streaming sampler on an unseen toy session; the mean of 8 samples (the model's
conditional mean) must show each planted relation within a tolerance, and a relation that is
absent (a nod at random moments) must stay absent.
"""
import numpy as np
import pytest
import torch

from avatar_forcing_ros.generation.evaluation import best_lag, pearson
from avatar_forcing_ros.generation.forcing.config import ForcingConfig
from avatar_forcing_ros.generation.forcing.sampler import sample_streaming
from avatar_forcing_ros.generation.forcing.synthetic import JAW, PITCH, SMILE_L, toy_session, toy_sessions
from avatar_forcing_ros.generation.forcing.train import train

PLANTED_SMILE_DELAY = 5  # toy_session's default
T = 400


@pytest.fixture(scope="module")
def learned():
    torch.set_num_threads(1)
    # cond_kernel 13: the condition encoder sees the user's last 12 frames, the span of a toy nod
    cfg = ForcingConfig(n_layer=2, n_embd=32, n_head=2, block_frames=2, window_frames=32,
                        max_cache_frames=30, cond_kernel=13)
    net, hist = train(cfg, toy_sessions(8, 300), steps=800, batch_size=16, lr=3e-3, warmup=20,
                      log_every=100, progress=False, seed=0)
    s = toy_session(T, seed=999)  # not among the training sessions
    n = 8
    with torch.no_grad():
        aa, ua, um = net.normalize_conditions(*[torch.from_numpy(getattr(s, k))[None].expand(n, -1, -1)
                                                for k in ("avatar_audio", "user_audio", "user_motion")])
        noise = torch.randn(n, T, 28, generator=torch.Generator().manual_seed(0))
        x = sample_streaming(net, aa, ua, um, torch.from_numpy(s.user_present)[None].expand(n, -1), noise,
                             guidance=2.0)
        mean_motion = net.denormalize_motion(x).mean(0).numpy()
    return s, mean_motion, hist


def _pitch_change(pitch, moments):
    """Mean head pitch 4-9 frames after each moment minus the 3 frames before it."""
    return float(np.mean([pitch[m + 4:m + 10].mean() - pitch[m - 3:m].mean() for m in moments]))


def test_training_loss_falls(learned):
    _, _, hist = learned
    assert hist[-1]["loss_smooth"] < 0.6 * hist[0]["loss_smooth"]  # from the 100-step mark


def test_smile_is_mirrored_at_the_planted_delay(learned):
    s, motion, _ = learned
    lag, corr = best_lag(s.user_motion[:, SMILE_L], motion[:, SMILE_L], 15, min_lag=0)
    assert abs(lag - PLANTED_SMILE_DELAY) <= 2
    assert corr > 0.8


def test_head_dips_after_the_user_stops_talking_and_not_at_random_moments(learned):
    s, motion, _ = learned
    talk = (s.user_audio.mean(axis=1) > 1.5).astype(int)  # toy user audio: +3 while talking
    stops = np.flatnonzero((talk[:-1] == 1) & (talk[1:] == 0)) + 1
    stops = stops[(stops >= 3) & (stops < T - 12)]
    assert len(stops) >= 5
    planted = _pitch_change(s.avatar_motion[:, PITCH], stops)  # about -0.13 rad
    generated = _pitch_change(motion[:, PITCH], stops)
    random_moments = np.random.default_rng(0).integers(3, T - 12, 200)
    at_random = _pitch_change(motion[:, PITCH], random_moments)
    assert planted < -0.1
    assert generated < 0.4 * planted  # at least 40 % of the planted dip
    assert abs(at_random) < 0.02


def test_jaw_follows_the_avatars_own_audio_energy(learned):
    s, motion, _ = learned
    assert pearson(motion[:, JAW], s.avatar_motion[:, JAW]) > 0.9
