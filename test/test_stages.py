"""The stages' own decisions, without ROS: what the nodes and the replay both rely on."""
from __future__ import annotations

import numpy as np

from avatar_forcing_ros.core.audio import AudioFormat, encode_s16le
from avatar_forcing_ros.core.stages import AudioInput, Skip
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.replay import replay


def mic_chunks(rate_sent: int, seconds: float, chunk_s: float = 0.02):
    """(arrival time, message) of a microphone streaming ``rate_sent`` samples a second."""
    n = int(rate_sent * chunk_s)
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / rate_sent)
    return [(k * chunk_s, bags.audio_msg(encode_s16le(tone), k * chunk_s)) for k in range(int(seconds / chunk_s))]


def test_a_microphone_faster_than_its_assumed_rate_is_named_a_rate_mismatch():
    mic = AudioInput("user", AudioFormat(16000, 1, "S16LE"))
    mic.check_rate = True
    for t, msg in mic_chunks(48000, 6.0):  # a 48 kHz microphone without an AudioInfo
        assert not isinstance(mic.decode(msg, t), Skip)  # still used: the format may be meant
    assert "48000 Hz arriving, 16000 Hz assumed" in mic.rate_mismatch
    assert mic.telemetry.drops["user audio rate mismatch"] == 1  # named once, not per chunk
    mic.on_info(bags.audio_info_msg(48000, 1, "S16LE"))  # the right format: measured anew
    assert mic.rate_mismatch == ""
    for t, msg in mic_chunks(48000, 6.0):
        mic.decode(msg, 100.0 + t)
    assert mic.rate_mismatch == "" and mic.telemetry.values["user audio arriving (Hz)"] == "48000"


def test_a_microphone_at_its_rate_or_a_bursty_stream_is_not_a_mismatch():
    mic = AudioInput("user", AudioFormat(16000, 1, "S16LE"))
    mic.check_rate = True
    for t, msg in mic_chunks(16000, 6.0):
        mic.decode(msg, t)
    assert mic.rate_mismatch == "" and "user audio rate mismatch" not in mic.telemetry.drops
    tts = AudioInput("speech", AudioFormat(16000, 1, "S16LE"))  # a TTS bursts: not checked
    for _, msg in mic_chunks(16000, 6.0):
        tts.decode(msg, 0.0)
    assert tts.rate_mismatch == ""


def test_replay_reports_a_microphone_rate_mismatch(tmp_path):
    with bags.BagWriter(tmp_path / "in") as w:
        for t, msg in mic_chunks(48000, 6.0):
            w.write(bags.topic("user_audio"), bags.t_to_ns(100.0 + t + 0.02), msg)
    res = replay(tmp_path / "in", tmp_path / "out", overrides=["generator.model=procedural"], images="none")
    assert any("user audio sample rate mismatch" in p and "16000 Hz assumed" in p for p in res.account.problems)
    assert res.skips["user audio rate mismatch"] == 1
