"""All three nodes in one process on one executor (``common.make_executor``: single-threaded;
perception and rendering run on their own worker threads), from the same YAML as the launch
file: for machines without ``ros2 launch``. The stages still hand over through DDS topics
(intra-process hand-over without serialisation is not built).

    avatar_forcing_all --ros-args --params-file config/avatar_forcing.yaml
"""
from __future__ import annotations

from .common import run_nodes
from .generator_node import GeneratorNode
from .perception_node import PerceptionNode
from .renderer_node import RendererNode


def main(args=None):
    run_nodes([PerceptionNode, GeneratorNode, RendererNode], args)


if __name__ == "__main__":
    main()
