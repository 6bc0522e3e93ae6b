"""The out-of-the-box demo and the command that runs it."""
import json
import subprocess

import numpy as np
import pytest

from avatar_forcing_ros.cli import main as cli


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height,duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


@pytest.mark.timeout(180)
def test_demo_writes_an_mp4_with_the_conversation_and_its_sound(tmp_path):
    from avatar_forcing_ros.demo import run_demo

    info = run_demo(tmp_path / "demo.mp4", model="procedural", size=240)
    streams = probe(info["path"])
    assert (streams["video"]["width"], streams["video"]["height"]) == (360, 240)  # user beside avatar
    duration = float(streams["video"]["duration"])
    assert abs(duration - info["frames"] / 25) < 0.1
    assert abs(float(streams["audio"]["duration"]) - duration) < 0.2
    assert info["avatar_speech_s"][1] < duration  # the whole answer is in the video

    # The sound track carries the voices: loud while someone speaks, silent at the start.
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", info["path"], "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
                         capture_output=True, check=True).stdout
    sound = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768
    rms = lambda a, b: np.sqrt(np.mean(sound[int(a * 16000):int(b * 16000)] ** 2))  # noqa: E731
    s0, s1 = info["avatar_speech_s"]
    assert rms(0.0, 0.5) < 0.01 < rms(s0 + 0.2, s1 - 0.2)


def test_cli_without_a_command_prints_help_and_rejects_unknown_ones(capsys):
    assert cli([]) == 2 and "avatar-forcing demo" in capsys.readouterr().out
    assert cli(["fly"]) == 2 and "unknown command" in capsys.readouterr().err


def test_demo_with_a_photo_without_a_face_says_so(tmp_path, capsys):
    import cv2
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((256, 256, 3), 128, np.uint8))
    assert cli(["demo", "--portrait", str(wall), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "no face found in portrait" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
