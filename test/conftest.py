"""Shared test set-up.

ROS isolation, at import time (before any test module imports rclpy): every ROS process of this
test run -- the test process and the node processes it starts, which inherit os.environ -- keeps
discovery on this machine's loopback, uses a ROS domain picked at random for this run (so
concurrent runs do not hear each other), and loads the package's Fast DDS profile
(config/fastdds_shm_profile.xml: shared memory for large images).

Fixtures:
- ``ros_context`` (session): rclpy initialised in the test process; see ros_helpers.RosTestContext.
- ``node_process``: starts a node or script in a process of its own; see ros_helpers.NodeProcess.
Helper: ``from ros_helpers import wait_for, unique_topic``.

A test with three node processes, end to end::

    def test_avatar_moves(ros_context, node_process):
        from avatar_forcing_ros.msg import FaceMotion
        out = unique_topic("avatar_motion")
        received = ros_context.collect(FaceMotion, out)
        nodes = [node_process("avatar_forcing_ros.ros.generator_node",
                              "--ros-args", "-r", f"/avatar/face_motion:={out}"), ...]
        wait_for(lambda: len(received) >= 25, timeout=30, spin=ros_context, processes=nodes)
        for node in nodes:
            node.stop(check=True)   # SIGINT; must exit 0 within 10 s
"""
import os
import random
import shutil
import subprocess
import time

import pytest

from ros_helpers import NodeProcess, RosTestContext, ros_test_environment

XVFB_SCREEN = (800, 600)
ROS_DOMAIN_ID = random.SystemRandom().randint(1, 100)
os.environ.update(ros_test_environment(ROS_DOMAIN_ID))


@pytest.fixture(scope="session")
def ros_context():
    """rclpy initialised once for the session in the test process (a RosTestContext: ``node()``,
    ``collect()``, ``spin_once()``), shut down at the end of the session."""
    pytest.importorskip("rclpy", reason="rclpy is not installed: run scripts/setup.sh")
    context = RosTestContext(ROS_DOMAIN_ID)
    yield context
    context.shutdown()


@pytest.fixture
def node_process(tmp_path):
    """Factory that starts a process: ``node_process(target, *args, env=None, name=None)``.

    ``target`` is a module (run as ``python -m target``) or a path to a ``.py`` script; ``args``
    follow it on the command line (``"--ros-args", "-p", "name:=value"``). Returns a
    ros_helpers.NodeProcess whose output goes to a log file in the test's tmp_path. Processes
    still running when the test ends are stopped (SIGINT, then kill after 10 s); a test that
    wants a clean exit asserted calls ``process.stop(check=True)`` itself.
    """
    started = []

    def start(target, *args, env=None, name=None):
        process = NodeProcess(target, args, env=env, name=name,
                              log_path=tmp_path / f"process{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="module")
def xvfb():
    """A virtual X screen of XVFB_SCREEN pixels for display tests; yields its name (':N')."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb): no virtual screen to show on")
    number = next(n for n in random.sample(range(100, 1000), 50) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", f"{XVFB_SCREEN[0]}x{XVFB_SCREEN[1]}x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(f"/tmp/.X11-unix/X{number}") or server.poll() is not None:
            break
        time.sleep(0.1)
    if server.poll() is not None:
        pytest.fail(f"Xvfb :{number} exited with {server.returncode}")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)
