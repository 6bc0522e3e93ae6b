"""One crashed node never stalls the others: the renderer is killed with SIGKILL (no clean-up,
its shared-memory ports left behind), the generator keeps making frames, and a restarted
renderer draws them again."""
from __future__ import annotations

import os
import signal

from pipeline_driver import PipelineDriver, node_args
from ros_helpers import unique_topic, wait_for


def test_generator_goes_on_when_the_renderer_is_killed_and_a_restarted_renderer_draws_again(
        ros_context, node_process):
    ns = unique_topic("crash")
    gen = node_process("avatar_forcing_ros.ros.generator_node", *node_args(ns, "model:=procedural"))
    ren = node_process("avatar_forcing_ros.ros.renderer_node", *node_args(ns))
    drv = PipelineDriver(ros_context, ns)
    wait_for(lambda: len(drv.images) > 10, 60, spin=ros_context, processes=[gen, ren], what="images")

    os.kill(ren.popen.pid, signal.SIGKILL)
    wait_for(lambda: ren.poll() is not None, 10, spin=ros_context)
    after_kill = len(drv.avatar_motion)
    # 3 s of frames from the generator, whose subscriber died without a word
    wait_for(lambda: len(drv.avatar_motion) >= after_kill + 75, 20, spin=ros_context, processes=[gen],
             what="the generator's frames after the renderer was killed")
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in drv.avatar_motion[after_kill:]]
    assert all(abs(b - a - 0.04) < 1e-6 for a, b in zip(stamps, stamps[1:])), "frames were skipped"

    images_before = len(drv.images)
    ren2 = node_process("avatar_forcing_ros.ros.renderer_node", *node_args(ns))
    wait_for(lambda: len(drv.images) > images_before + 25, 60, spin=ros_context, processes=[gen, ren2],
             what="images from the restarted renderer")
    gen.stop(check=True)
    ren2.stop(check=True)
