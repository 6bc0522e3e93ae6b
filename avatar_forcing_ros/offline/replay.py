"""Offline replay: a recorded bag through the exact pipeline, in bag time, into a new bag.

The stages are built by ``pipeline.build_*`` from the same parameter YAML the nodes read, and
are driven the way the nodes drive them: the generator's clock is the bag's log time (s),
inputs are pushed in bag order, and the generator ticks at ``tick_rate_hz`` of bag time.
Offline nothing is dropped for being slow: perception sees every camera frame. Every input
message is either used or counted as skipped with its reason (``BagAccount``).

    avatar-forcing replay session.mcap_dir --out replayed --mp4 replayed.mp4
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from ..core.audio import SAMPLE_RATE, encode_s16le
from ..core.imaging import decode_compressed
from ..core.stages import Skip
from ..pipeline import (build_generator_stage, build_perception_stage, build_renderer_stage, load_node_parameters,
                        perception_space)
from . import bags

log = logging.getLogger("avatar_forcing.replay")

IMAGE_CHOICES = ("params", "raw", "compressed", "both", "none")
STAGES = ("read", "perception", "generator", "renderer", "write", "mp4")


def apply_overrides(params: dict, overrides) -> dict:
    """``["generator.model=procedural", "renderer.width=128"]`` -> params updated in place."""
    for item in overrides or ():
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or node not in params:
            raise ValueError(f"override {item!r} must look like NODE.PARAM=VALUE with NODE in {sorted(params)}")
        params[node][name] = yaml.safe_load(value)
    return params


@dataclass
class ReplayResult:
    account: bags.BagAccount
    out_bag: str
    mp4: str | None
    model: str
    frames: int = 0
    user_motion_frames: int = 0
    written: dict = field(default_factory=dict)           # output topic -> messages
    skips: dict = field(default_factory=dict)             # generator skip reason -> messages
    stage_s: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall_s: float = 0.0

    @property
    def speed(self) -> float:
        """Bag seconds replayed per second of compute (x real time)."""
        return self.account.duration_s / self.wall_s if self.wall_s > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"out_bag": self.out_bag, "mp4": self.mp4, "model": self.model, "frames": self.frames,
                "user_motion_frames": self.user_motion_frames, "written": dict(self.written),
                "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
                "wall_s": round(self.wall_s, 3), "input": self.account.as_dict(),
                # partial: the input bag is cut off or damaged; the output covers what was readable
                "status": "partial" if self.account.damaged else "complete"}

    def summary(self) -> str:
        lines = [self.account.summary(),
                 f"wrote {self.out_bag}: " + ", ".join(f"{n} {t}" for t, n in sorted(self.written.items())),
                 f"model {self.model}; {self.frames} avatar frames; "
                 f"{self.account.duration_s:.2f} s of bag in {self.wall_s:.2f} s ({self.speed:.1f}x real time)",
                 "per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.stage_s.items())]
        if self.mp4:
            lines.append(f"wrote {self.mp4}")
        if self.account.damaged:
            lost = self.account.lost()
            n = sum(v for v in lost.values() if isinstance(v, int))
            lines.append("PARTIAL: the input bag is cut off or damaged; "
                         + (f"{n} announced messages were lost" if self.account.counts_known
                            else "how many messages were lost is unknown")
                         + "; the output covers what was readable")
        return "\n".join(lines)


class _Timer:
    def __init__(self, totals: dict, stage: str):
        self.totals, self.stage = totals, stage

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        self.totals[self.stage] += time.perf_counter() - self.t


def replay(in_bag: str | Path, out_bag: str | Path, *, config: str | Path | None = None,
           overrides=(), seed: int | None = None, images: str = "params", mp4: str | Path | None = None,
           storage: str = "mcap", namespace: str = "", topics: dict | None = None,
           parallel: bool = False) -> ReplayResult:
    """Run perception, generator and renderer over ``in_bag``; write their outputs to ``out_bag``.

    ``images``: which avatar images to write ("params" follows the renderer's publish_raw /
    publish_compressed). ``seed`` overrides generator.seed. ``parallel``: perception in a second
    process, running ahead (same result; faster on two or more cores). Returns counts and
    per-stage compute times. ``topics``: {stream: bag topic} for streams recorded under other
    names than the pipeline's (streams as in ``bags.TOPICS``: camera, user_audio, speech, ...).
    """
    if images not in IMAGE_CHOICES:
        raise ValueError(f"images must be one of {IMAGE_CHOICES}, not {images!r}")
    if not Path(in_bag).exists():
        raise bags.BagError(f"bag {in_bag} does not exist")
    params = apply_overrides(load_node_parameters(config), overrides)
    if seed is not None:
        params["generator"]["seed"] = int(seed)
    pp, gp, rp = params["perception"], params["generator"], params["renderer"]
    write_raw = images in ("raw", "both") or (images == "params" and bool(rp["publish_raw"]))
    write_jpeg = images in ("compressed", "both") or (images == "params" and bool(rp["publish_compressed"]))

    t_wall = time.perf_counter()
    account = bags.BagAccount()
    T = {k: bags.topic(k, namespace) for k in bags.TOPICS}
    for key, name in (topics or {}).items():  # a robot's own names, as remapped at record time
        if key not in T:
            raise ValueError(f"unknown stream {key!r} in topics; one of {', '.join(bags.TOPICS)}")
        T[key] = name
    if pp["image_transport"] not in ("raw", "compressed"):
        raise ValueError(f"perception.image_transport must be raw or compressed, not {pp['image_transport']!r}")
    camera_key = "camera" if pp["image_transport"] == "raw" else "camera_compressed"
    camera_topic = T[camera_key]
    other_camera = T["camera_compressed" if camera_key == "camera" else "camera"]
    # A bag with only the other camera transport: use it rather than ignore the user.
    in_topics = bags.topic_types(in_bag)
    if camera_topic not in in_topics and other_camera in in_topics:
        account.problems.append(f"no {camera_topic} in the bag: used {other_camera} instead")
        camera_topic, other_camera = other_camera, camera_topic
    outputs = {T[k] for k in ("user_motion", "avatar_motion", "avatar_audio", "avatar_audio_info",
                              "avatar_image", "avatar_image_compressed")}

    perception = _PerceptionProcess(in_bag, camera_topic, pp) if parallel else _Perception(pp)
    try:
        # bag time stands still while computing: no compute budget before a block's deadline
        generator, note = build_generator_stage({**gp, "compute_budget_s": 0.0})
        renderer = build_renderer_stage(rp, generator.space)
    except Exception:
        perception.close(abort=True)
        raise
    if note:
        log.warning(note)
    gen = generator.generator
    space = generator.space
    user_space = perception_space(pp)   # what perception publishes (the generator checks it)
    tick_ns = int(round(1e9 / float(gp["tick_rate_hz"])))
    result = ReplayResult(account, str(out_bag), str(mp4) if mp4 else None, gen.model.name)
    stage = result.stage_s
    video_jpegs: list[bytes] = []
    speech: list[np.ndarray] = []
    render = write_raw or write_jpeg or bool(mp4)  # images nobody keeps are not drawn
    writer = bags.BagWriter(out_bag, storage)
    state = {"next_tick_ns": None}

    def emit(t_ns: int) -> None:
        """One generator tick at bag time ``t_ns``, as the node's timer fires it."""
        with _Timer(stage, "generator"):
            frames = generator.tick(t_ns / 1e9)
        for f in frames:
            # logged when published, stamped with presentation time; the renderer reads the
            # message the generator published, as the renderer node does
            with _Timer(stage, "write"):
                motion = bags.face_motion_msg(space, f.values, 1.0, True, f.presentation_time, gp["frame_id"])
                writer.write(T["avatar_motion"], t_ns, motion)
                writer.write(T["avatar_audio"], t_ns, bags.audio_msg(
                    encode_s16le(f.speech), f.presentation_time, gp["frame_id"]))
            if render:
                with _Timer(stage, "renderer"):
                    values = renderer.read(motion)
                    rgb = None if isinstance(values, Skip) else renderer.render(values)
                if rgb is not None:
                    with _Timer(stage, "write"):
                        _write_image(rgb, f, t_ns)
            result.frames += 1

    def _write_image(rgb, f, t_ns) -> None:
        if write_raw:
            writer.write(T["avatar_image"], t_ns, bags.image_msg(rgb, f.presentation_time, rp["frame_id"]))
        if write_jpeg or mp4:
            msg = bags.compressed_image_msg(rgb, f.presentation_time, rp["frame_id"],
                                            quality=int(rp["jpeg_quality"]) if not mp4 else 95)
            if write_jpeg:
                writer.write(T["avatar_image_compressed"], t_ns, msg)
            if mp4:
                video_jpegs.append(bytes(msg.data))
                speech.append(f.speech)

    def advance(t_ns: int) -> None:
        """Generator ticks of bag time up to ``t_ns``; the first message starts the clock."""
        if state["next_tick_ns"] is None:
            generator.start(t_ns / 1e9, int(gp["seed"]))
            writer.write(T["avatar_audio_info"], t_ns, bags.audio_info_msg())
            state["next_tick_ns"] = t_ns
        while state["next_tick_ns"] <= t_ns:
            emit(state["next_tick_ns"])
            state["next_tick_ns"] += tick_ns

    def count(topic_name: str, skip) -> None:
        if isinstance(skip, Skip):
            account.skip(topic_name, skip.reason)
        else:
            account.use(topic_name)

    humans = generator.humans  # user_source hri: ROS4HRI topics instead of the camera and microphone
    hri_topic = _hri_topics(gp.get("humans_prefix", "humans"), namespace) if humans is not None else None
    commands = {bags.topic(k, namespace): (k, msgtype) for k, (_, msgtype) in bags.COMMAND_TOPICS.items()}
    command_handlers = {"expression": generator.on_expression, "look_at": generator.on_look_at}
    audio_topics = {T["user_audio"]: "user", T["speech"]: "speech"}
    info_topics = {T["user_audio_info"]: "user", T["speech_info"]: "speech"}
    try:
        messages = bags.read_bag(in_bag, account)
        last_ns = None
        while True:
            with _Timer(stage, "read"):
                m = next(messages, None)
            if m is None:
                break
            now = m.t_ns / 1e9
            last_ns = m.t_ns
            route = hri_topic(m.topic) if hri_topic is not None else None
            if route is not None:
                advance(m.t_ns)
                with _Timer(stage, "generator"):
                    count(m.topic, _hri_message(generator, route, m, now))
            elif humans is not None and m.topic in (camera_topic, T["user_audio"], T["user_audio_info"]):
                account.skip(m.topic, "user_source hri")
            elif m.topic == camera_topic:
                advance(m.t_ns)
                obs = perception.step(m.msg, now)
                if not isinstance(obs, Skip):
                    with _Timer(stage, "write"):
                        msg = bags.face_motion_msg(user_space, obs.values, obs.confidence, obs.face_present,
                                                   obs.stamp, pp["frame_id"])
                        writer.write(T["user_motion"], m.t_ns, msg)
                    # the generator gets the perception output on arrival, as from the topic
                    with _Timer(stage, "generator"):
                        generator.on_user_motion(msg, now)
                    result.user_motion_frames += 1
                count(m.topic, obs)
            elif m.topic in audio_topics:
                advance(m.t_ns)
                if m.msgtype not in (bags.AUDIO_STAMPED, bags.AUDIO_DATA):
                    account.skip(m.topic, f"not audio ({m.msgtype})")
                    continue
                with _Timer(stage, "generator"):
                    count(m.topic, generator.on_audio(audio_topics[m.topic], m.msg, now))
            elif m.topic in info_topics:
                advance(m.t_ns)
                if m.msgtype != bags.AUDIO_INFO:
                    account.skip(m.topic, f"not an AudioInfo ({m.msgtype})")
                    continue
                count(m.topic, generator.on_info(info_topics[m.topic], m.msg))
            elif m.topic in commands:
                advance(m.t_ns)
                key, msgtype = commands[m.topic]
                if m.msgtype != msgtype:
                    account.skip(m.topic, f"not a {msgtype} ({m.msgtype})")
                    continue
                count(m.topic, command_handlers[key](m.msg, now))
            elif m.topic == other_camera:
                account.skip(m.topic, f"perception reads {camera_topic} (image_transport)")
            elif m.topic in outputs:
                account.skip(m.topic, "pipeline output (made anew by the replay)")
            else:
                account.skip(m.topic, "not a pipeline input")
        if last_ns is not None:
            # Flush: every input sample becomes a frame and every frame is presented.
            advance(last_ns + bags.t_to_ns(gen.output_delay_s + 2 * gen.block / gen.fps))
        for side, audio_input in generator.inputs.items():
            if audio_input.rate_mismatch:
                account.problems.append(f"{side} audio sample rate mismatch: {audio_input.rate_mismatch}")
        n_dropped = gen.avatar_audio.dropped_samples + gen.user_audio.dropped_samples
        if n_dropped:
            account.problems.append(f"{n_dropped} audio samples queued beyond the generator's buffer were dropped")
    except BaseException:
        perception.close(abort=True)
        raise
    else:
        perception.close()
    finally:
        writer.close()
        for k, v in perception.stage_s.items():
            stage[k] += v
        renderer.close()
    result.skips = dict(generator.telemetry.drops)
    result.written = dict(writer.counts)
    if mp4 and video_jpegs:
        from .video import write_mp4

        with _Timer(stage, "mp4"):
            write_mp4(mp4, (decode_compressed("jpeg", j) for j in video_jpegs), gen.fps,
                      np.concatenate(speech), SAMPLE_RATE)
    elif mp4:
        result.mp4 = None
        account.problems.append("no avatar frames were made: no MP4 written")
    result.wall_s = time.perf_counter() - t_wall
    return result


_HRI_TYPES = {"tracked": "hri_msgs/msg/IdsList", "landmarks": "hri_msgs/msg/FacialLandmarks",
              "engagement_status": "hri_msgs/msg/EngagementLevel", "face_id": "std_msgs/msg/String",
              "voice_id": "std_msgs/msg/String", "look_at_face": "std_msgs/msg/String"}


def _hri_topics(prefix: str, namespace: str):
    """topic -> (kind, id, what) for the ROS4HRI topics the generator node subscribes under
    ``prefix`` (resolved in ``namespace`` as the node resolves it), or None."""
    import re

    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    base = prefix.rstrip("/") if prefix.startswith("/") else f"{ns}/{prefix.strip('/')}"
    tracked = re.compile(re.escape(base) + r"/(faces|persons|voices)/tracked$")
    per_id = re.compile(re.escape(base) + r"/(faces|persons|voices)/([^/]+)/(landmarks|engagement_status|face_id"
                        r"|voice_id|audio)$")
    look_face = bags.topic("look_at", namespace) + "_face"

    def route(topic_name: str):
        if topic_name == look_face:
            return ("commands", "", "look_at_face")
        if m := tracked.match(topic_name):
            return (m.group(1), "", "tracked")
        if m := per_id.match(topic_name):
            return m.groups()
        return None
    return route


def _hri_message(generator, route, m, now: float):
    """One ROS4HRI message to the generator stage as the node hands it on: per-id topics only
    for ids in the tracked lists (the node is subscribed to those only)."""
    kind, i, what = route
    expected = _HRI_TYPES.get(what)
    if what == "audio":
        expected = m.msgtype if m.msgtype in (bags.AUDIO_STAMPED, bags.AUDIO_DATA) else bags.AUDIO_STAMPED
    if m.msgtype != expected:
        return Skip(f"not a {expected} ({m.msgtype})")
    if what == "look_at_face":
        return generator.on_look_at_face(m.msg, now)
    if what == "tracked":
        generator.on_tracked(kind, m.msg, now)
        return None
    if i not in generator.humans.tracked[kind]:
        return Skip(f"{kind} id not tracked")
    if what == "landmarks":
        return generator.on_face_landmarks(i, m.msg, now)
    if what == "audio":
        return generator.on_voice_audio(i, m.msg, now)
    if what == "engagement_status":
        return generator.on_engagement(i, m.msg, now)
    return generator.on_person_match(i, what[:-3], m.msg, now)


class _Perception:
    """The perception stage on one camera stream in order, timing decode and tracking."""

    def __init__(self, pp: dict):
        self.stage = build_perception_stage(pp)
        self.stage_s = {"perception": 0.0}

    def step(self, msg, now: float):
        t = time.perf_counter()
        r = self.stage.step(msg, now)
        self.stage_s["perception"] += time.perf_counter() - t
        return r

    def close(self, abort: bool = False):
        self.stage.close()


def _perception_worker(in_bag, camera_topic, pp, results) -> None:
    """Perception over the bag's camera stream in a process of its own (runs ahead of the
    generator; same frames, same order, so the same output as in one process)."""
    perception = _Perception(pp)
    try:
        for m in bags.read_bag(in_bag, bags.BagAccount(), topics={camera_topic}):
            results.put(perception.step(m.msg, m.t_ns / 1e9))
    except Exception as exc:  # reported by the main process, which stops the replay
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        results.put(("done", perception.stage_s))
        perception.close()


class _PerceptionProcess:
    def __init__(self, in_bag, camera_topic, pp):
        import multiprocessing as mp

        # spawn, not fork: a fork of a process that already ran mediapipe crashes. (Like any
        # spawn, it imports the caller's main module: scripts need the __main__ guard.)
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue(maxsize=256)
        self.proc = ctx.Process(target=_perception_worker, args=(str(in_bag), camera_topic, pp, self.results),
                                daemon=True)
        self.proc.start()
        self.stage_s = {"perception": 0.0}

    def step(self, msg, now):
        r = self._get()
        if isinstance(r, tuple) and r[0] == "done":
            self.stage_s = r[1]
            raise RuntimeError("the perception process ended before the camera stream did")
        if isinstance(r, tuple) and r[0] == "error":
            raise RuntimeError(f"perception process failed: {r[1]}")
        return r

    def _get(self):
        import queue

        while True:
            try:
                return self.results.get(timeout=1.0)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise RuntimeError(f"the perception process died (exit code {self.proc.exitcode})") from None

    def close(self, abort: bool = False):
        if abort:
            self.proc.terminate()
            self.proc.join(timeout=5.0)
            return
        # collect its timings; a process left over is ended (it holds only a bag reader)
        try:
            while self.proc.is_alive() or not self.results.empty():
                r = self.results.get(timeout=5.0)
                if isinstance(r, tuple) and r[0] == "done":
                    self.stage_s = r[1]
                    break
        except Exception:  # timings are only informative
            pass
        self.proc.join(timeout=5.0)
        if self.proc.is_alive():
            self.proc.terminate()


def main_replay(argv=None) -> int:
    """``avatar-forcing replay``. Exit status: 0 the whole bag was replayed; 1 nothing written
    (bad bag, parameters or arguments; argparse's usage errors are 2); 3 partial: the input
    bag is cut off or damaged, the output was written from what could be read, and the report
    counts per topic the messages lost (announced by the bag's index, MCAP summary or
    metadata.yaml minus those read; "unknown" when nothing announces them)."""
    p = argparse.ArgumentParser(
        prog="avatar-forcing replay", description=__doc__.split("\n")[0],
        epilog="exit status: 0 complete; 1 error, nothing written; 2 usage error; "
               "3 partial (input bag cut off or damaged; output written, lost messages reported)")
    EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 3  # 2 is argparse's usage error
    p.add_argument("bag", help="input rosbag2 (directory, or a .mcap / .db3 file)")
    p.add_argument("--out", required=True, help="output rosbag2 directory (must not exist)")
    p.add_argument("--mp4", help="also write the avatar with its speech to this MP4")
    p.add_argument("--config", help="node parameter YAML (default: the shipped config/avatar_forcing.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override one parameter, e.g. --set generator.model=procedural")
    p.add_argument("--seed", type=int, help="sampling seed (default: generator.seed)")
    p.add_argument("--images", choices=IMAGE_CHOICES, default="params",
                   help="avatar images to write (params: as the renderer's publish_raw/publish_compressed)")
    p.add_argument("--storage", choices=bags.STORAGES, default="mcap")
    p.add_argument("--namespace", default="", help="namespace of the recorded topics")
    p.add_argument("--topic", action="append", default=[], metavar="STREAM=TOPIC",
                   help="bag topic of a stream recorded under another name, e.g. "
                        "camera=/camera/color/image_raw (streams: " + ", ".join(bags.TOPICS) + ")")
    p.add_argument("--report", help="write the accounting and timings as JSON here")
    p.add_argument("--parallel", action="store_true",
                   help="run perception in a second process, ahead of the generator (same output; "
                        "faster when a second core is free)")
    a = p.parse_args(argv)
    topics = dict(t.split("=", 1) for t in a.topic if "=" in t)
    if len(topics) != len(a.topic):
        p.error("--topic takes STREAM=TOPIC")
    try:
        res = replay(a.bag, a.out, config=a.config, overrides=a.overrides, seed=a.seed, images=a.images,
                     mp4=a.mp4, storage=a.storage, namespace=a.namespace, topics=topics,
                     parallel=a.parallel)
    except (bags.BagError, ValueError, FileNotFoundError) as exc:
        print(f"avatar-forcing replay: {exc}")
        return EXIT_ERROR
    print(res.summary())
    code = EXIT_PARTIAL if res.account.damaged else EXIT_OK
    if a.report:
        Path(a.report).write_text(json.dumps({**res.as_dict(), "exit_status": code}, indent=2))
    return code
