"""Shared ROS plumbing: lifecycle base with autostart, declared parameters, QoS, diagnostics,
and the entry point every node uses."""
from __future__ import annotations

import sys
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from ..core.telemetry import LatestWorker, Telemetry

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


def qos(kind: str, depth: int = 10) -> QoSProfile:
    """'sensor_data' (best effort, shallow: camera, mic), 'reliable' (motion, outputs) or
    'latched' (reliable + transient local: format descriptions that late joiners need)."""
    if kind == "sensor_data":
        return qos_profile_sensor_data
    if kind == "latched":
        return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                          depth=depth, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if kind == "reliable":
        return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                          depth=depth, durability=DurabilityPolicy.VOLATILE)
    raise ValueError(f"unknown QoS {kind!r}: use 'sensor_data' or 'reliable'")


class AvatarNode(LifecycleNode):
    """A lifecycle node that declares its parameters from a table and, with ``autostart``
    (default true), configures and activates itself so it also "just runs".

    Subclasses set PARAMETERS = {name: (default, description)} and implement
    ``configure()``, ``activate()``, ``deactivate()``, ``cleanup()``.
    """

    PARAMETERS: dict[str, tuple[Any, str]] = {}
    COMMON_PARAMETERS = {
        "autostart": (True, "Configure and activate on start-up (false: wait for lifecycle "
                            "transitions from a manager)."),
        "diagnostics_period_s": (1.0, "Period of the /diagnostics status of this node (s)."),
    }

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        for pname, (default, description) in {**self.COMMON_PARAMETERS, **self.PARAMETERS}.items():
            self.declare_parameter(pname, default, ParameterDescriptor(description=description))
        self.telemetry = Telemetry(self.get_name(), log=self.get_logger().warning)
        self._diag_pub = None
        self._diag_timer = None
        if self.param("autostart"):
            # Run the transitions through the lifecycle machinery so the state is reported
            # correctly to managers and `ros2 lifecycle get`.
            if self.trigger_configure() == SUCCESS:
                self.trigger_activate()

    def param(self, name: str):
        return self.get_parameter(name).value

    def parameter_values(self) -> dict:
        """This node's declared parameters as {name: value} (what the pipeline builders take)."""
        return {name: self.param(name) for name in {**self.COMMON_PARAMETERS, **self.PARAMETERS}}

    def now_s(self) -> float:
        # the same float as the replay's bag time (t_ns / 1e9), so both place audio alike
        return self.get_clock().now().nanoseconds / 1e9

    # -- lifecycle --------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure()
        except Exception as exc:  # a bad model file or parameter: say what, stay unconfigured
            if not self.context.ok():
                return FAILURE  # interrupted (Ctrl-C) while loading: nothing to report
            self.get_logger().error(f"configure failed: {exc}")
            self.telemetry.last_error = str(exc)
            self.cleanup()
            return FAILURE
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.param("diagnostics_period_s"), self.publish_diagnostics)
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # lifecycle publishers first, so activate() can publish
        self.activate()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cleanup()
        self._drop_diagnostics()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self.on_deactivate(state)
        if state.label != "unconfigured":
            self.cleanup()
        self._drop_diagnostics()
        return SUCCESS

    def finalize(self) -> None:
        """Shut down from whatever state the node is in (Ctrl-C, end of a test), leaving no
        publisher, timer or thread behind, then destroy it."""
        label = self._state_machine.current_state[1]
        if self.context.ok() and label in ("unconfigured", "inactive", "active"):
            if self.trigger_shutdown() == SUCCESS:
                self.destroy_node()
                return
        # After Ctrl-C the context is already shut down and the state machine cannot run
        # transitions any more: run the same hooks directly.
        if label == "active":
            self.deactivate()
        if label in ("inactive", "active"):
            self.cleanup()
            self._drop_diagnostics()
        self.destroy_node()

    def _drop_diagnostics(self) -> None:
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None

    # Subclass hooks.
    def configure(self) -> None: ...
    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def cleanup(self) -> None: ...

    # -- diagnostics ------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        level, message, kv = self.telemetry.report()
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: {self.ROLE}",
                                  message=message, hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=v) for k, v in kv.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    ROLE = "stage"


class NewestFirstNode(AvatarNode):
    """A node whose input is processed on a worker thread, newest message first: callbacks
    only hand messages over, so a slow stage drops stale input (counted) instead of queueing
    it, and the executor's threads stay free."""

    _worker: LatestWorker | None = None

    def make_worker(self, work, what: str) -> None:
        self._worker = LatestWorker(work, self.get_name(),
                                    on_stale=lambda: self.telemetry.drop(f"stale {what} (busy)"),
                                    on_error=lambda exc: self.telemetry.drop("processing error", repr(exc)))

    def offer(self, stream: str, msg) -> None:
        self.telemetry.tick(stream)
        if self._worker is not None and self._worker.alive:
            self._worker.offer(msg)

    def activate(self) -> None:
        self._worker.start()

    def deactivate(self) -> None:
        self.stop_worker()

    def stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()


def run_nodes(node_classes, args=None) -> None:
    """Init rclpy, make the nodes and spin them on one single-threaded executor until Ctrl-C or
    SIGTERM; then finalize the nodes and shut down. A signal during start-up (loading a model
    can take seconds) ends the process quietly too.

    Single-threaded on purpose: every callback only hands data over (perception and rendering
    run on their own worker threads, a generator tick takes milliseconds), and rclpy's
    multi-threaded executor cost more CPU than all the work it scheduled (issue 14: generator
    with a 50 Hz microphone, 18 Hz output at 70 % CPU multi-threaded vs 25.6 Hz at 20 %)."""
    rclpy.init(args=sys.argv if args is None else args)
    nodes, executor = [], None
    try:
        for cls in node_classes:
            nodes.append(cls())
        if not rclpy.ok():
            return  # interrupted while starting
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():  # a real error, not the context going away under a signal
            raise
    finally:
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.finalize()
        rclpy.try_shutdown()


def main_for(node_class, args=None) -> None:
    run_nodes([node_class], args)
