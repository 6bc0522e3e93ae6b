"""Every bad input gets its stated outcome — a counted drop (reported on /diagnostics) or a
repair — and the node keeps publishing afterwards. Nodes run as separate processes."""
import array

import numpy as np
import pytest

from pipeline_driver import PipelineDriver, face_image, node_args, pcm16
from ros_helpers import unique_topic, wait_for

pytestmark = pytest.mark.timeout(180)
JAW = 8  # af-motion-v1 index of jawOpen


def tone(seconds, rate=16000, amp=0.4):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


def wait_drop(drv, node, reason, at_least, processes):
    wait_for(lambda: drv.drops(node).get(reason, 0) >= at_least, timeout=15, spin=drv.ros,
             processes=processes, what=f"{node} to report {at_least} x '{reason}'")


def wait_format(drv, expected, processes):
    wait_for(lambda: drv.status_values("generator").get("speech audio format") == expected, timeout=15,
             spin=drv.ros, processes=processes, what=f"the generator to report speech format {expected}")


def test_perception_drops_bad_images_with_a_count_and_keeps_tracking(ros_context, node_process):
    from sensor_msgs.msg import CompressedImage

    ns = unique_topic("bad_camera")
    # no age check: on a busy machine a frame may wait over 0.5 s for the tracker, and would be
    # dropped as stale before its content is looked at (the stale rule has tests of its own)
    raw = node_process("avatar_forcing_ros.ros.perception_node",
                       *node_args(ns, "camera_qos:=reliable", "diagnostics_period_s:=0.2", "max_frame_age_s:=0.0"))
    comp = node_process("avatar_forcing_ros.ros.perception_node",
                        *node_args(ns + "_c", "camera_qos:=reliable", "image_transport:=compressed",
                                   "diagnostics_period_s:=0.2", "max_frame_age_s:=0.0"))
    drv = PipelineDriver(ros_context, ns, camera_qos="reliable")
    drv_c = PipelineDriver(ros_context, ns + "_c", camera_qos="reliable")
    drv.wait_connected(["camera"], [raw])
    drv_c.wait_connected(["camera_compressed"], [comp])
    face = face_image()
    good = drv.image_msg(face)

    def variant(**fields):
        msg = drv.image_msg(face)
        for k, v in fields.items():
            setattr(msg, k, v)
        return msg

    bad = [
        dict(encoding="yuv422_weird"),                      # unknown encoding
        dict(step=480 * 3 - 1),                             # step shorter than a row
        dict(data=array.array("B", bytes(good.data)[:1000])),  # truncated
        dict(height=0, width=0, step=0, data=array.array("B")),  # empty
        dict(encoding="32FC1", step=480 * 4,                # float (NaN) image: not a camera image
             data=array.array("B", np.full((480, 480), np.nan, np.float32).tobytes())),
    ]
    for n, fields in enumerate(bad, 1):
        drv.pub["camera"].publish(variant(**fields))
        # one at a time: the node keeps only the newest frame, so a burst would be "stale" drops
        wait_for(lambda: sum(drv.drops("perception").values()) >= n, timeout=15,
                 spin=ros_context, processes=[raw], what="the bad frame to be counted")
    assert drv.drops("perception").get("bad image") == len(bad)

    drv_c.pub["camera_compressed"].publish(CompressedImage(format="jpeg", data=array.array("B", b"\xff\xd8garbage")))
    wait_drop(drv_c, "perception", "bad image", 1, [comp])

    for _ in range(20):  # good frames afterwards are tracked
        drv.pub["camera"].publish(drv.image_msg(face))
        ros_context.spin_once(0.05)
    wait_for(lambda: any(m.face_present for m in drv.user_motion), timeout=20, spin=ros_context,
             processes=[raw], what="face motion after the bad frames")
    raw.stop(check=True)
    comp.stop(check=True)


def test_generator_repairs_or_counts_bad_audio_and_motion_and_idles_when_inputs_stop(ros_context, node_process):
    from audio_common_msgs.msg import AudioInfo

    from avatar_forcing_ros.msg import FaceMotion

    ns = unique_topic("bad_audio")
    gen = node_process("avatar_forcing_ros.ros.generator_node",
                       *node_args(ns, "model:=procedural", "diagnostics_period_s:=0.2"))
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["speech", "speech_info", "user_motion"], [gen])
    drv.prime("speech", drv.audio_msg(bytes(640)))  # 20 ms of silence: speech below is timed from when it is sent
    wait_for(lambda: drv.avatar_motion, timeout=20, spin=ros_context, processes=[gen], what="motion")

    def jaw_during(send):
        """Max jawOpen of the frames presented from when ``send()`` starts streaming speech
        until a second and a half later. By the frames' stamps (presentation times), not by
        how many arrive: a generator stalled by a busy machine publishes its late frames of
        the time before the speech in one burst."""
        def stamp(m):
            return m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        t0 = drv.node.get_clock().now().nanoseconds * 1e-9
        send()
        wait_for(lambda: drv.avatar_motion and stamp(drv.avatar_motion[-1]) > t0 + 1.5, timeout=20,
                 spin=ros_context, processes=[gen], what="frames presented 1.5 s after the speech began")
        return max(m.values[JAW] for m in drv.avatar_motion if t0 <= stamp(m) <= t0 + 1.5)

    wait_format(drv, "S16LE 16000 Hz x1", [gen])  # the parameters, until an AudioInfo says otherwise
    # Odd byte counts: a 16-bit stream split at odd offsets is re-aligned, not garbled.
    pcm = bytes(pcm16(tone(1.0)))
    odd = [pcm[i:i + 641] for i in range(0, len(pcm), 641)]
    assert jaw_during(lambda: [drv.pub["speech"].publish(drv.audio_msg(c)) for c in odd]) > 0.3

    # Empty data: counted, nothing else happens.
    drv.pub["speech"].publish(drv.audio_msg(b""))
    wait_drop(drv, "generator", "speech audio empty", 1, [gen])

    # A non-PCM coding (audio_capture's default MP3) mutes the stream until a PCM AudioInfo:
    # its bytes are counted, never heard as noise. An unknown sample format is counted and
    # changes nothing (still muted).
    drv.pub["speech_info"].publish(AudioInfo(channels=1, sample_rate=16000, sample_format="S16LE", coding_format="mp3"))
    wait_drop(drv, "generator", "speech audio info not PCM", 1, [gen])
    noise = [bytes(np.random.default_rng(0).integers(0, 256, 640, dtype=np.uint8)) for _ in range(25)]

    def send_muted():  # one at a time, at a rate the node keeps up with: each one is counted
        for i, chunk in enumerate(noise):
            drv.pub["speech"].publish(drv.audio_msg(chunk))
            wait_drop(drv, "generator", "speech audio muted (not PCM)", i + 1, [gen])
    assert jaw_during(send_muted) < 0.1
    drv.pub["speech_info"].publish(AudioInfo(channels=1, sample_rate=16000, sample_format="G722", coding_format="wave"))
    wait_drop(drv, "generator", "speech audio info", 1, [gen])

    # Another sample rate, announced by AudioInfo: resampled, lips still move. (Info and audio
    # are separate topics with no order between them: wait until the node reports the format.)
    drv.pub["speech_info"].publish(AudioInfo(channels=2, sample_rate=48000, sample_format="S16LE", coding_format="wave"))
    wait_format(drv, "S16LE 48000 Hz x2", [gen])
    stereo48 = np.repeat(tone(1.0, rate=48000), 2)
    chunks48 = [bytes(pcm16(stereo48[i:i + 1920])) for i in range(0, stereo48.size, 1920)]
    assert jaw_during(lambda: [drv.pub["speech"].publish(drv.audio_msg(c)) for c in chunks48]) > 0.3

    # Float samples with NaN/inf: zeroed and counted.
    drv.pub["speech_info"].publish(AudioInfo(channels=1, sample_rate=16000, sample_format="F32LE", coding_format="wave"))
    wait_format(drv, "F32LE 16000 Hz x1", [gen])
    bad = tone(0.1)
    bad[::7] = np.nan
    bad[::11] = np.inf
    drv.pub["speech"].publish(drv.audio_msg(bad.astype("<f4").tobytes()))
    wait_drop(drv, "generator", "speech audio non-finite samples", 1, [gen])

    # User face motion of the wrong length or space: dropped; NaN values: replaced, counted.
    wrong_len = FaceMotion(motion_space="af-motion-v1", values=[0.1] * 5, confidence=1.0, face_present=True)
    wrong_space = FaceMotion(motion_space="arkit-52", values=[0.0] * 52, confidence=1.0, face_present=True)
    nan = FaceMotion(motion_space="af-motion-v1", values=[float("nan")] * 28, confidence=float("nan"), face_present=True)
    for msg in (wrong_len, wrong_space, nan):
        drv.pub["user_motion"].publish(msg)
    wait_drop(drv, "generator", "user face motion", 2, [gen])
    wait_drop(drv, "generator", "user face motion non-finite", 1, [gen])

    # All inputs stop: the avatar keeps its frame rate, idles with a closed mouth, all finite.
    before = len(drv.avatar_motion)
    wait_for(lambda: len(drv.avatar_motion) >= before + 50, timeout=10, spin=ros_context, processes=[gen],
             what="2 s of idle frames")
    idle = np.array([list(m.values) for m in drv.avatar_motion[before + 10:]])
    assert np.all(np.isfinite(idle)) and idle[:, JAW].max() < 0.05
    # The bad input is gone: the level is OK again, the counters and the last error stay listed.
    ok = wait_for(lambda: [st for m in drv.diagnostics for st in m.status
                           if st.hardware_id == f"{ns}/generator" and st.level == b"\x00"
                           and any(kv.key == "dropped user face motion" for kv in st.values)], timeout=10,
                  spin=ros_context, processes=[gen], what="the generator's level back to OK")[-1]
    assert {kv.key: kv.value for kv in ok.values}["dropped user face motion"] == "2"
    gen.stop(check=True)


def test_renderer_counts_bad_motion_and_keeps_rendering(ros_context, node_process):
    from avatar_forcing_ros.msg import FaceMotion

    ns = unique_topic("bad_motion")
    ren = node_process("avatar_forcing_ros.ros.renderer_node", *node_args(ns, "diagnostics_period_s:=0.2"))
    drv = PipelineDriver(ros_context, ns)
    drv.wait_connected(["avatar_motion_in"], [ren])
    pub = drv.pub["avatar_motion_in"]
    # One at a time: the renderer works newest-first, so a second message sent before it took
    # the first would retire the first as "stale motion (busy)" instead.
    for count, msg in enumerate((FaceMotion(motion_space="af-motion-v1", values=[0.0] * 3),
                                 FaceMotion(motion_space="af-motion-v9", values=[0.0] * 28)), 1):
        pub.publish(msg)
        wait_drop(drv, "renderer", "face motion", count, [ren])
    assert not drv.images, "a bad motion must not produce an image"

    values = [float("nan")] * 28
    pub.publish(FaceMotion(motion_space="af-motion-v1", values=values, face_present=True))
    wait_drop(drv, "renderer", "face motion non-finite", 1, [ren])
    wait_for(lambda: drv.images, timeout=10, spin=ros_context, processes=[ren], what="an image from the repaired motion")
    ren.stop(check=True)
