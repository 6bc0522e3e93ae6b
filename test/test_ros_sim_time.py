"""A recorded bag played into the live nodes under sim time, as `ros2 bag play --clock --loop`
does: /clock from the bag's times, the messages at their log times, then time jumps back to the
start for the second loop. The avatar lip-syncs to the replayed speech both times."""
from __future__ import annotations

import time

import numpy as np

from avatar_forcing_ros.core.audio import encode_s16le
from avatar_forcing_ros.core.motion import AF_MOTION_V1
from avatar_forcing_ros.corpus.speech import synthesize
from avatar_forcing_ros.offline import bags
from pipeline_driver import node_args
from ros_helpers import unique_topic, wait_for

JAW = AF_MOTION_V1.index("jawOpen")
T0 = 2000.0  # bag time of the first message
SPEECH_AT = 0.6


def speech_bag(path):
    voice = synthesize("Hello, nice to see you again.").audio
    track = np.concatenate([np.zeros(int(SPEECH_AT * 16000), np.float32), voice, np.zeros(8000, np.float32)])
    with bags.BagWriter(path) as w:
        for k in range(track.size // 320):
            t = T0 + k * 0.02
            w.write(bags.topic("speech"), bags.t_to_ns(t + 0.02), bags.audio_msg(encode_s16le(track[k * 320:(k + 1) * 320]), t))
    return track.size / 16000


def test_bag_played_with_clock_and_looped_lip_syncs_both_times(ros_context, node_process, tmp_path):
    from audio_common_msgs.msg import AudioDataStamped
    from rosgraph_msgs.msg import Clock

    from avatar_forcing_ros.core import messages
    from avatar_forcing_ros.core.messages import s_to_sec_nanosec
    from avatar_forcing_ros.msg import FaceMotion
    from avatar_forcing_ros.ros.messages import ROS_KIT

    duration = speech_bag(tmp_path / "bag")
    recorded = [m for m in bags.read_bag(tmp_path / "bag", bags.BagAccount())]
    ns = unique_topic("simtime")
    node = ros_context.node()
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    speech_pub = node.create_publisher(AudioDataStamped, f"{ns}/avatar/speech", 50)
    motion = ros_context.collect(FaceMotion, f"{ns}/avatar/face_motion", 100, node=node)
    gen = node_process("avatar_forcing_ros.ros.generator_node",
                       *node_args(ns, "model:=procedural", "use_sim_time:=true"))

    def publish_clock(t):
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = s_to_sec_nanosec(t)
        clock_pub.publish(msg)

    wait_for(lambda: speech_pub.get_subscription_count() > 0, 30, spin=ros_context, processes=[gen])
    tick = iter(np.arange(T0 - 30.0, T0 - 0.2, 0.02))  # the player's clock before the bag starts

    def clock_runs_and_frames_come():
        publish_clock(next(tick))
        return len(motion) > 5
    wait_for(clock_runs_and_frames_come, 20, spin=ros_context, processes=[gen], interval=0.02,
             what="frames on the sim clock")
    starts = []
    for loop in range(2):  # the second loop jumps back to T0, as --loop does
        starts.append(len(motion))
        wall0, bag0 = time.monotonic(), T0 - 0.2
        queue = list(recorded)
        next_clock = bag0
        while queue or next_clock < T0 + duration + 0.6:
            now = bag0 + (time.monotonic() - wall0)
            while next_clock <= now:  # /clock at 50 Hz
                publish_clock(next_clock)
                next_clock += 0.02
            while queue and queue[0].t_ns / 1e9 <= now:
                m = queue.pop(0)
                out = AudioDataStamped()
                out.header = messages.make_header(ROS_KIT, m.msg.header.stamp)
                out.audio.data = ROS_KIT.u8(bytes(np.asarray(m.msg.audio.data, np.uint8)))
                speech_pub.publish(out)
            ros_context.spin_once(0.002)
            assert gen.poll() is None, gen.log_tail()
    wait_for(lambda: len(motion) > starts[1] + 10, 10, spin=ros_context, processes=[gen])

    for loop, (a, b) in enumerate(zip(starts, starts[1:] + [len(motion)])):
        frames = motion[a:b]
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in frames])
        jaw = np.array([m.values[JAW] for m in frames])
        speaking = (stamps > T0 + SPEECH_AT + 0.2) & (stamps < T0 + duration - 0.6)
        assert speaking.sum() > 20, f"loop {loop}: {speaking.sum()} frames in bag time of the speech"
        assert jaw[speaking].max() > 0.3, f"loop {loop}: the mouth did not open for the replayed speech"
        assert jaw[stamps < T0 + SPEECH_AT - 0.1].max(initial=0.0) < 0.1, f"loop {loop}: mouth open before the speech"
    gen.stop(check=True)
