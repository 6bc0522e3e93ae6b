"""The user from ROS4HRI's humans (core/humans.py): landmarks of known geometry -> the motion
channels, who is chosen as the user, smooth switching, ids coming and going."""
import math

import numpy as np
import pytest

from avatar_forcing_ros.core.humans import (DISENGAGED, ENGAGED, ENGAGING, HumanSettings, HumanSource,
                                            LandmarkError, LandmarkMotion, landmark_points)
from avatar_forcing_ros.core.motion import AF_MOTION_V1 as S
from avatar_forcing_ros.core.telemetry import Telemetry
from hri_faces import face_points, landmarks_msg


def motion(points, calibrate=None, **kw):
    lm = LandmarkMotion(S, calibration_frames=1 if calibrate is not None else 0)
    if calibrate is not None:
        xy, c = landmark_points(landmarks_msg(calibrate, plain=True, **kw))
        lm.values(xy, c, 640, 480)
    xy, c = landmark_points(landmarks_msg(points, plain=True, **kw))
    values, conf = lm.values(xy, c, 640, 480)
    return S.as_dict(values), conf


def test_a_neutral_face_is_neutral_and_a_smile_an_open_jaw_and_raised_brows_are_measured():
    neutral, conf = motion(face_points(), calibrate=face_points())
    assert conf == 1.0 and max(abs(x) for x in neutral.values()) < 1e-6
    smile, _ = motion(face_points(smile=1.0), calibrate=face_points())
    assert smile["mouthSmileLeft"] > 0.95 and smile["mouthSmileRight"] > 0.95 and smile["jawOpen"] < 0.05
    half, _ = motion(face_points(smile=0.5), calibrate=face_points())
    assert half["mouthSmileLeft"] == pytest.approx(0.5, abs=0.05)
    jaw, _ = motion(face_points(jaw=0.5), calibrate=face_points())
    assert jaw["jawOpen"] == pytest.approx(0.5, abs=0.05) and jaw["mouthSmileLeft"] < 0.05
    brows, _ = motion(face_points(brows=1.0), calibrate=face_points())
    assert brows["browInnerUp"] > 0.95 and brows["browOuterUpLeft"] > 0.95


def test_the_template_defaults_read_an_average_face_as_neutral_without_calibration():
    values, _ = motion(face_points())
    assert all(abs(values[c]) < 0.1 for c in ("jawOpen", "mouthSmileLeft", "mouthFrownLeft", "browInnerUp",
                                              "eyeBlinkLeft", "head_yaw", "head_pitch", "head_roll"))


def test_head_roll_and_yaw_follow_the_landmarks():
    a = math.radians(15)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rolled, _ = motion(face_points() @ rot.T, calibrate=face_points())
    assert rolled["head_roll"] == pytest.approx(a, abs=1e-3)  # clockwise in the image: > 0
    assert rolled["mouthSmileLeft"] < 0.05  # expressions are measured de-rolled
    turned = face_points()
    turned[27:36, 0] += 12.0  # nose toward the image's right
    values, _ = motion(turned, calibrate=face_points())
    assert values["head_yaw"] == pytest.approx(math.asin(12 / 35), abs=1e-3)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m.landmarks.pop(), "69 landmarks"),
    (lambda m: setattr(m.landmarks[3], "x", float("nan")), "non-finite"),
    (lambda m: [setattr(p, "x", 0.5) or setattr(p, "y", 0.5) for p in m.landmarks], "degenerate"),
])
def test_landmarks_that_are_not_a_face_are_refused(mutate, message):
    msg = landmarks_msg(face_points(), plain=True)
    mutate(msg)
    with pytest.raises(LandmarkError, match=message):
        xy, c = landmark_points(msg)
        LandmarkMotion(S).values(xy, c, 640, 480)


def two_people(**settings):
    """A HumanSource with faces a (large, on the left) and b (small), persons a and b."""
    h = HumanSource(S, HumanSettings(calibration_frames=0, **settings), Telemetry("t"))
    h.on_tracked("faces", ["a", "b"], 0.0)
    h.on_tracked("persons", ["a", "b"], 0.0)
    return h


def feed(h, t, smile_a=0.0, smile_b=0.0):
    """Both faces' landmarks at ``t``; the user's motion (or None)."""
    out_a = h.on_landmarks("a", landmarks_msg(face_points(smile=smile_a), (0.3, 0.5), 0.3, plain=True), t)
    out_b = h.on_landmarks("b", landmarks_msg(face_points(smile=smile_b), (0.7, 0.5), 0.2, plain=True), t)
    return out_a or out_b


def test_without_engagement_the_largest_face_is_the_user():
    h = two_people()
    choice = feed(h, 0.1, smile_b=1.0)
    assert h.selected == "a" and choice.face_id == "a"
    assert S.as_dict(choice.values)["mouthSmileLeft"] < 0.05  # b smiles, a does not


def test_the_engaged_person_is_the_user_and_a_switch_crossfades_and_is_counted():
    h = two_people(switch_time_s=0.5)
    feed(h, 0.0, smile_b=1.0)
    h.on_engagement("b", ENGAGED, 0.1)
    assert h.selected == "b" and h.switches == 1
    assert h.telemetry.values["user switches"] == "1" and h.telemetry.values["user face"] == "b"
    smiles = [S.as_dict(feed(h, 0.1 + k * 0.1, smile_b=1.0).values)["mouthSmileLeft"] for k in range(8)]
    # from a's neutral face to b's smile over half a second, no jump
    assert smiles[0] < 0.05 and smiles[-1] > 0.95
    assert np.all(np.diff(smiles) >= -1e-6) and np.max(np.diff(smiles)) <= 0.25


def test_the_person_engaged_longest_keeps_the_user_and_disengaging_hands_it_over():
    h = two_people()
    feed(h, 0.0)
    h.on_engagement("b", ENGAGING, 0.1)
    h.on_engagement("a", ENGAGED, 0.2)
    assert h.selected == "a"  # engaged beats engaging
    h.on_engagement("b", ENGAGED, 0.3)
    assert h.selected == "a"  # both engaged: the current user stays
    h.on_engagement("a", DISENGAGED, 0.4)
    assert h.selected == "b"


def test_a_person_s_face_and_voice_ids_link_them():
    h = HumanSource(S, HumanSettings(calibration_frames=0))
    h.on_tracked("faces", ["f1", "f2"], 0.0)
    h.on_tracked("persons", ["p7"], 0.0)
    h.on_person_face("p7", "f2", 0.0)
    h.on_person_voice("p7", "v3")
    h.on_landmarks("f1", landmarks_msg(face_points(), (0.3, 0.5), 0.3, plain=True), 0.0)
    h.on_landmarks("f2", landmarks_msg(face_points(), (0.7, 0.5), 0.1, plain=True), 0.0)
    assert h.selected == "f1"  # the larger face
    h.on_engagement("p7", ENGAGED, 0.1)
    assert h.selected == "f2"
    assert h.voice_selected("v3") and not h.voice_selected("p7") and not h.voice_selected("v1")


def test_ids_appearing_and_vanishing_give_the_subscriptions_to_make_and_drop_and_are_bounded():
    h = HumanSource(S, HumanSettings(calibration_frames=0, max_ids=3), Telemetry("t"))
    assert h.on_tracked("faces", ["a", "b"], 0.0) == (["a", "b"], [])
    feed(h, 0.1)
    assert h.selected == "a"
    assert h.on_tracked("faces", ["b", "c", "", "b"], 0.2) == (["c"], ["a"])
    assert h.selected == "b"  # the user vanished: the next one
    assert h.on_landmarks("a", landmarks_msg(face_points(), plain=True), 0.3) is None  # gone: ignored
    assert h.on_tracked("faces", ["b", "c", "d", "e", "f"], 0.4) == (["d"], [])
    assert h.telemetry.drops["faces over max_ids"] == 1
    assert h.on_tracked("faces", [], 0.5) == ([], ["b", "c", "d"])
    assert h.selected == "" and h.telemetry.values["user face"] == "none"


def test_the_perceived_face_maps_to_facial_action_units():
    from avatar_forcing_ros.core.humans import FACS_MAP, facial_action_units

    v = S.from_dict({"mouthSmileLeft": 0.8, "mouthSmileRight": 0.6, "jawOpen": 0.05, "browInnerUp": 0.5,
                     "head_yaw": 0.25, "gaze_pitch": -0.3})
    intensity, conf = facial_action_units(S, v, 0.9)
    assert intensity.shape == conf.shape == (99,)
    assert intensity[12] == pytest.approx(0.7)  # lip corner puller: both smiles
    assert intensity[1] == pytest.approx(0.5) and intensity[26] == pytest.approx(0.05)
    assert intensity[25] == pytest.approx(0.5)  # lips part at a tenth of a full jaw drop
    assert intensity[51] == pytest.approx(0.5) and intensity[52] == 0.0  # turned to the person's left
    assert intensity[64] == pytest.approx(1.0) and intensity[63] == 0.0  # eyes down
    assert set(np.flatnonzero(conf)) == set(FACS_MAP) and np.allclose(conf[list(FACS_MAP)], 0.9)
    assert np.all((intensity >= 0) & (intensity <= 1))


def test_a_face_id_look_at_follows_that_face_in_the_camera_image():
    from types import SimpleNamespace

    from avatar_forcing_ros.pipeline import build_generator_stage, load_node_parameters

    p = {**load_node_parameters()["generator"], "model": "procedural", "user_source": "hri",
         "hri_calibration_frames": 0, "hri_camera_hfov_deg": 90.0, "look_at_time_constant_s": 0.0}
    stage, _ = build_generator_stage(p)
    stage.start(0.0)
    stage.on_tracked("faces", SimpleNamespace(ids=["a", "b"]), 0.0)
    # a on the camera image's left (the robot's left), b on its right and higher
    stage.on_face_landmarks("a", landmarks_msg(face_points(), (0.25, 0.5), 0.2, plain=True), 0.0)
    stage.on_face_landmarks("b", landmarks_msg(face_points(), (0.75, 0.25), 0.2, plain=True), 0.0)
    assert stage.on_look_at_face(SimpleNamespace(data="b"), 0.1) is None
    b = stage.humans.direction("b")
    assert b[0] == pytest.approx(-math.atan(0.5)) and b[1] == pytest.approx(math.atan(0.5 * 0.75))
    stage.commands.apply(S.neutral(), 0.15)
    _, look = stage.commands.offsets()
    assert look[0] < 0 and look[2] < 0 and look[1] > 0  # head and eyes to the face's right, up
    stage.on_face_landmarks("b", landmarks_msg(face_points(), (0.25, 0.5), 0.2, plain=True), 0.2)  # b moves
    stage.commands.apply(S.neutral(), 0.3)
    _, look = stage.commands.offsets()
    assert look[0] > 0 and abs(look[1]) < 1e-6  # followed to the left
    stage.on_look_at_face(SimpleNamespace(data=""), 0.4)
    stage.commands.apply(S.neutral(), 0.5)
    assert not stage.commands.offsets()[1].any() and stage.commands.look_at == "none"


def test_a_face_id_look_at_without_the_hri_source_is_counted():
    from types import SimpleNamespace

    from avatar_forcing_ros.pipeline import build_generator_stage, load_node_parameters

    stage, _ = build_generator_stage({**load_node_parameters()["generator"], "model": "procedural"})
    assert stage.on_look_at_face(SimpleNamespace(data="f1"), 0.0).reason == "look-at face without user_source hri"


def test_offline_replay_takes_the_user_from_ros4hri_topics_in_a_bag(tmp_path):
    """The same two-person scene as the ROS test, recorded: a (larger) engaged first, b smiling;
    then b engaged. The replay chooses the same user and the avatar mirrors only b's smile, once
    b is engaged. Per-id topics of ids not in the tracked lists are skipped, as the node is not
    subscribed to them."""
    from avatar_forcing_ros.offline import bags
    from avatar_forcing_ros.offline.replay import replay

    types = bags.typestore().types
    if "hri_msgs/msg/FacialLandmarks" not in types:
        pytest.skip("hri_msgs is not installed")
    Ids, Engagement, Landmarks, Poi = (types[f"hri_msgs/msg/{n}"] for n in
                                       ("IdsList", "EngagementLevel", "FacialLandmarks", "NormalizedPointOfInterest2D"))
    t0, switch, end = 20.0, 3.5, 7.0
    with bags.BagWriter(tmp_path / "in") as w:
        for k in range(int(end * 20)):
            t = t0 + k * 0.05
            ns = bags.t_to_ns(t)
            if k % 2 == 0:
                w.write("/humans/faces/tracked", ns, Ids(header=bags.header(t), ids=["fa", "fb"]))
                w.write("/humans/persons/tracked", ns, Ids(header=bags.header(t), ids=["fa", "fb"]))
                for p in ("fa", "fb"):
                    engaged = (p == "fa") == (k * 0.05 < switch)
                    w.write(f"/humans/persons/{p}/engagement_status", ns,
                            Engagement(header=bags.header(t), level=ENGAGED if engaged else DISENGAGED))
            for p, centre, size in (("fa", (0.3, 0.5), 0.3), ("fb", (0.7, 0.5), 0.22)):
                smile = 1.0 if p == "fb" and k * 0.05 > 1.0 else 0.0
                plain = landmarks_msg(face_points(smile=smile), centre, size, plain=True)
                w.write(f"/humans/faces/{p}/landmarks", ns, Landmarks(
                    header=bags.header(t), width=plain.width, height=plain.height,
                    landmarks=[Poi(x=q.x, y=q.y, c=q.c) for q in plain.landmarks]))
            w.write("/humans/faces/fz/landmarks", ns, Landmarks(  # never tracked
                header=bags.header(t), width=640, height=480, landmarks=[Poi(x=0.5, y=0.5, c=1.0)] * 70))
    res = replay(tmp_path / "in", tmp_path / "out", images="none",
                 overrides=["generator.model=procedural", "generator.user_source=hri",
                            "generator.hri_calibration_frames=10"])
    assert res.account.skipped["/humans/faces/fz/landmarks"] == {"faces id not tracked": int(end * 20)}
    assert not res.account.skipped.get("/humans/faces/fa/landmarks")
    motion = [m for m in bags.read_bag(tmp_path / "out", bags.BagAccount()) if m.topic == bags.topic("avatar_motion")]
    t = np.array([m.msg.header.stamp.sec + m.msg.header.stamp.nanosec * 1e-9 for m in motion]) - t0
    v = np.array([np.asarray(m.msg.values) for m in motion])
    smile = 0.5 * (v[:, S.index("mouthSmileLeft")] + v[:, S.index("mouthSmileRight")])
    assert smile[(t > 2.0) & (t < switch)].max() < 0.1
    assert smile[(t > switch + 1.5) & (t < end)].mean() > 0.5


@pytest.mark.parametrize("name", ["neutral", "happy", "sad", "angry", "surprised", "disgusted", "scared"])
def test_a_face_made_to_show_an_expression_on_command_reads_back_as_that_expression(name):
    """The REP-155 expression out and the expression commands in share their prototypes: the
    avatar made 'sad' by a dialogue manager, seen as a user, is published as sad."""
    from avatar_forcing_ros.core.face_commands import FaceCommands
    from avatar_forcing_ros.core.humans import perceived_expression

    commands = FaceCommands(S)
    commands.set_expression(name, 0.0, 0.0, 1.0, now=0.0)
    face = commands.apply(S.neutral(), 10.0)  # long after the time constant
    shown, valence, arousal, confidence = perceived_expression(S, face, 0.8)
    assert shown == name
    assert confidence == pytest.approx(0.8)
    assert {"happy": valence > 0.3, "sad": valence < -0.3, "angry": valence < -0.3,
            "surprised": arousal > 0.3, "scared": arousal > 0.3}.get(name, True)
    if name == "neutral":
        assert valence == 0.0 and arousal == 0.0
