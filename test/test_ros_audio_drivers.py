"""Audio as real drivers send it: audio_common's audio_capture announces MP3 with a latched
AudioInfo before the avatar starts; a TTS on a remapped topic with its own info topic sends
48 kHz stereo PCM. The avatar stays closed-mouthed for the MP3 bytes, lip-syncs to the PCM, and
its delayed speech also goes out as plain AudioData where audio_play listens."""
from __future__ import annotations

import array
import time

import numpy as np

from avatar_forcing_ros.core.motion import AF_MOTION_V1
from pipeline_driver import node_args
from ros_helpers import unique_topic, wait_for


JAW_INDEX = AF_MOTION_V1.index("jawOpen")


def test_mp3_info_latched_before_start_mutes_and_pcm_on_remapped_topics_lip_syncs(ros_context, node_process):
    from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from avatar_forcing_ros.core.audio import resample
    from avatar_forcing_ros.corpus.speech import synthesize
    from avatar_forcing_ros.msg import FaceMotion

    ns = unique_topic("drivers")
    node = ros_context.node()
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    info_pub = node.create_publisher(AudioInfo, f"{ns}/tts/audio_info", latched)
    audio_pub = node.create_publisher(AudioDataStamped, f"{ns}/tts/audio", 50)
    info_pub.publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE", bitrate=128, coding_format="mp3"))
    motion = ros_context.collect(FaceMotion, f"{ns}/avatar/face_motion", 50, node=node)
    played = ros_context.collect(AudioData, f"{ns}/audio", 50, node=node)
    diagnostics = ros_context.collect(DiagnosticArray, "/diagnostics", 50, node=node)
    gen = node_process("avatar_forcing_ros.ros.generator_node",
                       *node_args(ns, "model:=procedural", "diagnostics_period_s:=0.2"),
                       "-r", f"avatar/speech:={ns}/tts/audio", "-r", f"avatar/speech_info:={ns}/tts/audio_info")

    def status():
        for m in reversed(diagnostics):
            for st in m.status:
                if st.hardware_id == f"{ns}/generator":
                    return {kv.key: kv.value for kv in st.values}
        return {}

    wait_for(lambda: status().get("dropped speech audio info not PCM") == "1", 30, spin=ros_context,
             processes=[gen], what="the MP3 AudioInfo latched before start")
    wait_for(lambda: audio_pub.get_subscription_count() > 0, 20, spin=ros_context, processes=[gen])

    def send(chunks):
        """Stream chunks in real time (20 ms each); max jawOpen of the frames made meanwhile."""
        before = len(motion)
        t0 = time.monotonic()
        for i, c in enumerate(chunks):
            wait_for(lambda: time.monotonic() - t0 >= i * 0.02, 5, spin=ros_context, interval=0.002)
            msg = AudioDataStamped()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.audio.data = array.array("B", c)
            audio_pub.publish(msg)
        wait_for(lambda: len(motion) > before + 10, 10, spin=ros_context, processes=[gen])
        return max(m.values[JAW_INDEX] for m in motion[before:])

    rng = np.random.default_rng(1)
    mp3_like = [bytes(rng.integers(0, 256, 640, dtype=np.uint8)) for _ in range(75)]  # 1.5 s of "MP3"
    assert send(mp3_like) < 0.1
    assert int(status().get("dropped speech audio muted (not PCM)", 0)) >= 50

    info_pub.publish(AudioInfo(channels=2, sample_rate=48000, sample_format="S16LE", coding_format="wave"))
    wait_for(lambda: status().get("speech audio format") == "S16LE 48000 Hz x2", 10, spin=ros_context,
             processes=[gen], what="the PCM format to be taken")
    voice = synthesize("Good morning, how are you today?").audio
    stereo = np.repeat(resample(voice, 16000, 48000)[:, None], 2, axis=1)
    pcm = (np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()
    n_played = len(played)
    assert send([pcm[i:i + 3840] for i in range(0, len(pcm), 3840)]) > 0.3
    # audio_play's topic carried the delayed speech: 16 kHz mono S16LE, loud while speaking
    out = np.frombuffer(b"".join(bytes(m.data) for m in played[n_played:]), "<i2")
    assert out.size > 16000 and np.abs(out).max() > 3000
    gen.stop(check=True)
