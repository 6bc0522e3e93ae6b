"""Shared ROS plumbing: lifecycle base with autostart, declared parameters, QoS, diagnostics,
and the entry point every node uses."""
from __future__ import annotations

import math
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from ..core.telemetry import ERROR, OK, LatestWorker, Telemetry

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


@dataclass(frozen=True)
class Param:
    """A declared parameter: default, description and what values it takes.

    ``live``: a change at run time takes effect at once (the node applies it); every other
    parameter is read-only after start-up (set it in the YAML or the launch file), so a
    ``ros2 param set`` that could only take effect at the next configure is refused, not
    silently deferred."""
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    live: bool = False

    def check(self, name: str, value) -> str:
        """Why ``value`` is refused ('' if it is fine)."""
        values = list(value) if isinstance(self.default, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                return f"{name} must be a finite number, not {v}"
            if self.min is not None and isinstance(v, (int, float)) and v < self.min:
                return f"{name} must be >= {self.min}, not {v}"
            if self.max is not None and isinstance(v, (int, float)) and v > self.max:
                return f"{name} must be <= {self.max}, not {v}"
            if self.choices and v not in self.choices:
                return f"{name} must be one of {', '.join(map(str, self.choices))}; not {v!r}"
        return ""

    def descriptor(self) -> ParameterDescriptor:
        limits = f" Range {self.min}..{self.max}." if self.min is not None and self.max is not None else ""
        choices = f" One of: {', '.join(map(str, self.choices))}." if self.choices else ""
        when = " Takes effect at once when set." if self.live else " Read-only after start-up."
        return ParameterDescriptor(description=self.description + limits + choices + when, read_only=not self.live)


class AvatarNode(LifecycleNode):
    """A lifecycle node that declares its parameters from a table and, with ``autostart``
    (default true), configures and activates itself so it also "just runs".

    Subclasses set PARAMETERS = {name: Param(...)} and implement ``configure()``,
    ``activate()``, ``deactivate()``, ``cleanup()`` and, for live parameters, ``apply()``.
    It reports on /diagnostics from construction on, in every state: a node whose configure
    failed says ERROR and why.
    """

    PARAMETERS: dict[str, Param] = {}
    COMMON_PARAMETERS = {
        "autostart": Param(True, "Configure and activate on start-up (false: wait for lifecycle "
                                 "transitions from a manager)."),
        "diagnostics_period_s": Param(1.0, "Period of the /diagnostics status of this node (s).",
                                      min=0.05, max=60.0, live=True),
    }

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.telemetry = Telemetry(self.get_name(), log=self.get_logger().warning)
        self._transition_lock = threading.RLock()  # transitions and live parameter changes, one at a time
        self._startup_errors = []
        for pname, entry in self.parameter_table().items():
            self._declare(pname, entry)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._configure_error = ""
        self.telemetry.recent_s = 2 * self.param("diagnostics_period_s")  # OK again a period or two after the last drop
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.param("diagnostics_period_s"), self.publish_diagnostics)
        if self.param("autostart"):
            # Run the transitions through the lifecycle machinery so the state is reported
            # correctly to managers and `ros2 lifecycle get`.
            if self.trigger_configure() == SUCCESS:
                self.trigger_activate()

    def parameter_table(self) -> dict[str, Param]:
        return {**self.COMMON_PARAMETERS, **self.PARAMETERS}

    def _declare(self, name: str, entry: Param) -> None:
        """Declare with the start-up value (YAML, launch); a bad one is kept out and named, so
        configure fails with the reason instead of the process dying in the constructor."""
        try:
            value = self.declare_parameter(name, entry.default, entry.descriptor()).value
        except Exception as exc:  # a value of the wrong type in the YAML: rclpy refuses it
            self._startup_errors.append(f"parameter {name}: {exc}")
            self.declare_parameter(name, entry.default, entry.descriptor(), ignore_override=True)
            return
        reason = entry.check(name, value)
        if reason:
            self._startup_errors.append(reason)

    def _on_set_parameters(self, params) -> SetParametersResult:
        table = self.parameter_table()
        for p in params:
            entry = table.get(p.name)
            if entry is None:
                continue  # rclpy's own (use_sim_time)
            reason = entry.check(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        with self._transition_lock:
            for p in params:
                if p.name in table and table[p.name].live:
                    self._apply(p.name, p.value)
        return SetParametersResult(successful=True)

    def _apply(self, name: str, value) -> None:
        if name == "diagnostics_period_s":
            self.telemetry.recent_s = 2 * value
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(value, self.publish_diagnostics)
        else:
            self.apply(name, value)

    def apply(self, name: str, value) -> None:
        """Apply a live parameter's new value (subclasses; names marked live=True)."""

    def param(self, name: str):
        return self.get_parameter(name).value

    def parameter_values(self) -> dict:
        """This node's declared parameters as {name: value} (what the pipeline builders take)."""
        return {name: self.param(name) for name in self.parameter_table()}

    def now_s(self) -> float:
        # the same float as the replay's bag time (t_ns / 1e9), so both place audio alike
        return self.get_clock().now().nanoseconds / 1e9

    @property
    def state_label(self) -> str:
        return self._state_machine.current_state[1]

    # -- lifecycle --------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            try:
                if self._startup_errors:
                    raise ValueError("; ".join(self._startup_errors))
                self.configure()
            except Exception as exc:  # a bad model file or parameter: say what, stay unconfigured
                if not self.context.ok():
                    return FAILURE  # interrupted (Ctrl-C) while loading: nothing to report
                self._configure_error = f"configure failed: {exc}"
                self.get_logger().error(self._configure_error)
                self.telemetry.last_error = str(exc)
                self._safe(self.cleanup)
                return FAILURE
            self._configure_error = ""
            return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            result = super().on_activate(state)  # lifecycle publishers first, so activate() can publish
            try:
                self.activate()
            except Exception as exc:  # stay inactive (not unconfigured with a leak), and say why
                self.get_logger().error(f"activate failed: {exc}")
                self.telemetry.last_error = f"activate failed: {exc}"
                self._safe(self.deactivate)
                super().on_deactivate(state)
                return FAILURE
            return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._safe(self.deactivate)
            return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._safe(self.cleanup)
            return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            if state.label == "active":
                self.on_deactivate(state)
            if state.label != "unconfigured":
                self._safe(self.cleanup)
            return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # a transition raised: clean up and go back to unconfigured rather than finalized
        self.get_logger().error(f"error during a transition from {state.label}: cleaning up")
        self._safe(self.deactivate)
        self._safe(self.cleanup)
        return SUCCESS

    def _safe(self, hook) -> None:
        try:
            hook()
        except Exception as exc:  # clean-up must go on; say what failed
            self.get_logger().error(f"{hook.__name__} failed: {exc!r}")

    def finalize(self) -> None:
        """Shut down from whatever state the node is in (Ctrl-C, end of a test), leaving no
        publisher, timer or thread behind, then destroy it."""
        label = self.state_label
        if self.context.ok() and label in ("unconfigured", "inactive", "active"):
            if self.trigger_shutdown() == SUCCESS:
                self.destroy_node()
                return
        # After Ctrl-C the context is already shut down and the state machine cannot run
        # transitions any more: run the same hooks directly.
        if label == "active":
            self._safe(self.deactivate)
        if label in ("inactive", "active"):
            self._safe(self.cleanup)
        self.destroy_node()

    # Subclass hooks.
    def configure(self) -> None: ...
    def activate(self) -> None: ...
    def deactivate(self) -> None: ...
    def cleanup(self) -> None: ...

    # -- diagnostics ------------------------------------------------------------------------

    def publish_diagnostics(self) -> None:
        level, message, kv = self.telemetry.report()
        label = self.state_label
        kv["lifecycle state"] = label
        if label == "unconfigured" and self._configure_error:
            level, message = ERROR, self._configure_error
        elif label in ("unconfigured", "inactive") and level == OK:
            message = f"{label}: not processing"
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: {self.ROLE}",
                                  message=message, hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=v) for k, v in kv.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        try:
            self._diag_pub.publish(msg)
        except Exception:  # the node is being destroyed under this timer
            pass

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

    def stop_worker(self) -> bool:
        """Stop the worker; False (logged) if it is still busy, when what it uses must be left
        for the process exit to free."""
        if self._worker is None or self._worker.stop():
            return True
        self.get_logger().warning("the worker is still busy after 30 s: its resources are left to the process exit")
        return False


def make_executor():
    """A SingleThreadedExecutor. Every callback of these nodes only hands work over
    (perception and rendering run on their own worker threads, a generator tick takes
    milliseconds), so a thread pool buys nothing; rclpy's MultiThreadedExecutor busy-waits
    while a callback runs and cost more CPU than all the work it scheduled
    (benchmarks/PROFILE.md: generator with a 50 Hz microphone 68 % CPU and 1-s bins down to
    14 Hz; SingleThreaded 15 % at a steady 25 Hz). rclpy's experimental EventsExecutor used
    half that CPU in the benchmark's harness, but in this entry point the nodes published
    nothing for 40 s (timers and lifecycle made before the executor): not used yet."""
    return SingleThreadedExecutor()


_spinning = threading.Event()  # the executor runs: a SIGINT ends it through the context
_signalled = threading.Event()


def _on_sigint(signum, frame) -> None:
    """Python's SIGINT handler, which rclpy's own handler chains to after shutting the context
    down. While the executor spins, that shutdown ends the spin (ExternalShutdownException);
    Python's default of raising KeyboardInterrupt at whatever bytecode runs next landed inside
    rclpy converting a message (a RuntimeError out of take_message, and at times a segfault at
    exit, seen under load). Before the spin (nodes loading a model) it still interrupts."""
    _signalled.set()
    if not _spinning.is_set():
        raise KeyboardInterrupt


def run_nodes(node_classes, args=None) -> None:
    """Init rclpy, make the nodes and spin them on one executor (``make_executor``) until
    Ctrl-C or SIGTERM; then finalize the nodes and shut down. A signal during start-up
    (loading a model can take seconds) ends the process quietly too."""
    try:
        signal.signal(signal.SIGINT, _on_sigint)  # before rclpy.init, which chains to it
    except ValueError:  # not the main thread (a test running nodes in a thread)
        pass
    rclpy.init(args=sys.argv if args is None else args)
    nodes, executor = [], None
    try:
        for cls in node_classes:
            nodes.append(cls())
        if not rclpy.ok():
            return  # interrupted while starting
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        _spinning.set()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # The context going away under a signal can surface as whatever the entity being taken
        # raises at that moment (RCLError, or a RuntimeError from taking a message, seen in CI);
        # only an error while the context is still up and no signal came is a real one.
        if rclpy.ok() and not _signalled.is_set():
            raise
    finally:
        _spinning.clear()
        ignore_further_signals()
        if executor is not None:
            executor.shutdown()
        for node in nodes:
            node.finalize()
        rclpy.try_shutdown()
        ignore_further_signals()  # try_shutdown may have put the default handlers back


def ignore_further_signals() -> None:
    """Shutting down: a second Ctrl-C must not kill the process half-way (a terminal's Ctrl-C
    under `ros2 launch` arrives twice, once from the terminal and once forwarded by launch;
    the second one after rclpy's handler was gone ended every node with -2)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread (a test running nodes in a thread)
            pass


def main_for(node_class, args=None) -> None:
    run_nodes([node_class], args)
