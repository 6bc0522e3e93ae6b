"""Start the conversing face: perception, generator and renderer lifecycle nodes.

    ros2 launch avatar_forcing_ros avatar_forcing.launch.py avatar_namespace:=robot \
        avatar_camera_topic:=/camera/color/image_raw avatar_mic_topic:=/audio/audio \
        avatar_mic_info_topic:=/audio/audio_info avatar_speech_topic:=/tts/audio

Every node parameter lives in config/avatar_forcing.yaml (pass your own with
avatar_config:=...); the arguments below override single values of it. An argument left empty
("") leaves the file's value alone.

Including it from a robot's bringup: every argument is prefixed `avatar_` (except the ROS-wide
`use_sim_time`), because launch configurations are one flat namespace — a parent's own `model`
or `namespace` argument would otherwise become this file's value. Everything runs inside a
scoped GroupAction, so nothing set here (configurations, environment) leaks back into the
parent, and the Fast DDS profile is given to each of these nodes only (additional_env).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

PKG = "avatar_forcing_ros"
PREFIX = "avatar_"

# (name, default, description); `avatar_` is prepended to every name but use_sim_time.
# README.md's argument table is checked against this list (test/test_workspace_launch.py).
ARGUMENTS = [
    ("namespace", "", "Namespace of the nodes and their relative topics."),
    ("config", "<share>/config/avatar_forcing.yaml", "Parameter file of the three nodes (keys /**/<node>)."),
    ("camera_topic", "camera/image_raw", "User camera (sensor_msgs/Image; <topic>/compressed for CompressedImage)."),
    ("mic_topic", "user/audio", "User microphone (audio_common_msgs AudioDataStamped or AudioData)."),
    ("mic_info_topic", "user/audio_info", "AudioInfo of the microphone (e.g. audio_capture's audio_info)."),
    ("speech_topic", "avatar/speech", "Robot TTS audio (audio_common_msgs)."),
    ("speech_info_topic", "avatar/speech_info", "AudioInfo of the robot's speech."),
    ("image_topic", "avatar/image", "Avatar image output (<topic>/compressed: JPEG)."),
    ("user_source", "", "camera (perception node on the camera) or hri (the user from ROS4HRI's /humans/...: "
     "no perception node; needs hri_msgs) (\"\" = the config's)."),
    ("humans_prefix", "", "ROS4HRI topic prefix for user_source hri, e.g. /humans (\"\" = the config's)."),
    ("expression_topic", "robot_face/expression", "Expression commands (hri_msgs/Expression)."),
    ("look_at_topic", "robot_face/look_at", "Look-at targets (geometry_msgs/PointStamped in the avatar's frame; "
     "<topic>_face: a ROS4HRI face id to follow, std_msgs/String)."),
    ("model", "", "Motion model: default, procedural, a checkpoint dir or an .onnx (\"\" = the config's)."),
    ("device", "", "Torch device of a learned model, e.g. cpu, cuda:0 (\"\" = the config's)."),
    ("renderer", "", "stylised, portrait or neural (\"\" = the config's)."),
    ("portrait_path", "", "Photo for the portrait renderer (\"\" = the config's)."),
    ("display", "", "Show the face in a (full-screen) window: true/false (\"\" = the config's)."),
    ("autostart", "true", "Nodes configure and activate themselves; false: wait for a lifecycle manager."),
    ("record", "false", "Also record the pipeline's topics to a rosbag2: ros2 bag record where rosbag2 is installed, else the package's recorder."),
    ("record_path", "", "Bag directory to create (\"\" = avatar_forcing_<date>_<time>)."),
    ("record_storage", "mcap", "Bag storage: mcap or sqlite3."),
    ("shm_transport", "false",
     "Give the nodes the shipped Fast DDS profile (16 MiB shared memory, UDP on 127.0.0.1 only): "
     "large best-effort images between processes on one machine, but invisible to other hosts."),
    ("use_sim_time", "false", "Every node follows /clock (bag replay with `ros2 bag play --clock`)."),
]
UNPREFIXED = {"use_sim_time"}  # a bringup passes it to everything it includes, on purpose

TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def argument_name(name: str) -> str:
    return name if name in UNPREFIXED else PREFIX + name


def as_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise ValueError(f"launch argument {argument_name(name)}:={text!r}: expected true or false")


def _rosbag2_can_record(storage: str) -> bool:
    try:
        from avatar_forcing_ros.offline.bags import rosbag2_available
    except ImportError:  # the package's Python is not importable here: use its recorder node
        return False
    return rosbag2_available(storage)


def _config_value(path: str, node: str, key: str, default):
    """A value of the parameter file as a node of that name reads it (wildcard sections too)."""
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    value = default
    for section in ("/**", f"/**/{node}", node, f"/{node}"):
        value = ((doc.get(section) or {}).get("ros__parameters") or {}).get(key, value)
    return value


def _nodes(context):
    def get(name):
        return LaunchConfiguration(argument_name(name)).perform(context)

    def typed(value, value_type):
        # a ParameterValue of a known type: `avatar_record_path:=20260822` stays a string
        return ParameterValue(value, value_type=value_type)

    def optional(**values):
        """Only the values given on the command line; the config file keeps the others."""
        return {key: typed(value, str) for key, value in values.items() if value != ""}

    namespace, config = get("namespace"), get("config")
    if not os.path.isfile(config):
        raise FileNotFoundError(f"{argument_name('config')}:={config}: no such parameter file")
    common_params = {"use_sim_time": as_bool("use_sim_time", get("use_sim_time")),
                     "autostart": as_bool("autostart", get("autostart"))}
    env = {}
    if as_bool("shm_transport", get("shm_transport")):
        profile = os.path.join(get_package_share_directory(PKG), "config", "fastdds_shm_profile.xml")
        # Kilted reads FASTDDS_..., Jazzy FASTRTPS_...
        env = {"FASTDDS_DEFAULT_PROFILES_FILE": profile, "FASTRTPS_DEFAULT_PROFILES_FILE": profile}

    camera, image = get("camera_topic"), get("image_topic")
    audio_remaps = [("user/audio", get("mic_topic")), ("user/audio_info", get("mic_info_topic")),
                    ("avatar/speech", get("speech_topic")), ("avatar/speech_info", get("speech_info_topic"))]
    command_remaps = [("robot_face/expression", get("expression_topic")), ("robot_face/look_at", get("look_at_topic")),
                      ("robot_face/look_at_face", get("look_at_topic") + "_face")]
    user_source = get("user_source") or _config_value(config, "generator", "user_source", "camera")
    if user_source not in ("camera", "hri"):
        raise ValueError(f"{argument_name('user_source')}:={user_source!r}: expected camera or hri")
    camera_remaps = [("camera/image_raw", camera), ("camera/image_raw/compressed", camera + "/compressed")]
    image_remaps = [("avatar/image", image), ("avatar/image/compressed", image + "/compressed")]
    common = dict(package=PKG, namespace=namespace, output="screen", additional_env=env)

    renderer_params = optional(renderer=get("renderer"), portrait_path=get("portrait_path"))
    if get("display") != "":
        renderer_params["display"] = as_bool("display", get("display"))
    generator_params = optional(model=get("model"), device=get("device"), user_source=get("user_source"),
                                humans_prefix=get("humans_prefix"))
    # with user_source hri the robot's own face detector sees the user: no second tracker
    perception = [] if user_source == "hri" else [
        LifecycleNode(executable="perception_node", name="perception", remappings=camera_remaps,
                      parameters=[config, common_params], **common)]
    nodes = perception + [
        LifecycleNode(executable="generator_node", name="generator", remappings=audio_remaps + command_remaps,
                      parameters=[config, common_params, generator_params], **common),
        LifecycleNode(executable="renderer_node", name="renderer", remappings=image_remaps,
                      parameters=[config, common_params, renderer_params], **common),
    ]
    if as_bool("record", get("record")) and _rosbag2_can_record(get("record_storage")):
        # rosbag2 where it is installed: it adapts to the publishers' QoS and stores their offers
        from avatar_forcing_ros.offline import bags

        remaps = {"camera": camera, "user_audio": get("mic_topic"), "user_audio_info": get("mic_info_topic"),
                  "speech": get("speech_topic"), "speech_info": get("speech_info_topic"), "avatar_image": image}
        cmd = bags.ros2_bag_record_command(bags.pipeline_topics(namespace, remaps), get("record_path"),
                                           get("record_storage"))
        nodes.append(ExecuteProcess(cmd=cmd, output="screen", sigterm_timeout="10"))
    elif as_bool("record", get("record")):  # the package's own recorder otherwise
        nodes.append(Node(executable="recorder_node", name="recorder",
                          remappings=camera_remaps + audio_remaps + image_remaps,
                          parameters=[{"out": typed(get("record_path"), str),
                                       "storage": typed(get("record_storage"), str),
                                       "use_sim_time": common_params["use_sim_time"]}], **common))
    return nodes


def generate_launch_description():
    share = get_package_share_directory(PKG)
    declared = [DeclareLaunchArgument(argument_name(name),
                                      default_value=default.replace("<share>", share),
                                      description=description)
                for name, default, description in ARGUMENTS]
    # scoped, not forwarding: the nodes see this file's arguments only, and nothing set inside
    # the group reaches the including launch file
    group = GroupAction(
        scoped=True, forwarding=False,
        launch_configurations={argument_name(name): LaunchConfiguration(argument_name(name))
                               for name, _, _ in ARGUMENTS},
        actions=[OpaqueFunction(function=_nodes)])
    return LaunchDescription(declared + [group])
