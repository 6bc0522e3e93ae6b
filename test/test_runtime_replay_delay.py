"""A replayed bag presents the robot's speech exactly ``output_delay_s`` after it was captured
(bag time, deterministic): /avatar/audio, stamped with presentation times, against /avatar/speech,
stamped with capture times, for 20 and 40 ms chunks."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate

from avatar_forcing_ros.core.messages import audio_payload, stamp_to_s
from avatar_forcing_ros.core.audio import SAMPLE_RATE as SR
from avatar_forcing_ros.core.audio import PcmDecoder, encode_s16le
from avatar_forcing_ros.corpus.speech import synthesize
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.replay import replay

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def utterance():
    return synthesize("Good morning to you. How are you today?").audio


def write_bag(path, voice, chunk_s, phase_s, mic):
    """Speech in ``chunk_s`` chunks captured from T0 + phase_s, each logged when its last sample
    is captured (stamp + chunk duration); optionally a microphone's 20 ms chunks from T0."""
    n = int(round(chunk_s * SR))
    x = np.concatenate([np.zeros(int(0.3 * SR), np.float32), voice])
    x = np.pad(x, (0, -x.size % n))
    msgs = [(T0 + phase_s + (k + 1) * chunk_s, "speech", x[k * n:(k + 1) * n], T0 + phase_s + k * chunk_s)
            for k in range(x.size // n)]
    if mic:
        msgs += [(T0 + (k + 1) * 0.02, "user_audio", np.zeros(320, np.float32), T0 + k * 0.02)
                 for k in range(int((x.size / SR + phase_s + 0.2) / 0.02))]
    msgs.sort(key=lambda m: m[0])
    with bags.BagWriter(path) as w:
        w.write(bags.topic("speech_info"), bags.t_to_ns(T0), bags.audio_info_msg())
        for t, key, samples, stamp in msgs:
            w.write(bags.topic(key), bags.t_to_ns(t), bags.audio_msg(encode_s16le(samples), stamp))
    return x


@pytest.mark.parametrize("delay", [0.1, 0.14])
@pytest.mark.parametrize("chunk_s", [0.02, 0.04])
@pytest.mark.parametrize("layout", ["speech only", "with a microphone, out of phase"])
def test_replayed_speech_is_presented_output_delay_after_capture(tmp_path, utterance, chunk_s, delay, layout):
    # speech only: the replay's clock starts at the first chunk's end, after it was captured;
    # with a microphone from T0 and speech 50 ms later, 40 ms chunks complete blocks 30 ms after
    # they end, past their deadlines (10 ms of slack at 0.1 s)
    mic = layout != "speech only"
    phase = 0.05 if mic else 0.0
    x = write_bag(tmp_path / "in", utterance, chunk_s, phase, mic)
    res = replay(tmp_path / "in", tmp_path / "out", images="none",
                 overrides=["generator.model=procedural", f"generator.output_delay_s={delay}"])
    assert res.account.unaccounted() == {}
    out = [m for m in bags.read_bag(tmp_path / "out", bags.BagAccount()) if m.topic == bags.topic("avatar_audio")]
    stamps = np.array([stamp_to_s(m.msg.header.stamp) for m in out])
    np.testing.assert_allclose(np.diff(stamps), 1 / 25, atol=1e-6)  # back to back on the frame grid
    y = np.concatenate([PcmDecoder().decode(audio_payload(m.msg)) for m in out])
    lag = int(np.argmax(correlate(y, x, mode="full", method="fft"))) - (x.size - 1)
    presented = stamps[0] + lag / SR - (T0 + phase)
    assert presented == pytest.approx(delay, abs=0.005), f"presented {presented * 1e3:.1f} ms after capture"
    # all of the speech is played, each sample once (two 16-bit truncations aside: in and out)
    np.testing.assert_allclose(y[lag:lag + x.size], x, atol=4 / 32767)
