"""Soak: a long conversation (robot speech turns, user speech, the user's face, silences)
through the streaming runtime on a simulated clock (default, fast) or through the live nodes in
real time (``--live``), with frame rate, A/V offset, memory and latency over time.

    source scripts/env.sh && python benchmarks/soak.py [--minutes 60] [--model default|procedural]
    source scripts/env.sh && python benchmarks/soak.py --live [--minutes 5] [--all-in-one] [--load 1]

Speech is real synthesised speech (espeak-ng); the robot's TTS publishes only while it talks,
the microphone always streams (room noise, the user's turns), and midway there is a long
pause in which nobody speaks. Prints a table per window and a closing summary that checks the
issue's targets, PASS/FAIL each:
- A/V offset 0 frames at the end: robot speech comes out with the frame made from it
  (speech in -> speech out, the onset's frame, in frames; live also avatar/audio stamps vs
  avatar/face_motion stamps);
- RSS growth < 5 % after the first minute (this process in simulated time, each node live);
- latency p95 in the last window within 10 % of the first (speech onset -> first open-mouth
  image; windows of 5 minutes, or half the run when it is shorter than 10 minutes).
Writes a PNG (``--plot``, default soak_<mode>.png in the current directory).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H  # noqa: E402

ROBOT_LINES = [
    "Good morning to you.", "I can help you find the meeting room on the second floor.",
    "That sounds like a great idea, let me check.", "Sorry, could you say that again?",
    "The weather today is sunny with a light breeze.", "Yes, I remember you from yesterday.",
    "It is a quarter past ten.", "Let me think about that for a moment.",
    "Thank you, that was very kind of you.", "Would you like me to show you the way?",
]
USER_LINES = [
    "Hello robot.", "Where is the meeting room?", "Can you tell me the time?",
    "That is interesting.", "No, I mean the other one.", "Okay, thanks a lot.",
    "What is the weather like?", "Hmm, let me think.",
]


@dataclass
class Conversation:
    speech: H.Track
    mic: H.Track
    robot_onsets: list[int]            # sample index of each robot turn's first sample
    robot_ends: list[int]
    n: int
    pauses: list[tuple[int, int]] = field(default_factory=list)


def clips(lines, **voice) -> list[np.ndarray]:
    from avatar_forcing_ros.corpus.speech import synthesize

    out = []
    for text in lines:
        a = synthesize(text, **voice).audio.astype(np.float32)
        loud = np.flatnonzero(np.abs(a) > 0.02)
        out.append(a[loud[0]:loud[-1] + 1])  # the turn starts with its first sound
    return out


def conversation(minutes: float, seed: int = 0, long_pause_s: float | None = None) -> Conversation:
    """Turns: the robot speaks (45 %), the user speaks (35 %) or nobody does (20 %), with short
    gaps; once, midway, a long pause (default a twelfth of the run, 5 min of 60). The last
    window replays the first window's script (same sentences at the same offsets), so a
    difference between them is the stream's age, not what was said."""
    rng = np.random.default_rng(seed)
    robot = clips(ROBOT_LINES, voice="en-us")
    user = clips(USER_LINES, voice="en-us", pitch=75, rate_wpm=185)
    n = int(minutes * 60 * H.SR)
    w = int(windows(minutes * 60) * H.SR) // H.CHUNK * H.CHUNK
    long_pause_s = minutes * 60 / 12 if long_pause_s is None else long_pause_s
    sp_ev, mic_ev, pauses = [], [], []
    t = 2 * H.SR
    paused = False
    while True:
        if not paused and t > n / 2:
            pauses.append((t, t + int(long_pause_s * H.SR)))
            t += int(long_pause_s * H.SR)
            paused = True
        r = rng.random()
        if r < 0.45:
            i = int(rng.integers(len(robot)))
            d, kind = robot[i].size, "robot"
        elif r < 0.8:
            i = int(rng.integers(len(user)))
            d, kind = user[i].size, "user"
        else:
            i, d, kind = -1, int(rng.uniform(2, 12) * H.SR), "pause"
        t = (t // H.CHUNK) * H.CHUNK  # turns start on a chunk boundary: onsets exact
        if t + d + 2 * H.SR > n - w:
            break
        if kind == "robot":
            sp_ev.append((t, i))
        elif kind == "user":
            mic_ev.append((t, i))
        t += d + int(rng.uniform(0.6, 2.5) * H.SR)
    # the last window: the first one's turns again (those that end inside it)
    shift = n - w
    sp_ev += [(s + shift, i) for s, i in sp_ev if s + robot[i].size + H.SR < w]
    mic_ev += [(s + shift, i) for s, i in mic_ev if s + user[i].size + H.SR < w]
    onsets = [s for s, _ in sp_ev]
    ends = [s + robot[i].size for s, i in sp_ev]
    return Conversation(H.Track(robot, sp_ev, n), H.Track(user, mic_ev, n), onsets, ends, n, pauses)


def windows(total_s: float) -> float:
    """Window length for 'first vs last' (s): 5 minutes, or half the run if shorter than 10."""
    return 300.0 if total_s >= 600 else total_s / 2


def user_face(t: float, space, rng_phase: float) -> tuple[np.ndarray, float]:
    """The user's face: present except 20 s every 7 minutes; nods and smiles slowly."""
    if (t % 420) > 400:
        return space.neutral(), 0.0
    v = space.neutral().copy()
    v[space.index("head_pitch")] = 0.08 * np.sin(2 * np.pi * 0.4 * t + rng_phase)
    v[space.index("mouthSmileLeft")] = v[space.index("mouthSmileRight")] = 0.3 + 0.3 * np.sin(2 * np.pi * t / 37)
    return v, 0.9


# -- simulated time ---------------------------------------------------------------------------------

def simulate(a) -> dict:
    import psutil

    from avatar_forcing_ros.core.runtime import StreamingGenerator
    from avatar_forcing_ros.generation.factory import load_motion_model
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

    conv = conversation(a.minutes, a.seed)
    model, note = load_motion_model(a.model, fps=25.0, block_frames=2, seed=a.seed,
                                    guidance_scale=2.0 if a.model == "default" else 1.0)  # the shipped model's tuned value
    if note:
        print(f"note: {note}")
    # the simulated clock stands still while a block is computed: no compute budget needed
    gen = StreamingGenerator(model, output_delay_s=a.output_delay, compute_budget_s=0.0)
    space, hop, fps = model.space, gen.hop, gen.fps
    rend = StylisedFaceRenderer()
    x0, y0, x1, y1 = rend.mouth_box()
    mouth = np.array(rend.mouth_colour, np.int16)

    def open_mouth(values) -> bool:
        crop = rend.render(values)[y0:y1, x0:x1].astype(np.int16)
        return int((np.abs(crop - mouth).max(axis=2) <= 20).sum()) > H.MOUTH_PIXELS

    me = psutil.Process()
    n_frames_max = conv.n // hop + 100
    pres = np.full(n_frames_max, np.nan)
    first_nz = np.full(n_frames_max, -1, np.int32)  # first non-silent speech sample in the frame
    opened = np.zeros(n_frames_max, bool)  # rendered open mouth (frames near robot onsets)
    near = np.zeros(n_frames_max, bool)  # frames within 1.2 s after a robot onset: rendered
    for s in conv.robot_onsets:
        near[s // hop: s // hop + int(1.2 * fps) + 1] = True
    rss_t, rss = [], []
    push_cost = np.zeros(2 * (conv.n // H.CHUNK + 1))  # preallocated: the soak measures the runtime's memory
    n_push = 0
    compute = np.full(conv.n // H.CHUNK + 1, np.nan)  # block compute time (s) by block start frame
    n_blocks = 0
    gen.start(0.0)
    chunk = H.CHUNK
    n_chunks = conv.n // chunk
    # Delivery as in the live graph: each chunk is stamped with its capture time and arrives
    # after a delay (DDS + a busy executor: 2 ms + exponential 3 ms, and 1 % of chunks 20-60 ms
    # late; in order, so a late chunk holds back the next ones); the generator steps on its
    # 100 Hz tick. --no-jitter: every chunk arrives the moment its last sample is captured.
    rng = np.random.default_rng(a.seed + 1)
    arrivals = {}
    for key in ("speech", "mic"):
        cap_end = (np.arange(n_chunks) + 1) * chunk / H.SR
        d = np.zeros(n_chunks) if not a.jitter else (
            0.002 + rng.exponential(0.003, n_chunks) + (rng.random(n_chunks) < 0.01) * rng.uniform(0.02, 0.06, n_chunks))
        arrivals[key] = np.maximum.accumulate(cap_end + d)
    tick = 0.01
    n_ticks = int(conv.n / H.SR / tick)
    nxt = {"speech": 0, "mic": 0}
    next_face = 0.0
    t_wall = time.perf_counter()
    phase = 0.3
    rss_every = int(10 / tick)
    for j in range(1, n_ticks + 1):
        now = j * tick
        for key in ("speech", "mic"):
            arr = arrivals[key]
            while nxt[key] < n_chunks and arr[nxt[key]] <= now:
                k = nxt[key]
                nxt[key] += 1
                stamp = k * chunk / H.SR if a.jitter else None
                t0 = time.perf_counter()
                if key == "speech":
                    sp = conv.speech.chunk(k * chunk, chunk)
                    if sp.any() or a.continuous:  # a TTS publishes only while it talks
                        gen.push_avatar_audio(sp.astype(np.float32) / 32767, float(arr[k]), stamp)
                else:
                    gen.push_user_audio(conv.mic.chunk(k * chunk, chunk).astype(np.float32) / 32767,
                                        float(arr[k]), stamp)
                push_cost[n_push] = time.perf_counter() - t0
                n_push += 1
        if now >= next_face:
            v, c = user_face(now, space, phase)
            gen.push_user_motion(v, c, now)
            next_face += 1.0 / fps
        if gen.step(now):
            while n_blocks < gen.stats.blocks:  # one step may make several blocks: the last one's time
                compute[n_blocks] = gen.stats.last_block_compute_s
                n_blocks += 1
        for f in gen.pop_due(now):
            i = f.index
            if i >= n_frames_max:
                continue
            pres[i] = f.presentation_time
            nz = np.flatnonzero(np.abs(f.speech) > 1e-4)
            first_nz[i] = nz[0] if nz.size else -1
            if near[i]:
                opened[i] = open_mouth(f.values)
        if j % rss_every == 0:
            rss_t.append(now)
            rss.append(me.memory_info().rss / 2**20)
        if a.progress and j % int(300 / tick) == 0:
            print(f"  simulated {now / 60:.0f} min in {time.perf_counter() - t_wall:.0f} s wall", flush=True)
    wall = time.perf_counter() - t_wall
    # per robot turn: latency (onset chunk complete -> presentation of the first open-mouth
    # frame) and the A/V offset of its speech (in -> out, frames)
    lat, av = [], []
    for s in conv.robot_onsets:
        arrival = (s // chunk + 1) * chunk / H.SR  # the onset chunk is complete (captured)
        fr = s // hop
        hits = [i for i in range(fr, fr + int(1.2 * fps) + 1) if opened[i] and np.isfinite(pres[i])]
        lat.append((pres[hits[0]] - arrival) * 1e3 if hits else np.nan)
        nzf = [i for i in range(max(fr - 5, 0), fr + 10) if first_nz[i] >= 0]
        av.append((nzf[0] * hop + first_nz[nzf[0]] - s) / hop if nzf else np.nan)
    made = np.isfinite(pres)
    frame_idx = np.flatnonzero(made)
    delay_err = (pres[made] - (frame_idx / fps + gen.output_delay_s)) * 1e3
    per_s = np.bincount((frame_idx // fps).astype(int))[:-1]  # the last second is partial
    blocks = np.asarray(gen.stats.compute_s)
    return {"mode": "simulated", "conv": conv, "onset_t": np.asarray(conv.robot_onsets) / H.SR,
            "lat": np.asarray(lat), "av_frames": np.asarray(av), "delay_err_ms": delay_err,
            "fps_t": np.arange(per_s.size), "fps": per_s.astype(float), "rss_t": np.asarray(rss_t),
            "rss": {"runtime process": np.asarray(rss)}, "wall_s": wall, "skipped": gen.stats.skipped_frames,
            "frames": int(made.sum()), "blocks": gen.stats.blocks, "compute_p95_ms": H.pct(blocks, 95) * 1e3,
            "push_cost_ms": push_cost[:n_push] * 1e3, "model": model.name,
            "compute_ms": compute[:n_blocks] * 1e3, "block_t": np.arange(n_blocks) * gen.block / fps}


# -- live nodes -------------------------------------------------------------------------------------

def live(a) -> dict:
    conv = conversation(a.minutes, a.seed)
    env = H.ros_env()
    logs = Path(tempfile.mkdtemp(prefix="af_soak_"))
    ns = f"/soak_{int(time.time()) % 10000}"
    H.save_plan(logs / "plan.npz", conv.speech, conv.mic, conv.robot_onsets, a.camera_hz,
                speech_gaps=not a.continuous, mic_noise=0.01)
    hogs = H.start_hogs(a.load)
    graph = H.start_graph(ns, env, logs, {"model": a.model, "output_delay_s": a.output_delay}, a.all_in_one)
    sink, sink_out, ready = H.start_sink(ns, env, logs, seconds=a.minutes * 60 + 600, nice=a.driver_nice)
    feed = None
    try:
        H.wait_file(ready, 120, graph + [sink])
        feed, feed_out = H.start_feed(ns, env, logs, logs / "plan.npz", nice=a.driver_nice)
        sampler = H.ProcessSampler({g.name: g.pid for g in graph} | {"feed": feed.pid, "sink": sink.pid})
        last_print = time.time()
        while feed.alive():
            time.sleep(2.0)
            sampler.sample()
            for g in graph + [sink]:
                if not g.alive():
                    raise RuntimeError(f"{g.name} exited ({g.popen.returncode})\n{g.tail()}")
            if a.progress and time.time() - last_print > 60:
                last_print = time.time()
                print(f"  {(time.time() - sampler.t[0]) / 60:.0f} min: RSS "
                      + ", ".join(f"{n} {v[-1]:.0f} MiB" for n, v in sampler.rss.items()), flush=True)
        time.sleep(1.5)
        sink.stop()
        fd, sd = np.load(feed_out), np.load(sink_out, allow_pickle=True)
    finally:
        for x in [feed, sink, *graph]:
            if x is not None:
                x.stop()
        H.stop_hogs(hogs)
    t0 = float(fd["t0"])
    onset_pub = fd["chunk_pub"][np.asarray(conv.robot_onsets) // H.CHUNK]
    lat, _ = H.onset_latencies(onset_pub, sd["image"])
    # speech in -> speech out: presentation stamp of the first avatar/audio message with sound
    # after each onset minus (its capture time + output_delay), in frames: 0 = presented with
    # the frame that holds it (that frame starts up to one frame before the onset)
    audio, motion = sd["audio"], sd["motion"]
    av = np.round((H.speech_out_delays(onset_pub, audio) - a.output_delay) * 25 + 0.5)
    # avatar/audio stamps vs avatar/face_motion stamps (each frame's speech and face)
    ms = np.sort(motion[:, 1])
    j = np.clip(np.searchsorted(ms, audio[:, 1]), 1, max(ms.size - 1, 1))
    near = np.where(np.abs(ms[j - 1] - audio[:, 1]) < np.abs(ms[j] - audio[:, 1]), ms[j - 1], ms[j]) \
        if ms.size > 1 else np.full(audio.shape[0], np.nan)
    stamp_off = np.round((audio[:, 1] - near) * 25)
    edges = np.arange(0, fd["wall_s"] + 1, 10.0)
    fps = np.histogram(motion[:, 0] - t0, edges)[0] / 10.0
    ifps = np.histogram(sd["image"][:, 0] - t0, edges)[0] / 10.0
    return {"mode": "live", "conv": conv, "onset_t": onset_pub - t0, "lat": lat * 1e3, "av_frames": np.asarray(av),
            "stamp_off": stamp_off, "stamp_off_t": audio[:, 0] - t0,
            "fps_t": edges[:-1], "fps": fps, "ifps": ifps,
            "rss_t": np.asarray(sampler.t) - t0, "rss": {n: np.asarray(v) for n, v in sampler.rss.items()},
            "cpu": {n: sampler.mean_cpu(n) for n in sampler.p},
            "feed_late": fd["chunk_late"] * 1e3, "sink_late": sd["lateness"] * 1e3, "wall_s": float(fd["wall_s"]),
            "model": a.model, "diags": H.load_diags(sd)}


# -- report -----------------------------------------------------------------------------------------

def summarise(r: dict, a) -> bool:
    total = a.minutes * 60
    w = windows(total)
    n_win = int(np.ceil(total / 300))
    comp = "compute_ms" in r
    print(f"\n{'t (min)':>8} {'fps min':>8} {'fps mean':>9} {'lat p95':>8} {'onsets':>7} {'A/V fr':>7} "
          + (f"{'block ms p95':>13} " if comp else "")
          + " ".join(f"{n[:14]:>15}" for n in r["rss"]))
    for i in range(n_win):
        lo, hi = i * 300, min((i + 1) * 300, total)
        f = r["fps"][(r["fps_t"] >= lo) & (r["fps_t"] < hi)]
        sel = (r["onset_t"] >= lo) & (r["onset_t"] < hi)
        rs = [v[(r["rss_t"] >= lo) & (r["rss_t"] < hi)] for v in r["rss"].values()]
        avw = r["av_frames"][sel]
        print(f"{lo / 60:5.0f}-{hi / 60:<3.0f}{(f.min() if f.size else np.nan):7.1f} {(f.mean() if f.size else np.nan):9.2f} "
              f"{H.pct(r['lat'][sel], 95):8.0f} {int(np.isfinite(r['lat'][sel]).sum()):3d}/{sel.sum():<3d} "
              f"{(np.nanmax(np.abs(avw)) if np.isfinite(avw).any() else np.nan):7.2f} "
              + (f"{H.pct(r['compute_ms'][(r['block_t'] >= lo) & (r['block_t'] < hi)], 95):13.1f} " if comp else "")
              + " ".join(f"{(np.nanmax(v) if v.size else np.nan):11.0f} MiB" for v in rs))

    first = r["onset_t"] < w
    last = r["onset_t"] >= total - w
    p_first, p_last = H.pct(r["lat"][first], 95), H.pct(r["lat"][last], 95)
    av_end = r["av_frames"][last]
    checks = {}
    checks["A/V offset 0 frames at the end (speech in -> out, last window)"] = (
        bool(np.isfinite(av_end).any() and np.nanmax(np.abs(av_end)) < 0.5),
        f"last-window onsets max |offset| {np.nanmax(np.abs(av_end)) if np.isfinite(av_end).any() else float('nan'):.2f} frames, "
        f"whole run max {np.nanmax(np.abs(r['av_frames'])):.2f}")
    if "stamp_off" in r:
        so = r["stamp_off"][r["stamp_off_t"] >= total - w]
        checks["avatar/audio stamps = avatar/face_motion stamps (last window)"] = (
            bool(so.size and np.nanmax(np.abs(so)) == 0),
            f"{int((so != 0).sum())} of {so.size} audio messages off, max {np.nanmax(np.abs(so)) if so.size else float('nan'):.0f} frames")
    for name, v in r["rss"].items():
        if name in ("feed", "sink"):
            continue
        base = v[r["rss_t"] >= 60]
        if base.size >= 2:
            g = (np.nanmax(base) - base[0]) / base[0] * 100
            checks[f"RSS growth < 5 % after the first minute: {name}"] = (
                g < 5.0, f"{base[0]:.0f} -> max {np.nanmax(base):.0f} MiB (+{g:.1f} %), end {base[-1]:.0f} MiB")
    checks[f"latency p95, last {w / 60:.3g} min within 10 % of the first {w / 60:.3g} min"] = (
        bool(np.isfinite(p_first) and np.isfinite(p_last) and abs(p_last - p_first) <= 0.1 * p_first),
        f"first {p_first:.0f} ms, last {p_last:.0f} ms ({(p_last - p_first) / p_first * 100:+.0f} %)")
    # robot turns after >= 30 s of robot silence (the runtime's audio ring): their first chunk
    # is erased by the gap fill (see PROFILE.md), which shows as a half-frame offset
    on, en = np.asarray(r["conv"].robot_onsets), np.asarray(r["conv"].robot_ends)
    long_gap = np.r_[on[:1] >= 30 * H.SR, (on[1:] - en[:-1]) >= 29.98 * H.SR] if on.size else np.zeros(0, bool)
    half = np.abs(r["av_frames"] - 0.5) < 0.1 if r["mode"] == "simulated" else np.zeros_like(long_gap)
    n_open = int(np.isfinite(r["lat"]).sum())
    checks["every robot turn opened the mouth"] = (n_open == r["lat"].size, f"{n_open}/{r['lat'].size}")
    print(f"\nsummary ({r['mode']}, model {r['model']}, {a.minutes:g} min, {len(r['conv'].robot_onsets)} robot turns):")
    if r["mode"] == "simulated":
        print(f"  info: {int(long_gap.sum())} robot turns came after >= 30 s of robot silence; "
              f"{int((half & long_gap).sum())} of them and {int((half & ~long_gap).sum())} other turns had a "
              f"half-frame offset (first 20 ms lost); offsets >= 1 frame: {int((np.abs(r['av_frames']) >= 0.95).sum())}")
    ok = True
    for name, (passed, detail) in checks.items():
        ok &= passed
        print(f"  {'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return ok


def plot(r: dict, a, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    m = 1 / 60
    ax[0].plot(r["fps_t"] * m, r["fps"], lw=0.7, label="avatar face motion")
    if "ifps" in r:
        ax[0].plot(r["fps_t"] * m, r["ifps"], lw=0.7, label="avatar images")
    ax[0].axhline(25, color="grey", ls=":")
    ax[0].set_ylabel(f"frames/s ({'1 s' if r['mode'] == 'simulated' else '10 s'} bins)")
    ax[0].legend(loc="lower right")
    ax[1].plot(r["onset_t"] * m, r["av_frames"], ".", label="speech in -> out (robot turn onsets)")
    if "stamp_off" in r:
        ax[1].plot(r["stamp_off_t"] * m, r["stamp_off"], ",", label="avatar/audio vs face_motion stamps")
    ax[1].set_ylabel("A/V offset (frames)")
    ax[1].legend(loc="upper right")
    for name, v in r["rss"].items():
        if name in ("feed", "sink"):
            continue  # the driver's processes (they end first)
        ax[2].plot(r["rss_t"] * m, v, label=name)
    ax[2].set_ylabel("RSS (MiB)")
    ax[2].legend(loc="center right", fontsize=8)
    ax[3].plot(r["onset_t"] * m, r["lat"], ".", ms=3, alpha=0.5, label="per robot turn")
    total = a.minutes * 60
    edges = np.arange(0, total + 1, 300 if total >= 600 else total / 4)
    mids, p95 = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (r["onset_t"] >= lo) & (r["onset_t"] < hi)
        mids.append((lo + hi) / 2 * m)
        p95.append(H.pct(r["lat"][sel], 95))
    ax[3].step(mids, p95, where="mid", color="red", label="p95 per window")
    ax[3].set_ylabel("onset -> open mouth (ms)")
    ax[3].set_xlabel("time (min)")
    ax[3].legend(loc="upper right")
    fig.suptitle(f"soak, {r['mode']}, model {r['model']}, {a.minutes:g} min")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"plot: {path}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--live", action="store_true", help="through the live nodes in real time")
    p.add_argument("--minutes", type=float, help="length (default 60 simulated, 5 live)")
    p.add_argument("--model", default="default", help="motion model: default (learned) or procedural")
    p.add_argument("--output-delay", type=float, default=0.1, help="output_delay_s")
    p.add_argument("--all-in-one", action="store_true", help="live: the graph in one process")
    p.add_argument("--load", type=int, default=0, help="live: CPU hogs during the run")
    p.add_argument("--camera-hz", type=float, default=15.0, help="live: camera rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--continuous-speech", dest="continuous", action="store_true",
                   help="the speech topic streams silence between turns (else quiet between turns)")
    p.add_argument("--no-jitter", dest="jitter", action="store_false",
                   help="simulated: chunks arrive exactly when captured (no delivery delay)")
    p.add_argument("--plot", type=Path, help="PNG to write (default soak_<mode>.png)")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress lines")
    p.add_argument("--driver-nice", type=int, default=0,
                   help="nice value of the feed and receiver processes (e.g. -5 as root: the driver "
                        "keeps its schedule on a loaded machine; 0: same priority as the nodes)")
    a = p.parse_args()
    a.minutes = a.minutes or (5.0 if a.live else 60.0)
    print(f"== soak, {'live nodes' if a.live else 'streaming runtime, simulated clock'}, model {a.model}, "
          f"{a.minutes:g} min{', all-in-one' if a.all_in_one and a.live else ''}"
          f"{f', load {a.load}' if a.live and a.load else ''}")
    r = live(a) if a.live else simulate(a)
    if r["mode"] == "simulated":
        pc = r["push_cost_ms"]
        print(f"simulated {a.minutes:g} min in {r['wall_s']:.0f} s wall ({a.minutes * 60 / r['wall_s']:.0f}x real time); "
              f"{r['frames']} frames, {r['skipped']} skipped; block compute p95 {r['compute_p95_ms']:.1f} ms; "
              f"audio push p50/max {np.percentile(pc, 50):.3f}/{pc.max():.1f} ms; "
              f"presentation - content - output_delay: max |{np.max(np.abs(r['delay_err_ms'])):.3f}| ms")
    else:
        fl, sl = r["feed_late"], r["sink_late"]
        print(f"driver: feed lateness p50/p95/max {H.pct(fl, 50):.1f}/{H.pct(fl, 95):.1f}/{np.nanmax(fl):.0f} ms; "
              f"receiver loop lateness p95/max {H.pct(sl, 95):.1f}/{sl.max():.0f} ms; CPU % "
              + ", ".join(f"{n} {c:.0f}" for n, c in r["cpu"].items()))
    ok = summarise(r, a)
    plot(r, a, a.plot or Path(f"soak_{r['mode']}.png"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
