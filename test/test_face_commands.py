"""Expression and look-at commands blended into generated frames (core/face_commands.py), and
the generator stage that takes them as messages."""
from types import SimpleNamespace

import numpy as np
import pytest

from avatar_forcing_ros.core.face_commands import (EXPRESSIONS, SPEECH_CHANNELS, CommandError, FaceCommands,
                                                   FaceCommandSettings)
from avatar_forcing_ros.core.motion import AF_MOTION_V1 as S


def ch(values, name):
    return float(values[S.index(name)])


def smile(values):
    return 0.5 * (ch(values, "mouthSmileLeft") + ch(values, "mouthSmileRight"))


def frame(**channels):
    return S.from_dict(channels)


def settled(commands, values, t):
    """The frame as blended long after the last command (10 time constants)."""
    return commands.apply(values, t)


def test_happy_lifts_the_smile_and_sad_turns_it_into_a_frown_with_raised_inner_brows():
    c = FaceCommands(S)
    c.set_expression("happy", 0, 0, 1.0, now=0.0)
    happy = settled(c, frame(mouthSmileLeft=0.1, mouthSmileRight=0.1), 5.0)
    assert smile(happy) > 0.7
    c.set_expression("sad", 0, 0, 1.0, now=5.0)
    sad = settled(c, frame(mouthSmileLeft=0.5, mouthSmileRight=0.5), 10.0)
    assert smile(sad) < 0.1  # the model's own (mirrored) smile is suppressed
    assert ch(sad, "mouthFrownLeft") > 0.5 and ch(sad, "browInnerUp") > 0.5


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_no_expression_touches_the_mouth_opening_of_speech(name):
    c = FaceCommands(S)
    c.set_expression(name, 0, 0, 1.0, now=0.0)
    talking = frame(jawOpen=0.6, mouthFunnel=0.3, mouthPucker=0.2, mouthSmileLeft=0.2)
    out = settled(c, talking, 5.0)
    for channel in SPEECH_CHANNELS:
        assert ch(out, channel) == pytest.approx(ch(talking, channel))
    assert np.all(out >= S.low) and np.all(out <= S.high)


def test_an_expression_blends_in_with_its_time_constant_in_message_time():
    c = FaceCommands(S, FaceCommandSettings(expression_time_constant_s=0.5))
    c.set_expression("happy", 0, 0, 1.0, now=100.0)
    full = EXPRESSIONS["happy"]["mouthSmileLeft"]
    assert smile(c.apply(S.neutral(), 100.0)) == pytest.approx(0.0)
    assert smile(c.apply(S.neutral(), 100.5)) == pytest.approx(full * (1 - np.exp(-1)), rel=1e-4)
    # a frame from before the newest one does not move the clock back
    assert smile(c.apply(S.neutral(), 100.2)) == pytest.approx(full * (1 - np.exp(-1)), rel=1e-4)


def test_valence_and_arousal_without_a_name():
    c = FaceCommands(S, FaceCommandSettings(expression_time_constant_s=0.0))
    c.set_expression("", 0.8, 0.6, 1.0, now=0.0)
    pleased = c.apply(S.neutral(), 0.1)
    assert smile(pleased) > 0.5 and ch(pleased, "eyeWideLeft") > 0.3
    c.set_expression("", -0.8, -0.6, 1.0, now=1.0)
    low = c.apply(S.neutral(), 1.1)
    assert smile(low) == 0.0 and ch(low, "mouthFrownRight") > 0.4 and ch(low, "eyeBlinkLeft") > 0.2


def test_confidence_scales_the_expression_and_an_unset_confidence_is_full():
    c = FaceCommands(S, FaceCommandSettings(expression_time_constant_s=0.0))
    c.set_expression("happy", 0, 0, 0.5, now=0.0)
    half = smile(c.apply(S.neutral(), 0.1))
    c.set_expression("HAPPY", 0, 0, 0.0, now=1.0)  # the message default: not set
    assert smile(c.apply(S.neutral(), 1.1)) == pytest.approx(2 * half)


@pytest.mark.parametrize("fields, reason", [
    (("grumpy", 0, 0, 1), "expression unknown"),
    (("", float("nan"), 0, 1), "expression not finite"),
    (("happy", 0, 0, float("inf")), "expression not finite"),
])
def test_a_bad_expression_is_refused_and_the_last_one_stays(fields, reason):
    c = FaceCommands(S, FaceCommandSettings(expression_time_constant_s=0.0))
    c.set_expression("happy", 0, 0, 1, now=0.0)
    with pytest.raises(CommandError) as err:
        c.set_expression(*fields, now=1.0)
    assert err.value.reason == reason
    assert smile(c.apply(S.neutral(), 2.0)) > 0.7 and c.expression == "happy"


def test_a_point_to_the_face_s_left_turns_head_and_eyes_left_and_up_turns_them_up():
    c = FaceCommands(S, FaceCommandSettings(look_at_time_constant_s=0.0, look_at_head_share=0.6))
    yaw, pitch = c.set_look_at(1.0, 1.0, 0.0, "avatar_face", now=0.0)
    assert yaw == pytest.approx(np.pi / 4) and pitch == 0.0
    out = c.apply(S.neutral(), 0.1)
    # the face's own left is the image's right: positive yaw in af-motion-v1
    assert ch(out, "head_yaw") == pytest.approx(0.6 * np.pi / 4, abs=1e-6)
    assert ch(out, "gaze_yaw") == pytest.approx(0.4 * np.pi / 4, abs=1e-6)
    c.set_look_at(1.0, 0.0, 0.5, "avatar_face", now=1.0)
    up = c.apply(S.neutral(), 1.1)
    assert ch(up, "head_pitch") > 0.2 and ch(up, "gaze_pitch") > 0.1 and abs(ch(up, "head_yaw")) < 1e-6


def test_the_look_at_target_is_let_go_after_the_hold_time():
    c = FaceCommands(S, FaceCommandSettings(look_at_time_constant_s=0.1, look_at_hold_s=2.0))
    c.set_look_at(1.0, -1.0, 0.0, "avatar_face", now=0.0)
    assert ch(c.apply(S.neutral(), 1.9), "head_yaw") < -0.4
    assert abs(ch(c.apply(S.neutral(), 3.5), "head_yaw")) < 0.01


@pytest.mark.parametrize("point, frame_id, reason", [
    ((1, 0, 0), "base_link", "look-at point in an unknown frame"),
    ((1, 0, 0), "", "look-at point in an unknown frame"),
    ((float("nan"), 0, 0), "avatar_face", "look-at point not finite"),
    ((0, 0, 0), "avatar_face", "look-at point at the face"),
])
def test_a_bad_look_at_point_is_refused(point, frame_id, reason):
    c = FaceCommands(S)
    with pytest.raises(CommandError) as err:
        c.set_look_at(*point, frame_id, now=0.0)
    assert err.value.reason == reason
    assert np.array_equal(c.apply(S.neutral(), 1.0), S.neutral())


def test_the_generator_stage_takes_commands_as_messages_and_counts_bad_ones():
    from avatar_forcing_ros.pipeline import build_generator_stage, load_node_parameters

    p = {**load_node_parameters()["generator"], "model": "procedural", "compute_budget_s": 0.0}
    stage, _ = build_generator_stage(p)
    stage.start(0.0)
    expr = lambda name, v=0.0: SimpleNamespace(expression=name, valence=v, arousal=0.0, confidence=1.0)  # noqa: E731
    point = lambda x, y, z, f: SimpleNamespace(point=SimpleNamespace(x=x, y=y, z=z),  # noqa: E731
                                               header=SimpleNamespace(frame_id=f))
    assert stage.on_expression(expr("happy"), 0.0) is None
    assert stage.on_look_at(point(1.0, 0.5, 0.0, "avatar_face"), 0.0) is None
    assert stage.on_expression(expr("grumpy"), 0.1).reason == "expression unknown"
    assert stage.on_expression(expr("", float("nan")), 0.1).reason == "expression not finite"
    assert stage.on_look_at(point(1.0, 0.5, 0.0, "map"), 0.1).reason == "look-at point in an unknown frame"
    assert dict(stage.telemetry.drops) == {"expression unknown": 1, "expression not finite": 1,
                                           "look-at point in an unknown frame": 1}
    frames = []
    for k in range(1, 151):  # 1.5 s of silence, ticked at 100 Hz
        frames += stage.tick(k / 100)
    late = np.array([f.values for f in frames if f.presentation_time > 1.0])
    assert smile(late.mean(0)) > 0.6
    assert ch(late.mean(0), "head_yaw") > 0.1 and ch(late.mean(0), "gaze_yaw") > 0.05
    assert stage.telemetry.values["expression"] == "happy"
    # nothing arrived late, so no silence was left out to catch up (reported on /diagnostics)
    assert stage.telemetry.values["silence skipped to catch up (ms)"] == "0"


def test_offline_replay_follows_the_commands_in_a_bag_and_counts_the_bad_ones(tmp_path):
    """The replay drives the same stage in bag time: happy, then sad, then a look to the left,
    with speech throughout; an unknown expression and a point in another frame are skipped."""
    from avatar_forcing_ros.core.audio import encode_s16le
    from avatar_forcing_ros.corpus.speech import synthesize
    from avatar_forcing_ros.offline import bags
    from avatar_forcing_ros.offline.replay import replay

    types = bags.typestore().types
    if bags.EXPRESSION not in types:
        pytest.skip("hri_msgs is not installed: no Expression type to write")
    Expression, PointStamped, Point = types[bags.EXPRESSION], types[bags.POINT_STAMPED], types["geometry_msgs/msg/Point"]
    voice = synthesize("Hello there, how are you today? I am fine, thank you very much.", voice="en-us").audio
    t0, n = 50.0, int(4.5 * 16000)
    speech = np.zeros(n, np.float32)
    speech[8000:8000 + voice.size] = voice[:n - 8000]
    with bags.BagWriter(tmp_path / "in") as w:
        for k in range(n // 320):
            t = t0 + (k + 1) * 0.02
            w.write(bags.topic("speech"), bags.t_to_ns(t), bags.audio_msg(encode_s16le(speech[k * 320:(k + 1) * 320]), t - 0.02))

        def expression(t, name):
            w.write(bags.topic("expression"), bags.t_to_ns(t),
                    Expression(header=bags.header(t), expression=name, valence=0.0, arousal=0.0, confidence=1.0))

        def look(t, y, frame_id="avatar_face"):
            w.write(bags.topic("look_at"), bags.t_to_ns(t),
                    PointStamped(header=bags.header(t, frame_id), point=Point(x=1.0, y=y, z=0.0)))

        expression(t0 + 0.03, "happy")  # after the first chunk, which starts the clock
        expression(t0 + 1.5, "sad")
        expression(t0 + 1.6, "grumpy")
        look(t0 + 3.0, 1.0)
        look(t0 + 3.1, -1.0, "map")
    res = replay(tmp_path / "in", tmp_path / "out", overrides=["generator.model=procedural"], images="none")
    assert res.account.skipped[bags.topic("expression")] == {"expression unknown": 1}
    assert res.account.skipped[bags.topic("look_at")] == {"look-at point in an unknown frame": 1}
    # the same speech without commands, for the model's own head movement
    replay(tmp_path / "in", tmp_path / "plain", overrides=["generator.model=procedural"], images="none",
           topics={"speech": bags.topic("speech")}, namespace="none")

    def frames(bag, ns=""):
        motion = [m for m in bags.read_bag(bag, bags.BagAccount()) if m.topic == bags.topic("avatar_motion", ns)]
        t = np.array([m.msg.header.stamp.sec + m.msg.header.stamp.nanosec * 1e-9 for m in motion]) - t0
        return t, np.array([np.asarray(m.msg.values) for m in motion])

    t, v = frames(tmp_path / "out")
    t_plain, plain = frames(tmp_path / "plain", "none")
    assert np.array_equal(t, t_plain)
    happy, sad, left = (t > 1.0) & (t < 1.5), (t > 2.5) & (t < 3.0), (t > 4.0) & (t < 4.5)
    sm = 0.5 * (v[:, S.index("mouthSmileLeft")] + v[:, S.index("mouthSmileRight")])
    assert sm[happy].mean() > 0.6 and sm[sad].mean() < 0.1
    assert v[sad, S.index("mouthFrownLeft")].mean() > 0.5
    assert v[sad, S.index("jawOpen")].max() > 0.3  # still speaking
    turned = v[left] - plain[left]
    assert turned[:, S.index("head_yaw")].min() > 0.3 and turned[:, S.index("gaze_yaw")].min() > 0.2
    # the model made the same motion; the commands were blended on top, the mouth's opening untouched
    assert np.array_equal(v[:, S.index("jawOpen")], plain[:, S.index("jawOpen")])


def test_a_model_without_face_channels_refuses_commands_and_passes_its_frames_unchanged():
    """The official network's latent has no smile or head channels to bias: commands for it are
    counted drops, never an exception in the generator and never a change of its frames."""
    from avatar_forcing_ros.core.motion import AVATARFORCING_LATENT_512 as latent
    from avatar_forcing_ros.pipeline import build_human_source

    commands = FaceCommands(latent)
    with pytest.raises(CommandError) as refused:
        commands.set_expression("happy", 0.0, 0.0, 1.0, now=0.0)
    assert refused.value.reason == "face commands unsupported by the model"
    with pytest.raises(CommandError):
        commands.set_look_at(1.0, 1.0, 0.0, "avatar_face", now=0.0)
    commands.look_towards(0.3, 0.0, now=0.0)  # a followed face id: nothing to turn
    frame = np.linspace(-1, 1, latent.dim).astype(np.float32)
    np.testing.assert_array_equal(commands.apply(frame, 1.0), frame)
    with pytest.raises(ValueError, match="user_source hri"):
        build_human_source({"user_source": "hri"}, latent)
