"""pip installation of avatar_forcing_ros: the Python library, the `avatar-forcing` command and
the ROS 2 node entry points.

In a ROS 2 workspace, `colcon build` uses CMakeLists.txt instead (ament_cmake: the FaceMotion
message, this Python package, node executables under lib/avatar_forcing_ros for `ros2 run`).
`pip install .` does not generate the message code; scripts/setup.sh does that for a venv.
"""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "avatar_forcing_ros"


def share_data_files(*folders):
    """data_files entries installing every file under `folders` into share/<package>/, keeping
    the folder structure (launch/x.launch.py -> share/avatar_forcing_ros/launch/x.launch.py)."""
    by_destination = {}
    for folder in folders:
        for path in sorted(glob(os.path.join(folder, "**", "*"), recursive=True)):
            if os.path.isfile(path) and "__pycache__" not in path:
                destination = os.path.join("share", package_name, os.path.dirname(path))
                by_destination.setdefault(destination, []).append(path)
    return sorted(by_destination.items())


setup(
    name=package_name,
    version="0.1.0",
    description="A conversing robot face: real-time interactive head-avatar motion "
    "(Avatar Forcing) for ROS 2 and plain Python",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[package_name, package_name + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        *share_data_files("launch", "config", "models", "msg"),
    ],
    install_requires=[
        "numpy>=1.24",
        "scipy",
        "PyYAML",
        "soundfile",
        "safetensors",
        "onnxruntime",
    ],
    extras_require={
        # face tracking of the user: mediapipe 0.10.21 is the last release whose wheel holds
        # the face-mesh model; it brings OpenCV (opencv-contrib-python)
        "perception": ["mediapipe==0.10.21"],
        "train": ["torch", "onnx", "tqdm"],
        # the official Avatar Forcing network (the user's own weights): wav2vec2 via transformers
        "official": ["torch", "transformers", "opencv-contrib-python"],
        # real ROS 2 (Kilted) from PyPI wheels, for machines without a ROS install
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-diagnostic-msgs",
            "ros-lifecycle-msgs",
        ],
        "test": ["pytest", "pytest-timeout", "catkin-pkg"],
    },
    entry_points={
        "console_scripts": [
            "avatar-forcing = avatar_forcing_ros.cli:main",
            "perception_node = avatar_forcing_ros.ros.perception_node:main",
            "generator_node = avatar_forcing_ros.ros.generator_node:main",
            "renderer_node = avatar_forcing_ros.ros.renderer_node:main",
            "avatar_forcing_all = avatar_forcing_ros.ros.all_in_one:main",
            "recorder_node = avatar_forcing_ros.ros.recorder:main",
        ],
    },
)
