"""Helpers for tests that run real ROS 2 (rclpy + Fast DDS) in the test process and in node processes.

The fixtures in conftest.py hand these out; tests may also import them directly
(``from ros_helpers import wait_for``). Nothing here imports rclpy at module import time, so test
files that do not touch ROS run where rclpy is missing.

- ``wait_for(predicate, timeout)``: poll until true, spinning ROS in between. Discovery between
  processes takes 0.1-2.7 s: wait for the peer (subscription count, first message), never sleep
  a fixed time.
- ``RosTestContext``: rclpy initialised in the test process on a context of its own, with an
  executor, nodes, and ``collect()`` to subscribe into a list.
- ``NodeProcess``: a node (or any rclpy script) in a process of its own, stopped the way a user's
  Ctrl-C stops it, with its output kept in a log file.
- ``python_stacks(pids)``: what each Python thread of a live process is doing (py-spy), for the
  failure message of a process that did not stop.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FASTDDS_PROFILE = REPO / "config" / "fastdds_shm_profile.xml"


def ros_test_environment(domain_id: int) -> dict[str, str]:
    """The variables every ROS process of a test run gets: discovery on loopback only (Kilted
    reads ROS_AUTOMATIC_DISCOVERY_RANGE, Jazzy also ROS_LOCALHOST_ONLY), the run's own domain,
    and the package's Fast DDS profile (Kilted reads FASTDDS_..., Jazzy FASTRTPS_...)."""
    return {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOCALHOST_ONLY": "1",
        "ROS_DOMAIN_ID": str(domain_id),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
    }


def unique_topic(prefix: str = "test") -> str:
    """A topic name no other test of this run uses (tests of one run share a ROS domain)."""
    return f"/{prefix.strip('/')}_{uuid.uuid4().hex[:8]}"


def wait_for(predicate, timeout: float = 10.0, *, spin=None, processes=(), what: str | None = None,
             interval: float = 0.01):
    """Call ``predicate()`` until it returns something truthy, and return that value.

    Between calls, ``spin`` (a RosTestContext, or anything with ``spin_once(timeout_sec)``) is
    spun for up to ``interval`` seconds so that subscriptions in the test process receive their
    messages; without it the wait is a plain ``interval`` sleep. Every process in ``processes``
    (NodeProcess) must stay alive: if one exits, this fails at once with its log instead of
    waiting out the timeout. On timeout it raises AssertionError naming ``what`` (default: the
    predicate's source name) and the logs of ``processes``.
    """
    what = what or getattr(predicate, "__name__", "a condition")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.name} exited with code {process.returncode} while "
                                     f"waiting for {what}\n{process.log_tail()}")
        if time.monotonic() > deadline:
            logs = "".join(f"\n--- {p.name} ---\n{p.log_tail()}" for p in processes)
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}{logs}")
        if spin is not None:
            spin.spin_once(timeout_sec=interval)
        else:
            time.sleep(interval)


class RosTestContext:
    """rclpy initialised in the test process, on an rclpy Context of its own (so code under test
    that calls ``rclpy.init()`` on the default context is not disturbed).

    ``node(name)`` makes a node on it (destroyed at shutdown); ``collect(msg_type, topic, qos)``
    subscribes and returns the list the messages are appended to; ``spin_once()`` runs callbacks
    (``wait_for(..., spin=ros_context)`` calls it).
    """

    _counter = itertools.count()

    def __init__(self, domain_id: int):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.domain_id = domain_id
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes = []

    def node(self, name: str | None = None):
        """A new rclpy Node on this context, added to the executor."""
        from rclpy.node import Node

        node = Node(name or f"test_node_{next(self._counter)}", context=self.context)
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def collect(self, msg_type, topic: str, qos=10, node=None) -> list:
        """Subscribe to ``topic`` and return the list that received messages are appended to."""
        received = []
        (node or self.node()).create_subscription(msg_type, topic, received.append, qos)
        return received

    def spin_once(self, timeout_sec: float = 0.01):
        self.executor.spin_once(timeout_sec=timeout_sec)

    def shutdown(self):
        import rclpy

        for node in self._nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self._nodes.clear()
        self.executor.shutdown()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def python_stacks(pids) -> str:
    """Every thread's Python stack of each live process in ``pids``, read with ``py-spy dump``
    (requirements.txt pins it). A process that ignores SIGINT says nothing in its log; its stacks
    say where it waits. Returns a note instead where py-spy or the process is missing."""
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        return "(no py-spy on PATH: no stacks)"
    dumps = []
    for pid in pids:
        try:
            result = subprocess.run([py_spy, "dump", "--pid", str(pid)], capture_output=True,
                                    text=True, timeout=30)
            dumps.append(f"--- py-spy dump --pid {pid} (exit {result.returncode})\n"
                         f"{result.stdout}{result.stderr}")
        except subprocess.TimeoutExpired:
            dumps.append(f"--- py-spy dump --pid {pid}: no answer within 30 s")
    return "\n".join(dumps)


class NodeProcess:
    """A Python program with rclpy run in a process of its own: ``python -m <module>`` or
    ``python <script.py>``, followed by ``args`` (e.g. ``["--ros-args", "-p", "rate:=10.0"]``).

    It gets the test run's environment (see ros_test_environment) plus ``env``, runs in the
    repository root, and writes stdout and stderr to ``log_path``. ``stop()`` sends SIGINT, as
    Ctrl-C would, and waits; a process that has not exited after ``timeout`` seconds is killed
    (and that is reported as a failure by ``stop(check=True)``).
    """

    def __init__(self, target: str, args=(), *, log_path: Path, env: dict | None = None,
                 name: str | None = None):
        is_script = target.endswith(".py")
        self.name = name or (Path(target).stem if is_script else target)
        self.log_path = Path(log_path)
        self.argv = [sys.executable, *([target] if is_script else ["-m", target]), *map(str, args)]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.popen = subprocess.Popen(self.argv, cwd=REPO, env=full_env,
                                          stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        self.killed = False
        self.stacks = ""   # the stacks of a process that had to be killed

    @property
    def returncode(self):
        return self.popen.returncode

    def poll(self):
        return self.popen.poll()

    def log(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0, *, check: bool = False) -> int:
        """SIGINT, wait up to ``timeout`` s, then SIGKILL. Returns the exit code. With
        ``check=True``, a kill or a non-zero exit raises AssertionError with the log."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.stacks = python_stacks([self.popen.pid])
                self.popen.kill()
                self.popen.wait()
        if check and (self.killed or self.popen.returncode != 0):
            how = "did not stop on SIGINT and was killed" if self.killed else \
                f"exited with code {self.popen.returncode}"
            raise AssertionError(f"{self.name} {how}\n{self.log_tail()}\n{self.stacks}")
        return self.popen.returncode
