"""Writing frames and sound to an MP4 with ffmpeg (H.264 + AAC)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise RuntimeError("ffmpeg was not found on PATH: install it (scripts/setup.sh does, "
                           "or `apt-get install ffmpeg`)")
    return path


def write_mp4(path: str | Path, frames, fps: float, audio: np.ndarray | None = None,
              sample_rate: int = 16000) -> Path:
    """Encode an iterable of (H, W, 3) uint8 RGB frames (and mono float audio) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    h, w = first.shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg_binary(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-"]
        if audio is not None:
            wav = Path(tmp) / "audio.wav"
            sf.write(wav, np.clip(audio, -1, 1), sample_rate, subtype="PCM_16")
            cmd += ["-i", str(wav), "-c:a", "aac", "-b:a", "96k", "-shortest"]
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "23",
                "-movflags", "+faststart", str(path)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(np.ascontiguousarray(first).tobytes())
            for frame in frames:
                if frame.shape[:2] != (h, w):
                    raise ValueError(f"frame size changed from {w}x{h} to {frame.shape[1]}x{frame.shape[0]}")
                proc.stdin.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        finally:
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}: {err.strip()}")
    return path
