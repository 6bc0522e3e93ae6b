"""All three nodes in one process on a multi-threaded executor, from the same YAML as the
launch file: for machines without ``ros2 launch``.

    avatar_forcing_all --ros-args --params-file config/avatar_forcing.yaml
"""
from __future__ import annotations

import sys

import rclpy

from .common import spin_nodes
from .generator_node import GeneratorNode
from .perception_node import PerceptionNode
from .renderer_node import RendererNode


def main(args=None):
    rclpy.init(args=sys.argv if args is None else args)
    spin_nodes([PerceptionNode(), GeneratorNode(), RendererNode()])


if __name__ == "__main__":
    main()
