"""All three nodes in one process on one executor (``common.make_executor``: single-threaded;
perception and rendering run on their own worker threads), from the same YAML as the launch
file: for machines without ``ros2 launch``.

With ``--handover in-process`` the stages hand over in process (``common.InProcessLinks``): the user's face motion goes from
perception to the generator, and the avatar's face motion from the generator to the renderer,
as the same message object on a queue the receiving node's executor callback takes it from,
with no DDS subscription between them (no conversion or serialisation). Both topics are still
published over DDS while something outside subscribes (rosbag, rviz). A link is made only where
the DDS topics would connect (the same resolved name and type, after namespace and remappings);
an input remapped elsewhere stays an ordinary subscription. A linked input hears only its
in-process publisher, not another publisher of that topic (a bag played into
avatar/face_motion). That is why DDS, which keeps ROS's meaning of a topic, is the default: the
in-process hand-over saved no measurable CPU or latency (benchmarks/pipeline_latency.py
--all-in-one --handover both; a FaceMotion is 28 floats).

    avatar_forcing_all [--handover dds|in-process] --ros-args --params-file config/avatar_forcing.yaml
"""
from __future__ import annotations

import argparse
import sys

from rclpy.utilities import remove_ros_args

from .common import run_nodes
from .generator_node import GeneratorNode
from .perception_node import PerceptionNode
from .renderer_node import RendererNode


def main(args=None):
    args = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog="avatar_forcing_all", description=__doc__.split("\n\n")[0])
    parser.add_argument("--handover", choices=("dds", "in-process"), default="dds",
                        help="how the nodes hand over face motion to each other (default dds, as separate "
                             "processes do; in-process: the message object itself, no DDS subscription, but a "
                             "linked input then hears no other publisher of its topic)")
    options = parser.parse_args(remove_ros_args(args)[1:])
    run_nodes([PerceptionNode, GeneratorNode, RendererNode], args, in_process=options.handover == "in-process")


if __name__ == "__main__":
    main()
