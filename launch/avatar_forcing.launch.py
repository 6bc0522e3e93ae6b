"""Start the conversing face: perception, generator and renderer nodes.

    ros2 launch avatar_forcing_ros avatar_forcing.launch.py \
        camera_topic:=/camera/color/image_raw mic_topic:=/audio/mic speech_topic:=/tts/audio

Every node parameter lives in config/avatar_forcing.yaml (pass your own with config:=...);
the arguments below override the most common ones.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PKG = "avatar_forcing_ros"


def generate_launch_description():
    share = get_package_share_directory(PKG)
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the nodes and topics."),
        DeclareLaunchArgument("config", default_value=os.path.join(share, "config", "avatar_forcing.yaml"),
                              description="Parameter file of the three nodes."),
        DeclareLaunchArgument("camera_topic", default_value="camera/image_raw", description="User camera (sensor_msgs/Image)."),
        DeclareLaunchArgument("mic_topic", default_value="user/audio", description="User microphone (audio_common_msgs)."),
        DeclareLaunchArgument("speech_topic", default_value="avatar/speech", description="Robot TTS audio (audio_common_msgs)."),
        DeclareLaunchArgument("image_topic", default_value="avatar/image", description="Avatar image output."),
        DeclareLaunchArgument("model", default_value="default", description="default, procedural, checkpoint dir or .onnx."),
        DeclareLaunchArgument("device", default_value="cpu", description="Torch device of the learned model."),
        DeclareLaunchArgument("renderer", default_value="stylised", description="stylised, portrait or neural."),
        DeclareLaunchArgument("portrait_path", default_value="", description="Photo for the portrait renderer."),
        DeclareLaunchArgument("display", default_value="false", description="Show the face in a (full-screen) window."),
        DeclareLaunchArgument("record", default_value="false",
                              description="Also record the pipeline's topics to a rosbag2 (avatar-forcing replay/dataset read it)."),
        DeclareLaunchArgument("record_path", default_value="",
                              description="Bag directory to create (default: avatar_forcing_<date>_<time>)."),
        DeclareLaunchArgument("record_storage", default_value="mcap", description="Bag storage: mcap or sqlite3."),
        DeclareLaunchArgument("shm_transport", default_value="true",
                              description="Use the shipped Fast DDS shared-memory profile (large images over best effort)."),
    ]
    profile = os.path.join(share, "config", "fastdds_shm_profile.xml")
    env = [SetEnvironmentVariable(name, profile, condition=IfCondition(arg("shm_transport")))
           for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")]
    common = dict(package=PKG, namespace=arg("namespace"), output="screen")
    nodes = [
        Node(executable="perception_node", name="perception", parameters=[arg("config")],
             remappings=[("camera/image_raw", arg("camera_topic")),
                         ("camera/image_raw/compressed", [arg("camera_topic"), "/compressed"])], **common),
        Node(executable="generator_node", name="generator",
             parameters=[arg("config"), {"model": arg("model"), "device": arg("device")}],
             remappings=[("user/audio", arg("mic_topic")), ("avatar/speech", arg("speech_topic"))], **common),
        Node(executable="renderer_node", name="renderer",
             parameters=[arg("config"), {"renderer": arg("renderer"), "portrait_path": arg("portrait_path"),
                                         "display": arg("display")}],
             remappings=[("avatar/image", arg("image_topic")),
                         ("avatar/image/compressed", [arg("image_topic"), "/compressed"])], **common),
        Node(executable="recorder_node", name="recorder", condition=IfCondition(arg("record")),
             parameters=[{"out": arg("record_path"), "storage": arg("record_storage")}],
             remappings=[("camera/image_raw", arg("camera_topic")),
                         ("camera/image_raw/compressed", [arg("camera_topic"), "/compressed"]),
                         ("user/audio", arg("mic_topic")), ("avatar/speech", arg("speech_topic")),
                         ("avatar/image", arg("image_topic")),
                         ("avatar/image/compressed", [arg("image_topic"), "/compressed"])], **common),
    ]
    return LaunchDescription(args + env + nodes)
