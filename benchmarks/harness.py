"""Benchmark harness that is not the bottleneck: the pipeline's inputs come from a publisher
process (``feed``) and its outputs go to a receiver process (``sink``), and each of them
measures whether it kept its own schedule, so a figure can be blamed on the pipeline only
when the driver was on time.

Used by pipeline_latency.py, profile_nodes.py and soak.py; can also be run by hand:

    python benchmarks/harness.py feed --plan plan.npz --ns /bench --out feed.npz
    python benchmarks/harness.py sink --ns /bench --out sink.npz --ready ready.flag

Every process started from here gets loopback-only discovery and the run's own random
ROS domain (``ros_env``) before rclpy starts.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "avatar_forcing.yaml"
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm_profile.xml"
SR = 16000
CHUNK = 320          # 20 ms, as audio_common's capture node sends
MOUTH_PIXELS = 20    # mouth-interior pixels that count as an open mouth (stylised renderer)
NODES = ("perception_node", "generator_node", "renderer_node")


# -- environment and processes ----------------------------------------------------------------

def ros_env(domain: int | None = None) -> dict[str, str]:
    """Loopback discovery, a random domain of this run, the package's Fast DDS profile."""
    domain = domain if domain is not None else random.SystemRandom().randint(101, 200)
    return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1",
            "ROS_DOMAIN_ID": str(domain),
            "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
            "FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE)}


def node_args(ns: str, params: dict) -> list[str]:
    args = ["--ros-args", "-r", f"__ns:={ns}", "--params-file", str(CONFIG)]
    for k, v in params.items():
        args += ["-p", f"{k}:={v}"]
    return args


class Proc:
    """A child process with its output in a log file; stopped by SIGINT, then SIGKILL."""

    def __init__(self, argv: list[str], log: Path, env: dict, name: str, nice: int = 0):
        self.name, self.log = name, log

        def renice():  # in the child; a negative value needs root, else it stays as it is
            try:
                os.nice(nice)
            except OSError:
                pass

        with open(log, "wb") as f:
            self.popen = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                                          stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                          preexec_fn=renice if nice else None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_hogs(n: int) -> list[subprocess.Popen]:
    """N processes that each keep one CPU core busy (a busy robot computer)."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def stop_hogs(hogs) -> None:
    for h in hogs:
        h.kill()
        h.wait()


def start_graph(ns: str, env: dict, logs: Path, params: dict, all_in_one: bool,
                handover: str = "dds") -> list[Proc]:
    """The three nodes as three processes, or all of them in one (avatar_forcing_all, handing
    over ``in-process`` or through ``dds``)."""
    py = sys.executable
    if all_in_one:
        return [Proc([py, "-m", "avatar_forcing_ros.ros.all_in_one", "--handover", handover, *node_args(ns, params)],
                     logs / "all_in_one.log", env, "all_in_one")]
    procs = []
    for n in NODES:
        p = {k: v for k, v in params.items() if n == "generator_node"} if params else {}
        procs.append(Proc([py, "-m", f"avatar_forcing_ros.ros.{n}", *node_args(ns, p)],
                          logs / f"{n}.log", env, n))
    return procs


def start_sink(ns: str, env: dict, logs: Path, seconds: float, nice: int = 0) -> tuple[Proc, Path, Path]:
    out, ready = logs / "sink.npz", logs / "sink.ready"
    p = Proc([sys.executable, __file__, "sink", "--ns", ns, "--out", str(out), "--ready", str(ready),
              "--seconds", str(seconds)], logs / "sink.log", env, "sink", nice)
    return p, out, ready


def start_feed(ns: str, env: dict, logs: Path, plan: Path, nice: int = 0) -> tuple[Proc, Path]:
    out = logs / "feed.npz"
    p = Proc([sys.executable, __file__, "feed", "--ns", ns, "--plan", str(plan), "--out", str(out)],
             logs / "feed.log", env, "feed", nice)
    return p, out


def wait_file(path: Path, timeout: float, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited ({p.popen.returncode}) before {path.name}\n{p.tail()}")
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.name} ---\n{p.tail()}" for p in procs)
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {path.name}{logs}")
        time.sleep(0.1)


class ProcessSampler:
    """RSS and CPU of processes, sampled every ``period`` s from /proc (via psutil)."""

    def __init__(self, procs: dict[str, int]):
        import psutil

        self.p = {name: psutil.Process(pid) for name, pid in procs.items()}
        for proc in self.p.values():
            proc.cpu_percent(None)
        self.t: list[float] = []
        self.rss: dict[str, list[float]] = {n: [] for n in self.p}
        self.cpu: dict[str, list[float]] = {n: [] for n in self.p}

    def sample(self) -> None:
        self.t.append(time.time())
        for n, proc in self.p.items():
            try:
                self.rss[n].append(proc.memory_info().rss / 2**20)
                self.cpu[n].append(proc.cpu_percent(None))
            except Exception:  # exited
                self.rss[n].append(float("nan"))
                self.cpu[n].append(float("nan"))

    def mean_cpu(self, name: str, since: float = 0.0) -> float:
        t = np.asarray(self.t)
        c = np.asarray(self.cpu[name])
        return float(np.nanmean(c[t >= since])) if c.size else float("nan")


# -- plans --------------------------------------------------------------------------------------

def save_plan(path: Path, speech, mic, onsets: list[int], camera_hz: float,
              speech_gaps: bool = False, publish_mic: bool = True, mic_noise: float = 0.0) -> None:
    """What the feed publishes. ``speech`` and ``mic`` are float32 arrays at 16 kHz or Tracks
    (utterances placed in time, compact for long runs); ``onsets``: the speech onset samples;
    ``camera_hz``: the camera rate (0: no camera). With ``speech_gaps`` the speech topic is
    quiet between utterances (a TTS that only talks), else it streams zeros; without
    ``publish_mic`` the microphone topic stays silent; ``mic_noise``: the room's noise level
    added to the microphone."""
    tracks = {k: t if isinstance(t, Track) else Track.from_array(t) for k, t in (("speech", speech), ("mic", mic))}
    n = max(t.n for t in tracks.values())
    arrays = {}
    for k, t in tracks.items():
        arrays |= {f"{k}_pool": t.pool, f"{k}_offsets": t.offsets, f"{k}_events": t.events}
    np.savez(path, n=np.int64(n), onsets=np.asarray(onsets, np.int64), camera_hz=np.float64(camera_hz),
             speech_gaps=np.bool_(speech_gaps), publish_mic=np.bool_(publish_mic),
             mic_noise=np.float64(mic_noise), **arrays)


class Track:
    """Utterances (a pool of int16 clips) placed at start samples; silence elsewhere."""

    def __init__(self, clips: list[np.ndarray], events: list[tuple[int, int]], n: int):
        pcm = [(np.clip(c, -1, 1) * 32767).astype("<i2") if c.dtype != np.int16 else c for c in clips]
        self.pool = np.concatenate(pcm) if pcm else np.zeros(0, "<i2")
        self.offsets = np.cumsum([0] + [c.size for c in pcm]).astype(np.int64)
        self.events = np.asarray(sorted(events), np.int64).reshape(-1, 2)  # (start sample, clip)
        self.n = int(n)

    @classmethod
    def from_array(cls, x: np.ndarray) -> "Track":
        return cls([np.asarray(x, np.float32)], [(0, 0)], x.size)

    @classmethod
    def load(cls, plan, key: str) -> "Track":
        if key in plan:  # a plan of whole arrays
            return cls.from_array(plan[key])
        t = cls([], [], int(plan["n"]))
        t.pool, t.offsets, t.events = plan[f"{key}_pool"], plan[f"{key}_offsets"], plan[f"{key}_events"]
        return t

    def chunk(self, start: int, size: int) -> np.ndarray:
        """int16 samples [start, start + size)."""
        out = np.zeros(size, "<i2")
        ev = self.events
        # events that may overlap: the last one starting before the chunk's end, and earlier
        i = int(np.searchsorted(ev[:, 0], start + size, side="left")) if ev.size else 0
        for j in range(max(i - 3, 0), i):
            s0, clip = int(ev[j, 0]), int(ev[j, 1])
            c0, c1 = int(self.offsets[clip]), int(self.offsets[clip + 1])
            lo, hi = max(start, s0), min(start + size, s0 + c1 - c0)
            if lo < hi:
                out[lo - start:hi - start] = self.pool[c0 + lo - s0:c0 + hi - s0]
        return out

    def to_array(self) -> np.ndarray:
        return self.chunk(0, self.n).astype(np.float32) / 32767


def ah_burst(seconds: float = 0.4) -> np.ndarray:
    """A spoken "ah" (espeak-ng), so a model trained on speech opens its mouth too."""
    from avatar_forcing_ros.corpus.speech import synthesize

    ah = synthesize("Ah!", voice="en-us").audio
    start = int(np.argmax(np.abs(ah) > 0.02))
    return ah[start:start + int(seconds * SR)].astype(np.float32)


def onset_plan(n_onsets: int, warmup_s: float = 2.0, period_s: float = 1.5) -> tuple[np.ndarray, list[int]]:
    """``n_onsets`` "ah" bursts every ``period_s`` after ``warmup_s`` of silence; the
    speech onset sample of each (its first chunk starts there)."""
    burst = ah_burst()
    n = int((warmup_s + n_onsets * period_s + 1.0) * SR)
    speech = np.zeros(n, np.float32)
    onsets = []
    for i in range(n_onsets):
        s = int(round((warmup_s + i * period_s) * SR / CHUNK)) * CHUNK  # on a chunk boundary
        speech[s:s + burst.size] = burst
        onsets.append(s)
    return speech, onsets


# -- the publisher process ------------------------------------------------------------------------

def face_image(size: int = 480) -> np.ndarray:
    """The public-domain astronaut portrait of scikit-image, cropped to her face."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut()[0:300, 90:330], (size, size), interpolation=cv2.INTER_AREA)


def run_feed(ns: str, plan_path: Path, out: Path) -> int:
    """Publish the plan on its schedule: each audio chunk once its last sample is in (t0 +
    (k+1)*20 ms), camera frames at camera_hz; record how late every publish was."""
    import array

    import rclpy
    from audio_common_msgs.msg import AudioDataStamped
    from builtin_interfaces.msg import Time
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    plan = np.load(plan_path)
    tracks = {k: Track.load(plan, k) for k in ("speech", "mic")}
    n, camera_hz = max(t.n for t in tracks.values()), float(plan["camera_hz"])
    gaps, use_mic = bool(plan["speech_gaps"]), bool(plan["publish_mic"])
    noise = (float(plan["mic_noise"] if "mic_noise" in plan else 0.0) * 32767 * np.random.default_rng(0).standard_normal(50 * CHUNK)).astype("<i2")
    rclpy.init()
    node = rclpy.create_node("bench_feed", namespace=ns)
    pub_cam = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    pub_mic = node.create_publisher(AudioDataStamped, "user/audio", qos_profile_sensor_data)
    pub_sp = node.create_publisher(AudioDataStamped, "avatar/speech", 50)
    img = Image(height=480, width=480, encoding="rgb8", step=480 * 3)
    img.data = array.array("B", face_image().tobytes())  # converted once

    # Discovery first: every input has its subscriber before the clock starts.
    deadline = time.monotonic() + 60
    needed = [pub_sp] + ([pub_mic] if use_mic else []) + ([pub_cam] if camera_hz > 0 else [])
    while not all(p.get_subscription_count() > 0 for p in needed):
        if time.monotonic() > deadline:
            print("feed: no subscribers after 60 s", flush=True)
            return 1
        time.sleep(0.05)

    def audio_msg(x: np.ndarray, stamp):
        m = AudioDataStamped()
        m.header.stamp = stamp
        m.audio.data = array.array("B", x.tobytes())
        return m

    n_chunks = n // CHUNK
    n_cam = int(n_chunks * CHUNK / SR * camera_hz) if camera_hz > 0 else 0
    chunk_late = np.full(n_chunks, np.nan)
    chunk_pub = np.full(n_chunks, np.nan)  # wall time each chunk went out
    cam_late = np.full(n_cam, np.nan)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    t0 = time.time()
    k = c = 0
    cpu0 = time.process_time()
    while (k < n_chunks or c < n_cam) and not stop:
        t_audio = t0 + (k + 1) * CHUNK / SR if k < n_chunks else float("inf")
        t_cam = t0 + c / camera_hz if c < n_cam else float("inf")
        due = min(t_audio, t_cam)
        dt = due - time.time()
        if dt > 0:
            time.sleep(dt)
        now = time.time()
        # Stamped with the capture time of the schedule, as a microphone/camera driver does
        # (audio: the chunk's first sample), never with the publish time: a late publish must
        # not move the audio (the generator places stamped audio by its stamps).
        cap = due - CHUNK / SR if due == t_audio else due
        stamp = Time(sec=int(cap), nanosec=int((cap % 1) * 1e9))
        if due == t_audio:
            sp = tracks["speech"].chunk(k * CHUNK, CHUNK)
            if not gaps or sp.any():
                pub_sp.publish(audio_msg(sp, stamp))
            if use_mic:
                m = tracks["mic"].chunk(k * CHUNK, CHUNK)
                j = (k % 50) * CHUNK
                pub_mic.publish(audio_msg(m + noise[j:j + CHUNK], stamp))
            chunk_pub[k], chunk_late[k] = time.time(), now - due
            k += 1
        else:
            img.header.stamp = stamp
            pub_cam.publish(img)
            cam_late[c] = now - due
            c += 1
    cpu = time.process_time() - cpu0
    np.savez(out, t0=t0, chunk_pub=chunk_pub, chunk_late=chunk_late, cam_late=cam_late,
             cpu_s=cpu, wall_s=time.time() - t0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# -- the receiver process -------------------------------------------------------------------------

def run_sink(ns: str, out: Path, ready: Path, seconds: float) -> int:
    """Receive avatar/face_motion, avatar/image, avatar/audio and /diagnostics until SIGINT or
    ``seconds``; per image, whether the stylised face's mouth is open. Its own schedule: a
    10 ms loop whose wake-up lateness is recorded (a starved receiver shows up there)."""
    import rclpy
    from audio_common_msgs.msg import AudioDataStamped
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from avatar_forcing_ros.core.motion import AF_MOTION_V1
    from avatar_forcing_ros.msg import FaceMotion
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

    rend = StylisedFaceRenderer()  # the renderer node's defaults (config/avatar_forcing.yaml)
    x0, y0, x1, y1 = rend.mouth_box()
    mouth = np.array(rend.mouth_colour, np.int16)
    jaw = AF_MOTION_V1.index("jawOpen")
    rec = {k: [] for k in ("motion", "image", "audio")}
    diags: list[tuple[float, str, dict]] = []

    def st(h):
        return h.stamp.sec + h.stamp.nanosec * 1e-9

    def mark_ready():
        # ready once both measured streams arrive: a motion subscription that matched after
        # the feed began read as a 1-s bin of 0 Hz while the nodes published 25 (seen in runs)
        if rec["motion"] and rec["image"] and not ready.exists():
            ready.touch()

    def on_motion(m):
        rec["motion"].append((time.time(), st(m.header), m.values[jaw] if len(m.values) > jaw else np.nan))
        mark_ready()

    def on_image(m):
        t = time.time()
        rgb = np.frombuffer(m.data, np.uint8).reshape(m.height, m.width, 3)
        crop = rgb[y0:y1, x0:x1].astype(np.int16)
        px = int((np.abs(crop - mouth).max(axis=2) <= 20).sum())
        rec["image"].append((t, st(m.header), px))
        mark_ready()

    def on_audio(m):
        x = np.frombuffer(m.audio.data, "<i2").astype(np.float32) / 32767
        rec["audio"].append((time.time(), st(m.header), float(np.sqrt(np.mean(x * x))) if x.size else 0.0))

    def on_diag(m):
        for s in m.status:
            if s.hardware_id.startswith(ns):
                diags.append((time.time(), s.hardware_id, {kv.key: kv.value for kv in s.values}))

    rclpy.init()
    node = rclpy.create_node("bench_sink", namespace=ns)
    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    node.create_subscription(FaceMotion, "avatar/face_motion", on_motion, rel)
    node.create_subscription(Image, "avatar/image", on_image, rel)
    node.create_subscription(AudioDataStamped, "avatar/audio", on_audio, QoSProfile(depth=50))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    tick, lateness = time.time() + 0.01, []
    t_end = time.time() + seconds
    cpu0 = time.process_time()
    while not stop and time.time() < t_end:
        ex.spin_once(timeout_sec=max(tick - time.time(), 0.0))
        now = time.time()
        if now >= tick:
            lateness.append(now - tick)
            tick += 0.01 * (1 + int((now - tick) // 0.01))
    np.savez(out, **{k: np.asarray(v, np.float64).reshape(-1, 3) for k, v in rec.items()},
             lateness=np.asarray(lateness), cpu_s=time.process_time() - cpu0,
             diag=np.asarray([json.dumps(d) for d in diags], dtype=str))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# -- analysis -------------------------------------------------------------------------------------

def pct(x, q) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if x.size else float("nan")


def rate_bins(times: np.ndarray, t0: float, t1: float) -> tuple[float, list[int]]:
    """Messages per second over [t0, t1) and the counts of its whole 1-s bins."""
    times = np.asarray(times)
    n = int(((times >= t0) & (times < t1)).sum())
    edges = t0 + np.arange(int(t1 - t0) + 1)
    bins = np.histogram(times, edges)[0].tolist() if edges.size > 1 else []
    return n / max(t1 - t0, 1e-9), bins


def onset_latencies(onset_pub: np.ndarray, images: np.ndarray, window: float = 1.2):
    """Per onset: first open-mouth image received within ``window`` s after the onset chunk
    was published -> (receive latency, presentation-stamp latency), NaN if none."""
    lat, pres = [], []
    for t in onset_pub:
        sel = (images[:, 0] > t) & (images[:, 0] < t + window) & (images[:, 2] > MOUTH_PIXELS)
        if np.isfinite(t) and sel.any():
            i = np.argmax(sel)
            lat.append(images[i, 0] - t)
            pres.append(images[i, 1] - t)
        else:
            lat.append(np.nan)
            pres.append(np.nan)
    return np.asarray(lat), np.asarray(pres)


def speech_out_delays(onset_pub: np.ndarray, audio: np.ndarray, window: float = 1.0) -> np.ndarray:
    """Per onset: presentation stamp of the first avatar/audio message with sound minus the
    onset chunk's capture time (its publish time - 20 ms), s; NaN if none. On time it is
    output_delay_s minus up to one frame (the frame that holds the onset starts earlier)."""
    out = []
    for tp in onset_pub:
        cap = tp - CHUNK / SR
        sel = (audio[:, 1] > cap - 0.2) & (audio[:, 1] < cap + window) & (audio[:, 2] > 0.005)
        out.append(audio[np.argmax(sel), 1] - cap if np.isfinite(tp) and sel.any() else np.nan)
    return np.asarray(out)


def load_diags(sink: dict) -> list[tuple[float, str, dict]]:
    return [tuple(json.loads(d)) for d in sink["diag"]]  # run_sink: [time, hardware_id, {key: value}]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("feed")
    f.add_argument("--ns", required=True)
    f.add_argument("--plan", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("sink")
    s.add_argument("--ns", required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--ready", type=Path, default=Path(tempfile.gettempdir()) / "sink.ready")
    s.add_argument("--seconds", type=float, default=3600 * 2)
    a = p.parse_args()
    if "ROS_DOMAIN_ID" not in os.environ:
        os.environ.update(ros_env())  # never the default domain, never beyond loopback
    if a.cmd == "feed":
        return run_feed(a.ns, a.plan, a.out)
    return run_sink(a.ns, a.out, a.ready, a.seconds)


if __name__ == "__main__":
    sys.exit(main())
