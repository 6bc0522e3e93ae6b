"""End to end over real DDS: three node processes turn a camera, a microphone and the robot's
speech into avatar images; the avatar's mouth moves with the speech, measured on the images."""
import numpy as np
import pytest

from pipeline_driver import PipelineDriver, mouth_cavity_pixels, node_args
from ros_helpers import unique_topic, wait_for

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def utterance():
    from avatar_forcing_ros.corpus.speech import synthesize

    return synthesize("Hello there! It is lovely to meet you today.", voice="en-us", rate_wpm=170)


def start_pipeline(node_process, ns, *generator_params):
    return [
        node_process("avatar_forcing_ros.ros.perception_node", *node_args(ns)),
        node_process("avatar_forcing_ros.ros.generator_node",
                     *node_args(ns, "model:=procedural", *generator_params)),
        node_process("avatar_forcing_ros.ros.renderer_node", *node_args(ns)),
    ]


def test_three_node_processes_turn_camera_mic_and_speech_into_avatar_images(ros_context, node_process, utterance):
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

    ns = unique_topic("e2e")
    nodes = start_pipeline(node_process, ns)
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["camera", "mic", "speech"], nodes)
    wait_for(lambda: drv.images, timeout=30, spin=ros_context, processes=nodes, what="a first avatar image")

    lead, tail = 1.5, 1.5
    speech = np.concatenate([np.zeros(int(lead * 16000), np.float32), utterance.audio])
    t0 = drv.stream(lead + utterance.duration_s + tail, speech=speech, processes=nodes)
    wait_for(lambda: drv.user_motion, timeout=10, spin=ros_context, processes=nodes, what="user face motion")
    # The republished speech is described by a latched AudioInfo that a late subscriber still gets.
    from audio_common_msgs.msg import AudioInfo
    from rclpy.qos import DurabilityPolicy, QoSProfile

    info = ros_context.collect(AudioInfo, f"{ns}/avatar/audio_info",
                               QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    wait_for(lambda: info, timeout=10, spin=ros_context, processes=nodes, what="the latched avatar/audio_info")
    assert (info[0].sample_rate, info[0].channels, info[0].sample_format) == (16000, 1, "S16LE")
    # How far audio is queued beyond the present (latency every frame pays) is on /diagnostics.
    wait_for(lambda: "speech audio queued ahead (ms)" in drv.status_values("generator"), timeout=10,
             spin=ros_context, processes=nodes, what="the generator's audio lead on /diagnostics")
    values = drv.status_values("generator")
    for side in ("speech", "user"):
        assert values[f"{side} audio queued ahead (ms)"].isdigit(), values  # whole milliseconds
    for node in nodes:
        node.stop(check=True)

    images = [m for m in drv.images if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 >= t0]
    # (how many images arrive depends on the machine's load: the renderer drops stale frames,
    # newest first; what is asserted is what they show, in each window below)
    assert all((m.width, m.height, m.encoding, m.step) == (480, 480, "rgb8", 480 * 3) for m in images)
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in images])
    assert np.all(np.diff(stamps) > 0)
    assert drv.compressed, "no compressed images"

    # The stamp is the presentation time: content time + the generator's output delay.
    content = stamps - 0.1 - t0
    renderer = StylisedFaceRenderer()
    open_px = np.array([mouth_cavity_pixels(m, renderer) for m in images])
    speaking = (content > lead + 0.2) & (content < lead + utterance.duration_s - 0.2)
    silent = (content < lead - 0.3) | (content > lead + utterance.duration_s + 0.5)
    assert speaking.sum() > 10 and silent.sum() > 10
    assert (open_px[speaking] > 50).mean() > 0.4, "the mouth should open while speech plays"
    assert (open_px[silent] > 0).mean() < 0.05, "the mouth should stay closed in silence"

    # The user's face was seen by the perception node on the camera frames.
    assert any(m.face_present and m.confidence > 0.5 for m in drv.user_motion)
    # The robot's speech comes back out, delayed, one 40 ms chunk per frame.
    assert all(len(m.audio.data) == 1280 for m in drv.avatar_audio)
    heard = np.concatenate([np.frombuffer(bytes(m.audio.data), "<i2") for m in drv.avatar_audio])
    assert np.abs(heard).max() > 3000


def test_generator_node_loads_the_shipped_learned_model_by_default_and_lip_syncs(ros_context, node_process, utterance):
    ns = unique_topic("learned")
    gen = node_process("avatar_forcing_ros.ros.generator_node", *node_args(ns))  # model: default
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["speech", "mic"], [gen])
    wait_for(lambda: drv.avatar_motion, timeout=60, spin=ros_context, processes=[gen], what="motion")
    assert "motion model: af-forcing" in gen.log()

    lead, tail = 1.0, 1.0
    speech = np.concatenate([np.zeros(int(lead * 16000), np.float32), utterance.audio])
    t0 = drv.stream(lead + utterance.duration_s + tail, speech=speech, camera_hz=0, processes=[gen])
    gen.stop(check=True)

    frames = [m for m in drv.avatar_motion if m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 >= t0]
    t = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in frames]) - 0.1 - t0
    jaw = np.array([m.values[8] for m in frames])
    speaking = (t > lead + 0.2) & (t < lead + utterance.duration_s - 0.2)
    silent = t < lead - 0.2
    assert speaking.sum() > 10 and silent.sum() > 5
    assert jaw[speaking].mean() > jaw[silent].mean() + 0.1
