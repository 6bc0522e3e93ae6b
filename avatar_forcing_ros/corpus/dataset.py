"""The dyadic dataset on disk (af-dyadic-v1), shared by the corpus generator, the recordings
converter and training; and the corpus generator's command.

    avatar-forcing corpus --out corpus/train --sessions 200 --seconds 20 --seed 1 --split train

A dataset is a directory with ``dataset.json`` and one sub-directory per session holding
``avatar_audio.wav``, ``user_audio.wav`` (16 kHz mono PCM16, T*640 samples),
``avatar_motion.npy``, ``user_motion.npy`` (float32 (T, 28) af-motion-v1 at 25 fps),
``user_present.npy`` (T,), ``avatar_viseme_targets.npy`` (T, 3) and ``meta.json`` (seed,
voices, texts, event annotations in frames). Loading checks everything and names the file
that does not fit.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.audio import SAMPLE_RATE
from ..core.motion import AF_MOTION_V1

FORMAT = "af-dyadic-v1"
# the simulator's behaviour version: v2 added answered nods and a jaw that follows loudness
SIMULATOR_ID = "af-corpus-sim-v2"
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
VISEME_TARGETS = ("jawOpen", "mouthFunnel", "mouthPucker")
SEGMENT_KEYS = ("avatar_speaking", "user_speaking", "user_smiles", "user_laughs")
FRAME_KEYS = ("backchannel",)
MAX_WORKERS = 2  # the build machines are shared


class DatasetError(ValueError):
    """A dataset file is missing or does not match af-dyadic-v1 (the message names the file)."""


@dataclass
class DyadicSession:
    name: str
    avatar_audio: np.ndarray           # (T*640,) float32 in [-1, 1], 16 kHz
    user_audio: np.ndarray             # (T*640,)
    avatar_motion: np.ndarray          # (T, 28) float32 af-motion-v1
    user_motion: np.ndarray            # (T, 28)
    user_present: np.ndarray           # (T,) face confidence of the user
    avatar_viseme_targets: np.ndarray  # (T, 3) jawOpen, mouthFunnel, mouthPucker
    meta: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.avatar_motion.shape[0])

    @property
    def avatar_speaking(self) -> list:
        return self.meta.get("avatar_speaking", [])

    @property
    def user_speaking(self) -> list:
        return self.meta.get("user_speaking", [])

    @property
    def backchannel(self) -> list:
        return self.meta.get("backchannel", [])

    @property
    def user_smiles(self) -> list:
        return self.meta.get("user_smiles", [])

    @property
    def user_laughs(self) -> list:
        return self.meta.get("user_laughs", [])

    def validate(self, where: str = "") -> "DyadicSession":
        """Shapes, lengths and values; raises DatasetError naming `where` (a file or session)."""
        where = where or f"session {self.name!r}"
        T = self.frames
        expected = {
            "avatar_motion": (T, AF_MOTION_V1.dim), "user_motion": (T, AF_MOTION_V1.dim),
            "user_present": (T,), "avatar_viseme_targets": (T, len(VISEME_TARGETS)),
            "avatar_audio": (T * SAMPLES_PER_FRAME,), "user_audio": (T * SAMPLES_PER_FRAME,),
        }
        if self.avatar_motion.ndim != 2 or T == 0:
            raise DatasetError(f"{where}: avatar_motion has shape {self.avatar_motion.shape}, "
                               f"expected (T, {AF_MOTION_V1.dim}) with T > 0")
        for name, shape in expected.items():
            x = getattr(self, name)
            if x.shape != shape:
                raise DatasetError(f"{where}: {name} has shape {x.shape}, expected {shape}")
            if not np.all(np.isfinite(x)):
                raise DatasetError(f"{where}: {name} has non-finite values")
        _check_annotations(self.meta, T, where)
        return self


def _check_annotations(meta: dict, T: int, where: str) -> None:
    if not isinstance(meta, dict):
        raise DatasetError(f"{where}: meta is {type(meta).__name__}, expected an object")
    for key in SEGMENT_KEYS + FRAME_KEYS:
        if key not in meta:
            raise DatasetError(f"{where}: meta has no {key!r} annotation")
    for key in SEGMENT_KEYS:
        for seg in meta[key]:
            if (not isinstance(seg, (list, tuple)) or len(seg) != 2
                    or not all(isinstance(v, int) for v in seg) or not 0 <= seg[0] < seg[1] <= T):
                raise DatasetError(f"{where}: {key} has {seg!r}, expected [start, end) frames "
                                   f"within 0..{T}")
    for key in FRAME_KEYS:
        for f in meta[key]:
            if not isinstance(f, int) or not 0 <= f < T:
                raise DatasetError(f"{where}: {key} has {f!r}, expected a frame in 0..{T - 1}")


# --- reading and writing ------------------------------------------------------------------
def read_json(path: Path):
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None


def _read_npy(path: Path, shape: tuple) -> np.ndarray:
    """shape: expected, None where any length goes (checked against the others later)."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable .npy array ({e})") from None
    if not np.issubdtype(x.dtype, np.floating):
        raise DatasetError(f"{path}: dtype {x.dtype}, expected float32")
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = tuple("T" if s is None else s for s in shape)
        raise DatasetError(f"{path}: shape {x.shape}, expected {want}")
    if not np.all(np.isfinite(x)):
        raise DatasetError(f"{path}: has non-finite values")
    return x.astype(np.float32, copy=False)


def _read_wav(path: Path, n_samples: int) -> np.ndarray:
    import soundfile as sf

    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DatasetError(f"{path}: not a readable WAV ({e})") from None
    if rate != SAMPLE_RATE:
        raise DatasetError(f"{path}: {rate} Hz, expected {SAMPLE_RATE} Hz")
    if x.shape[1] != 1:
        raise DatasetError(f"{path}: {x.shape[1]} channels, expected mono")
    if x.shape[0] != n_samples:
        raise DatasetError(f"{path}: {x.shape[0]} samples, expected {n_samples} "
                           f"(T={n_samples // SAMPLES_PER_FRAME} frames x {SAMPLES_PER_FRAME})")
    return x[:, 0]


def load_session(directory) -> DyadicSession:
    d = Path(directory)
    if not d.is_dir():
        raise DatasetError(f"{d}: session directory missing")
    avatar_motion = _read_npy(d / "avatar_motion.npy", (None, AF_MOTION_V1.dim))
    T = avatar_motion.shape[0]
    if T == 0:
        raise DatasetError(f"{d / 'avatar_motion.npy'}: has no frames")
    session = DyadicSession(
        name=d.name,
        avatar_audio=_read_wav(d / "avatar_audio.wav", T * SAMPLES_PER_FRAME),
        user_audio=_read_wav(d / "user_audio.wav", T * SAMPLES_PER_FRAME),
        avatar_motion=avatar_motion,
        user_motion=_read_npy(d / "user_motion.npy", (T, AF_MOTION_V1.dim)),
        user_present=_read_npy(d / "user_present.npy", (T,)),
        avatar_viseme_targets=_read_npy(d / "avatar_viseme_targets.npy", (T, len(VISEME_TARGETS))),
        meta=read_json(d / "meta.json"),
    )
    return session.validate(str(d / "meta.json"))


def load_dataset(path) -> list[DyadicSession]:
    root = Path(path)
    index = root / "dataset.json"
    info = read_json(index)
    if not isinstance(info, dict):
        raise DatasetError(f"{index}: expected a JSON object")
    checks = {"format": FORMAT, "motion_space": AF_MOTION_V1.id, "fps": FPS,
              "sample_rate": SAMPLE_RATE}
    for key, want in checks.items():
        if info.get(key) != want:
            raise DatasetError(f"{index}: {key} is {info.get(key)!r}, expected {want!r}")
    names = info.get("sessions")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{index}: 'sessions' must be a non-empty list of directory names")
    return [load_session(root / name) for name in names]


def save_session(directory, session: DyadicSession) -> None:
    import soundfile as sf

    d = Path(directory)
    session.validate(f"session {session.name!r} (to {d})")
    d.mkdir(parents=True, exist_ok=False)
    for name in ("avatar_audio", "user_audio"):
        sf.write(str(d / f"{name}.wav"), np.clip(getattr(session, name), -1, 1), SAMPLE_RATE,
                 subtype="PCM_16")
    for name in ("avatar_motion", "user_motion", "user_present", "avatar_viseme_targets"):
        np.save(d / f"{name}.npy", np.ascontiguousarray(getattr(session, name), dtype=np.float32))
    (d / "meta.json").write_text(json.dumps(session.meta, indent=1))


def write_index(root: Path, names: list[str], config: dict) -> None:
    (root / "dataset.json").write_text(json.dumps({
        "format": FORMAT, "motion_space": AF_MOTION_V1.id, "fps": FPS, "sample_rate": SAMPLE_RATE,
        "sessions": names, "generator": config}, indent=1))


def fresh_directory(path) -> Path:
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DatasetError(f"{root}: exists and is not an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_dataset(path, sessions: list[DyadicSession], config: dict) -> None:
    """Write sessions (their names become the directory names) and dataset.json."""
    if not sessions:
        raise DatasetError(f"{path}: no sessions to write")
    names = [s.name for s in sessions]
    if len(set(names)) != len(names) or not all(names):
        raise DatasetError(f"{path}: session names must be unique and non-empty: {names}")
    root = fresh_directory(path)
    for s in sessions:
        save_session(root / s.name, s)
    write_index(root, names, config)


# --- the generator ------------------------------------------------------------------------
def session_seed(seed: int, index: int) -> int:
    """Independent per-session seeds, the same whichever worker makes the session."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _generate_one(job) -> dict:
    from .simulator import simulate_session

    root, name, seed, seconds, split, take, redraw = job
    sim = simulate_session(seed, seconds, split, avatar_take=take, redraw_reactions=redraw)
    session = DyadicSession(name, sim.avatar_audio, sim.user_audio, sim.avatar_motion,
                            sim.user_motion, sim.user_present, sim.avatar_viseme_targets, sim.meta)
    save_session(Path(root) / name, session)
    return {"name": name, "frames": session.frames, "voices": sim.meta["voices"]}


def generate_corpus(out_dir, n_sessions: int, seconds_per_session: float, seed: int,
                    split: str = "train", workers: int = MAX_WORKERS, avatar_take: int = 0,
                    redraw_reactions: bool = False) -> dict:
    """Simulate `n_sessions` and write them as an af-dyadic-v1 dataset at `out_dir`.
    ``avatar_take`` > 0: the same conversations with another take of the avatar's face;
    ``redraw_reactions``: that take also draws the listener's smiles and nods anew
    (simulate_session).

    Each session is made in a fresh process: espeak-ng carries synthesis state between calls,
    and a fresh process makes a session's arrays depend on its seed alone.
    """
    if int(n_sessions) < 1:
        raise DatasetError(f"n_sessions must be at least 1, got {n_sessions}")
    if not seconds_per_session or float(seconds_per_session) < 2.0:
        raise DatasetError(f"seconds_per_session must be at least 2, got {seconds_per_session}")
    from .simulator import SPLITS
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    if redraw_reactions and not avatar_take:
        raise DatasetError("redraw_reactions needs avatar_take > 0")
    workers = int(np.clip(workers, 1, MAX_WORKERS))
    root = fresh_directory(out_dir)
    names = [f"{split}_{i:05d}" for i in range(int(n_sessions))]
    jobs = [(str(root), name, session_seed(seed, i), float(seconds_per_session), split, int(avatar_take),
             bool(redraw_reactions)) for i, name in enumerate(names)]
    t0 = time.perf_counter()
    # One session per process, forked from a fresh server that has imported the simulator but
    # never synthesised: no inherited threads or espeak state, and no import cost per session.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["avatar_forcing_ros.corpus.simulator"])
    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        results = pool.map(_generate_one, jobs, chunksize=1)
    config = {"source": "simulator", "generator": SIMULATOR_ID, "seed": int(seed),
              "n_sessions": int(n_sessions), "seconds_per_session": float(seconds_per_session),
              "split": split, "fps": FPS, "session_seeds": {j[1]: j[2] for j in jobs},
              **({"avatar_take": int(avatar_take)} if avatar_take else {}),
              **({"redraw_reactions": True} if redraw_reactions else {})}
    write_index(root, names, config)
    return {"sessions": results, "seconds": time.perf_counter() - t0,
            "frames": sum(r["frames"] for r in results)}


def main_generate(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing corpus",
                                description="Generate the simulated dyadic corpus (af-dyadic-v1).")
    p.add_argument("--out", required=True, help="dataset directory to write (new or empty)")
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each session")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", choices=("train", "test", "other"), default="train",
                   help="sentences and voices: the test split holds out both; 'other' speaks the "
                        "held-out sentences with other synthesizers (flite, festival)")
    p.add_argument("--workers", type=int, default=MAX_WORKERS, help=f"processes (1..{MAX_WORKERS})")
    a = p.parse_args(argv)
    try:
        report = generate_corpus(a.out, a.sessions, a.seconds, a.seed, a.split, a.workers)
    except (DatasetError, ValueError) as e:
        print(f"avatar-forcing corpus: {e}")
        return 1
    print(f"wrote {len(report['sessions'])} sessions ({report['frames'] / FPS:.0f} s) to {a.out} "
          f"in {report['seconds']:.1f} s")
    return 0
