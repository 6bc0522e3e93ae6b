"""Recorded sessions -> the dyadic training format (af-dyadic-v1), with the pipeline's own
perception code and parameters.

A bag holds the user's camera and microphone, the avatar side's speech, and the avatar
side's face: either its FaceMotion as recorded (a robot face) or a second camera on a person
(human-human sessions), which goes through the same perception as the user's camera. Streams
are laid on one clock by log (arrival) time, as the generator does live, and sampled at the
motion frame rate: for each frame the newest observation not after it.

    avatar-forcing dataset session1 session2 --out data/recorded
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bags
from ..core.audio import SAMPLE_RATE, AudioFormat
from ..core.messages import audio_payload, image_to_rgb, read_face_motion
from ..core.stages import AudioInput
from ..corpus.dataset import DyadicSession, write_dataset
from ..core.imaging import ImageFormatError
from ..core.motion import AF_MOTION_V1
from ..pipeline import build_estimator, load_node_parameters
from .replay import apply_overrides

log = logging.getLogger("avatar_forcing.recordings")

FPS = 25
HOP = SAMPLE_RATE // FPS  # 640 samples per frame
SPEECH_RMS = 0.02          # frame RMS above which a voice counts as speaking
SMILE_LEVEL = 0.35         # mean mouthSmile of a smiling user
VISEME_CHANNELS = ("jawOpen", "mouthFunnel", "mouthPucker")


@dataclass
class SourceTopics:
    """Which bag topics feed each stream (absolute names)."""
    user_camera: list
    user_audio: list
    avatar_audio: list
    avatar_camera: list
    avatar_motion: list

    @classmethod
    def defaults(cls, namespace: str = "") -> "SourceTopics":
        t = lambda k: bags.topic(k, namespace)  # noqa: E731
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        return cls(user_camera=[t("camera"), t("camera_compressed")],
                   user_audio=[t("user_audio")],
                   avatar_audio=[t("speech"), t("avatar_audio")],
                   avatar_camera=[f"{ns}/avatar/camera/image_raw", f"{ns}/avatar/camera/image_raw/compressed"],
                   avatar_motion=[t("avatar_motion")])


class FaceTrack:
    """(time, values, confidence) observations of one face."""

    def __init__(self):
        self.t, self.values, self.conf = [], [], []

    def add(self, t, values, conf):
        self.t.append(t)
        self.values.append(values)
        self.conf.append(conf)

    def sample(self, t0: float, n: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) values and (n,) confidence on the frame grid; neutral/0 where stale or absent."""
        values = np.tile(AF_MOTION_V1.neutral(), (n, 1)).astype(np.float32)
        conf = np.zeros(n, np.float32)
        if not self.t:
            return values, conf
        times = np.asarray(self.t)
        grid = t0 + np.arange(n) / FPS
        idx = np.searchsorted(times, grid + 1e-9, side="right") - 1
        ok = (idx >= 0) & (grid - times[np.maximum(idx, 0)] <= timeout_s)
        v, c = np.stack(self.values), np.asarray(self.conf, np.float32)
        values[ok] = v[idx[ok]]
        conf[ok] = c[idx[ok]]
        return values, conf


class AudioTrack:
    """Chunks placed at their arrival time, back to back, as the generator's timeline does."""

    def __init__(self, fmt: AudioFormat, side: str = "audio"):
        self.input = AudioInput(side, fmt)  # AudioInfo handling as in the generator
        self.chunks = []  # (start sample from t0, samples)
        self.cursor = None

    def add(self, t_rel: float, data: bytes):
        x = self.input.decoder.decode(data)
        start = int(round(t_rel * SAMPLE_RATE))
        start = start if self.cursor is None else max(start, self.cursor)
        self.chunks.append((start, x))
        self.cursor = start + x.size

    def render(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        for s, x in self.chunks:
            if s < n:
                out[s:s + x.size] = x[:n - s]
        return out


def _segments(mask: np.ndarray, min_len: int, bridge: int) -> list[list[int]]:
    """[start, end) runs of True, gaps shorter than ``bridge`` closed, runs under ``min_len`` dropped."""
    runs, start = [], None
    for i, m in enumerate(np.append(mask, False)):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append([start, i])
            start = None
    merged = []
    for r in runs:
        if merged and r[0] - merged[-1][1] < bridge:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [r for r in merged if r[1] - r[0] >= min_len]


def speaking_segments(audio: np.ndarray, n_frames: int) -> list[list[int]]:
    rms = np.sqrt(np.mean(audio[:n_frames * HOP].reshape(n_frames, HOP) ** 2, axis=1))
    return _segments(rms > SPEECH_RMS, min_len=5, bridge=8)


def annotate(avatar_audio, user_audio, avatar_motion, user_motion, user_present) -> dict:
    """Event annotations of the format, measured from the recording itself."""
    n = avatar_motion.shape[0]
    avatar_speaking = speaking_segments(avatar_audio, n)
    user_speaking = speaking_segments(user_audio, n)
    # a listener nods where the user pauses (at least 0.3 s) and the avatar is not talking
    talking = np.zeros(n, bool)
    for s, e in avatar_speaking:
        talking[s:e] = True
    starts = [s for s, _ in user_speaking[1:]] + [n]
    backchannel = [e for (_, e), nxt in zip(user_speaking, starts) if nxt - e >= 8 and e < n and not talking[e]]
    smile = user_motion[:, AF_MOTION_V1.indices(["mouthSmileLeft", "mouthSmileRight"])].mean(axis=1)
    user_smiles = _segments((smile > SMILE_LEVEL) & (user_present > 0.5), min_len=5, bridge=3)
    return {"avatar_speaking": avatar_speaking, "user_speaking": user_speaking,
            "backchannel": backchannel, "user_smiles": user_smiles, "user_laughs": []}


def bag_to_session(bag, params: dict, topics: SourceTopics, avatar_source: str = "auto"):
    """Read one bag into session arrays. Returns (arrays dict, meta dict, BagAccount).

    ``avatar_source``: "camera" (second camera through perception), "motion" (recorded
    FaceMotion) or "auto" (the camera when the bag has one). Raises ValueError when the bag has
    nothing to learn the avatar's motion from.
    """
    if not Path(bag).exists():
        raise bags.BagError(f"bag {bag} does not exist")
    pp, gp = params["perception"], params["generator"]
    account = bags.BagAccount()
    estimators = {"user": build_estimator(pp), "avatar": build_estimator(pp)}
    faces = {"user": FaceTrack(), "avatar": FaceTrack()}
    audio = {side: AudioTrack(AudioFormat(int(gp[f"{key}_audio_sample_rate"]), int(gp[f"{key}_audio_channels"]),
                                           str(gp[f"{key}_audio_sample_format"])))
             for side, key in (("user", "user"), ("avatar", "speech"))}
    info_topics = {bags.topic("user_audio_info"): "user", bags.topic("speech_info"): "avatar"}
    present = bags_topics(bag)
    user_cam = next((t for t in topics.user_camera if t in present), None)
    avatar_cam = next((t for t in topics.avatar_camera if t in present), None)
    avatar_audio_topic = next((t for t in topics.avatar_audio if t in present), None)
    user_audio_topic = next((t for t in topics.user_audio if t in present), None)
    if avatar_source == "motion" or (avatar_source == "auto" and avatar_cam is None):
        avatar_cam = None
        avatar_motion_topic = next((t for t in topics.avatar_motion if t in present), None)
    else:
        avatar_motion_topic = None
    if avatar_cam is None and avatar_motion_topic is None:
        raise ValueError(f"{bag}: no avatar face to learn from (none of "
                         f"{topics.avatar_camera + topics.avatar_motion} is in the bag)")
    role = {user_cam: "user camera", avatar_cam: "avatar camera", user_audio_topic: "user audio",
            avatar_audio_topic: "avatar audio", avatar_motion_topic: "avatar motion"}
    role.pop(None, None)
    t0 = None
    last = {}
    try:
        for m in bags.read_bag(bag, account):
            now = m.t_ns / 1e9
            kind = role.get(m.topic)
            if m.topic in info_topics:
                skip = audio[info_topics[m.topic]].input.on_info(m.msg)
                account.skip(m.topic, skip.reason) if skip else account.use(m.topic)
                continue
            if kind is None:
                account.skip(m.topic, "not a stream of the dataset")
                continue
            t0 = now if t0 is None else t0
            side = kind.split()[0]
            if kind.endswith("camera"):
                if m.topic in last and now < last[m.topic]:
                    account.skip(m.topic, "time went backwards")
                    continue
                try:
                    rgb = image_to_rgb(m.msg)
                except ImageFormatError as exc:
                    account.skip(m.topic, f"bad image: {str(exc)[:80]}")
                    continue
                obs = estimators[side].estimate(rgb, now)
                faces[side].add(now, obs.values, obs.confidence if obs.face_present else 0.0)
            elif kind.endswith("audio"):
                data = audio_payload(m.msg) if m.msgtype in (bags.AUDIO_STAMPED, bags.AUDIO_DATA) else b""
                if not data:
                    account.skip(m.topic, "empty or not audio")
                    continue
                audio[side].add(now - t0, data)
            else:
                try:
                    values, _, _ = read_face_motion(m.msg, AF_MOTION_V1)
                except (ValueError, AttributeError) as exc:
                    account.skip(m.topic, f"bad face motion: {exc}")
                    continue
                faces["avatar"].add(now, values, 1.0 if m.msg.face_present else 0.0)
            last[m.topic] = now
            account.use(m.topic)
    finally:
        for e in estimators.values():
            e.close()
    if t0 is None or account.end_ns is None:
        raise ValueError(f"{bag}: no usable messages")
    n = int((account.end_ns / 1e9 - t0) * FPS)
    if n < 1:
        raise ValueError(f"{bag}: shorter than one frame")
    timeout = float(gp["user_motion_timeout_s"])
    user_motion, user_present = faces["user"].sample(t0, n, timeout)
    avatar_motion, _ = faces["avatar"].sample(t0, n, timeout)
    arrays = {"avatar_audio": audio["avatar"].render(n * HOP), "user_audio": audio["user"].render(n * HOP),
              "avatar_motion": avatar_motion, "user_motion": user_motion, "user_present": user_present,
              "avatar_viseme_targets": avatar_motion[:, AF_MOTION_V1.indices(VISEME_CHANNELS)].copy()}
    for name, topic_name in (("user camera", user_cam), ("user audio", user_audio_topic),
                             ("avatar audio", avatar_audio_topic)):
        if topic_name is None:
            account.problems.append(f"no {name} topic: that stream is empty (zeros / absent)")
    meta = {"seed": 0, "voices": {}, "texts": {},
            **annotate(arrays["avatar_audio"], arrays["user_audio"], avatar_motion, user_motion, user_present),
            "source": {"bag": str(bag), "start_s": t0, "frames": n,
                       "streams": {k: v for v, k in role.items()},
                       "avatar_visemes": "measured avatar mouth (jawOpen, mouthFunnel, mouthPucker)",
                       "user_laughs": "not detected from recordings",
                       "account": account.as_dict()}}
    return arrays, meta, account


def bags_topics(bag) -> set:
    found = set(bags.topic_types(bag))
    if not found:  # a damaged bag: read_bag salvages what it can; find its topics the same way
        acc = bags.BagAccount()
        try:
            for m in bags.read_bag(bag, acc):
                pass
        except bags.BagError:
            return set()
        found = set(acc.topics)
    return found


def build_dataset(bag_paths, out, *, config=None, overrides=(), namespace: str = "",
                  topics: SourceTopics | None = None, avatar_source: str = "auto") -> dict:
    """Convert bags into an af-dyadic-v1 dataset at ``out``. A bag that cannot be used is left
    out with its reason; raises ValueError if none can. Returns the report (per bag)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty")
    params = apply_overrides(load_node_parameters(config), overrides)
    topics = topics or SourceTopics.defaults(namespace)
    report, names, sessions = {}, [], []
    for bag in bag_paths:
        name = Path(bag).name.replace(".mcap", "").replace(".db3", "") or "session"
        while name in names:
            name += "_"
        try:
            arrays, meta, account = bag_to_session(bag, params, topics, avatar_source)
        except (ValueError, bags.BagError) as exc:
            report[str(bag)] = {"used": False, "reason": str(exc)}
            log.warning("left out %s: %s", bag, exc)
            continue
        sessions.append(DyadicSession(name=name, meta=meta, **arrays))
        names.append(name)
        report[str(bag)] = {"used": True, "session": name, "frames": int(arrays["avatar_motion"].shape[0]),
                            "summary": account.summary()}
    if not names:
        raise ValueError("no usable bag: " + "; ".join(r["reason"] for r in report.values()))
    # the corpus module writes the files and checks every shape and annotation on the way
    write_dataset(out, sessions, {"source": "recordings", "perception": params["perception"], "bags": report})
    return report


def main_dataset(argv=None) -> int:
    p = argparse.ArgumentParser(prog="avatar-forcing dataset", description=__doc__.split("\n")[0])
    p.add_argument("bags", nargs="+", help="rosbag2 recordings, one session each")
    p.add_argument("--out", required=True, help="dataset directory to write (new or empty)")
    p.add_argument("--config", help="node parameter YAML (default: the shipped one)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE")
    p.add_argument("--namespace", default="")
    p.add_argument("--avatar-source", choices=("auto", "camera", "motion"), default="auto",
                   help="avatar face: a second camera through perception, or the recorded FaceMotion")
    for stream in ("user-camera", "user-audio", "avatar-audio", "avatar-camera", "avatar-motion"):
        p.add_argument(f"--{stream}", help=f"topic of the {stream.replace('-', ' ')} (default: the pipeline's)")
    a = p.parse_args(argv)
    topics = SourceTopics.defaults(a.namespace)
    for stream in ("user_camera", "user_audio", "avatar_audio", "avatar_camera", "avatar_motion"):
        if getattr(a, stream):
            setattr(topics, stream, [getattr(a, stream)])
    try:
        report = build_dataset(a.bags, a.out, config=a.config, overrides=a.overrides, namespace=a.namespace,
                               topics=topics, avatar_source=a.avatar_source)
    except (ValueError, FileNotFoundError) as exc:
        print(f"avatar-forcing dataset: {exc}")
        return 1
    for bag, r in report.items():
        print(r["summary"] + f"\n  -> session {r['session']}: {r['frames']} frames" if r["used"]
              else f"bag {bag}: left out ({r['reason']})")
    print(f"wrote {a.out}")
    return 0
