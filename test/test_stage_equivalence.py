"""One pipeline, two drivers: the live nodes and the offline replay make the same outputs and
the same skip accounting from the same input sequence.

The node path is the real perception, generator and renderer nodes (rclpy, in this process so
the test can hold the clock), fed over DDS one message at a time under sim time: the test
publishes /clock, lets the generator's timer fire at each tick, publishes the next input and
waits until the node has handled it. The replay path is the same sequence written to a bag and
run through ``offline.replay``. The sequence has what drivers really send: a 48 kHz stereo
robot voice announced by its AudioInfo, a microphone announced as MP3 (muted) and then as PCM,
an empty chunk, chunks out of order and late, camera frames that are stale, out of order or not
an image.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from avatar_forcing_ros.core.audio import encode_s16le, resample
from avatar_forcing_ros.core.messages import image_to_rgb, stamp_to_s
from avatar_forcing_ros.offline import bags
from avatar_forcing_ros.offline.replay import replay
from ros_helpers import wait_for
from test_bags_io import face_frames, speech_tracks

T0 = 500.0
DURATION_S = 2.4
TICK_S = 0.01  # the generator's tick_rate_hz 100
OVERRIDES = ["generator.model=default", "renderer.width=64", "renderer.height=64"]
# the test holds the clock while the generator computes, as bag time stands still in the replay
NODE_PARAMS = {"generator": {"model": "default", "compute_budget_s": 0.0}, "renderer": {"width": 64, "height": 64}}


def input_sequence():
    """[(time, stream, rosbags message)] in arrival order, with the bad cases in it."""
    mic, speech = speech_tracks()
    voice = speech[32000:32000 + int(DURATION_S * 16000)]  # the robot's speech, from its start
    stereo48 = np.repeat(resample(voice, 16000, 48000)[:, None], 2, axis=1)
    ev = [(T0, "speech_info", bags.audio_info_msg(48000, 2, "S16LE")),
          (T0, "user_audio_info", bags.audio_info_msg(coding_format="mp3"))]
    # robot speech, 20 ms chunks stamped at capture; chunk 30 arrives 60 ms late, 40/41 swapped
    chunks = [(T0 + k * 0.02, stereo48[k * 960:(k + 1) * 960]) for k in range(stereo48.shape[0] // 960)]
    arrivals = [(t + 0.02, t, x) for t, x in chunks]
    arrivals[30] = (arrivals[30][0] + 0.06, *arrivals[30][1:])
    arrivals[40], arrivals[41] = (arrivals[41][0], *arrivals[40][1:]), (arrivals[40][0], *arrivals[41][1:])
    for arrival, stamp, x in arrivals:
        ev.append((arrival, "speech", bags.audio_msg(encode_s16le(x.ravel()), stamp)))
    ev.append((T0 + 0.305, "speech", bags.audio_msg(b"", T0 + 0.3)))  # empty
    # microphone: MP3 at first (muted), PCM from 1 s on
    ev.append((T0 + 0.99, "user_audio_info", bags.audio_info_msg(16000, 1, "S16LE")))
    for k in range(int(DURATION_S / 0.02)):
        t = T0 + k * 0.02
        ev.append((t + 0.02, "user_audio", bags.audio_msg(encode_s16le(mic[k * 320:(k + 1) * 320]), t)))
    # camera at 10 Hz; frame 5 is stale, frame 9 goes back in time, frame 12 is not an image
    for i, rgb in enumerate(face_frames(int(DURATION_S * 10), size=128)):
        t = T0 + i * 0.1 + 0.005
        stamp = t - 0.03
        if i == 5:
            stamp = t - 2.0
        if i == 9:
            stamp = t - 0.25
        msg = bags.image_msg(rgb, stamp, "camera")
        if i == 12:
            msg.encoding = "yuv422_weird"
        ev.append((t, "camera", msg))
    ev.sort(key=lambda e: e[0])
    return ev


def write_bag(path, events):
    with bags.BagWriter(path) as w:
        for t, stream, msg in events:
            w.write(bags.topic(stream), bags.t_to_ns(t), msg)


def to_rclpy(msg):
    """The same message as an rclpy message (by fields)."""
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from sensor_msgs.msg import Image

    from avatar_forcing_ros.core import messages
    from avatar_forcing_ros.ros.messages import ROS_KIT

    kind = msg.__msgtype__
    if kind == bags.AUDIO_STAMPED:
        out = AudioDataStamped()
        out.header = messages.make_header(ROS_KIT, msg.header.stamp, msg.header.frame_id)
        out.audio.data = ROS_KIT.u8(np.asarray(msg.audio.data, np.uint8).tobytes())
        return out
    if kind == bags.AUDIO_INFO:
        return AudioInfo(channels=msg.channels, sample_rate=msg.sample_rate, sample_format=msg.sample_format,
                         bitrate=msg.bitrate, coding_format=msg.coding_format)
    assert kind == bags.IMAGE
    return Image(header=messages.make_header(ROS_KIT, msg.header.stamp, msg.header.frame_id), height=msg.height,
                 width=msg.width, encoding=msg.encoding, is_bigendian=msg.is_bigendian, step=msg.step,
                 data=ROS_KIT.u8(np.asarray(msg.data, np.uint8).tobytes()))


@pytest.fixture(scope="module")
def sequence():
    return input_sequence()


@pytest.fixture(scope="module")
def replayed(sequence, tmp_path_factory):
    d = tmp_path_factory.mktemp("equivalence")
    write_bag(d / "in", sequence)
    res = replay(d / "in", d / "out", overrides=OVERRIDES, images="raw")
    out = {}
    for m in bags.read_bag(d / "out", bags.BagAccount()):
        out.setdefault(m.topic, []).append(m.msg)
    return res, out


@pytest.fixture(scope="module")
def live(sequence, ros_context):
    """The sequence through the three nodes under sim time, one message at a time."""
    from audio_common_msgs.msg import AudioDataStamped, AudioInfo
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from avatar_forcing_ros.msg import FaceMotion
    from avatar_forcing_ros.ros.generator_node import GeneratorNode
    from avatar_forcing_ros.ros.perception_node import PerceptionNode
    from avatar_forcing_ros.ros.renderer_node import RendererNode

    ns = f"eq_{np.random.default_rng().integers(1 << 30)}"
    ctx = ros_context.context
    test = ros_context.node()
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    clock_pub = test.create_publisher(Clock, "/clock", reliable)
    pubs = {"speech": test.create_publisher(AudioDataStamped, f"/{ns}/avatar/speech", reliable),
            "user_audio": test.create_publisher(AudioDataStamped, f"/{ns}/user/audio", reliable),
            "speech_info": test.create_publisher(AudioInfo, f"/{ns}/avatar/speech_info", reliable),
            "user_audio_info": test.create_publisher(AudioInfo, f"/{ns}/user/audio_info", reliable),
            "camera": test.create_publisher(Image, f"/{ns}/camera/image_raw", reliable)}
    got = {"motion": ros_context.collect(FaceMotion, f"/{ns}/avatar/face_motion", reliable),
           "audio": ros_context.collect(AudioDataStamped, f"/{ns}/avatar/audio", reliable),
           "user": ros_context.collect(FaceMotion, f"/{ns}/user/face_motion", reliable),
           "image": ros_context.collect(Image, f"/{ns}/avatar/image", reliable)}

    def set_clock(t):
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = int(t), int(round((t - int(t)) * 1e9))
        clock_pub.publish(msg)
        target = msg.clock.sec * 10**9 + msg.clock.nanosec
        wait_for(lambda: all(n.get_clock().now().nanoseconds == target for n in nodes), 10,
                 spin=ros_context, what=f"sim time {t:.3f}")

    common = [Parameter("use_sim_time", value=True), Parameter("autostart", value=False),
              Parameter("camera_qos", value="reliable"), Parameter("user_audio_qos", value="reliable")]
    nodes = []
    for cls, name in ((PerceptionNode, "perception"), (GeneratorNode, "generator"), (RendererNode, "renderer")):
        params = [p for p in common if p.name in cls.PARAMETERS or p.name in ("use_sim_time", "autostart")]
        params += [Parameter(k, value=v) for k, v in NODE_PARAMS.get(name, {}).items()]
        node = cls(context=ctx, namespace=ns, parameter_overrides=params)
        ros_context.executor.add_node(node)
        nodes.append(node)
    perception, generator, renderer = nodes
    try:
        set_clock(T0)
        for node in nodes:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 20, spin=ros_context,
                 what="the nodes' subscriptions")
        wait_for(lambda: renderer._pubs["raw"].get_subscription_count() >= 1, 20, spin=ros_context)
        timer = generator._timer
        next_tick = T0 + TICK_S

        def frames_made():
            meter = generator.telemetry.rates.get("avatar face motion")
            return meter.count if meter else 0

        def advance(t):
            nonlocal next_tick
            while next_tick <= t + 1e-9:
                set_clock(next_tick)
                wait_for(lambda: timer.time_until_next_call() > 0, 10, spin=ros_context, what="a tick")
                # the renderer draws newest first: let it finish a frame before the next comes
                wait_for(lambda: renderer.stage.handled >= frames_made(), 10, spin=ros_context,
                         what="the renderer to draw the frame")
                next_tick = round(next_tick + TICK_S, 6)
            set_clock(t)

        for t, stream, msg in sequence:
            advance(t)
            before = generator.stage.handled
            camera_skips = sum(perception.telemetry.drops.values())
            pubs[stream].publish(to_rclpy(msg))
            if stream == "camera":  # skipped, or observed and handed on to the generator
                done = lambda: (sum(perception.telemetry.drops.values()) > camera_skips  # noqa: E731
                                or generator.stage.handled > before)
            else:
                done = lambda: generator.stage.handled > before  # noqa: E731
            wait_for(done, 10, spin=ros_context, what=f"{stream} at {t:.3f} handled")
        gen = generator.stage.generator
        advance(sequence[-1][0] + gen.output_delay_s + 2 * gen.block / gen.fps)
        wait_for(lambda: len(got["image"]) >= len(got["motion"]) > 0, 30, spin=ros_context,
                 what="an image for every frame")
        drops = {name: Counter(n.telemetry.drops) for name, n in zip(("perception", "generator", "renderer"), nodes)}
        yield got, drops
    finally:
        for node in nodes:
            ros_context.executor.remove_node(node)
            node.finalize()


def test_generator_frames_and_speech_are_identical(replayed, live):
    res, out = replayed
    got, _ = live
    rep_motion = out[bags.topic("avatar_motion")]
    assert len(got["motion"]) == len(rep_motion) > 40
    np.testing.assert_array_equal(np.array([m.values for m in got["motion"]], np.float32),
                                  np.array([np.asarray(m.values) for m in rep_motion], np.float32))
    assert [stamp_to_s(m.header.stamp) for m in got["motion"]] == [stamp_to_s(m.header.stamp) for m in rep_motion]
    live_audio = b"".join(bytes(m.audio.data) for m in got["audio"])
    rep_audio = b"".join(np.asarray(m.audio.data, np.uint8).tobytes() for m in out[bags.topic("avatar_audio")])
    assert live_audio == rep_audio
    # the robot's voice came through (48 kHz stereo, out of order and late chunks included)
    assert np.abs(np.frombuffer(live_audio, "<i2")).max() > 3000


def test_user_face_motion_is_identical(replayed, live):
    res, out = replayed
    got, _ = live
    rep = out[bags.topic("user_motion")]
    assert len(got["user"]) == len(rep) == 24 - 3  # stale, backwards and bad frames dropped
    np.testing.assert_array_equal(np.array([m.values for m in got["user"]], np.float32),
                                  np.array([np.asarray(m.values) for m in rep], np.float32))


def test_rendered_images_are_identical(replayed, live):
    res, out = replayed
    got, _ = live
    rep = out[bags.topic("avatar_image")]
    assert len(got["image"]) == len(rep)
    for a, b in zip(got["image"], rep):
        np.testing.assert_array_equal(image_to_rgb(a), image_to_rgb(b))


def test_skips_are_counted_the_same(replayed, live):
    res, _ = replayed
    _, drops = live
    skipped = res.account.skipped
    assert dict(skipped[bags.topic("camera")]) == {"stale frame (old stamp)": 1, "capture stamp went backwards": 1,
                                                   "bad image": 1}
    assert drops["perception"] == Counter(skipped[bags.topic("camera")])
    generator_skips = Counter()
    for stream in ("speech", "user_audio", "speech_info", "user_audio_info"):
        generator_skips.update(skipped[bags.topic(stream)])
    assert generator_skips["speech audio empty"] == 1
    assert generator_skips["user audio info not PCM"] == 1
    assert generator_skips["user audio muted (not PCM)"] == 49  # the microphone's first second
    assert drops["generator"] == generator_skips == Counter(res.skips)
    assert drops["renderer"] == Counter()
