"""Shared ROS plumbing: lifecycle base with autostart, declared parameters, QoS, diagnostics,
and the entry point every node uses."""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle.managed_entity import SimpleManagedEntity
from rclpy.lifecycle.publisher import LifecyclePublisher
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from ..core.telemetry import ERROR, OK, GcPauses, LatestWorker, Telemetry

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


class InProcessLinks:
    """The in-process hand-over between the nodes of one process (avatar_forcing_all): where a
    node's linkable input resolves to the same topic, of the same type, as another node's
    linkable output, the message object goes straight to the receiver's queue instead of
    through DDS (no conversion to C, serialisation, take and conversion back). The topic is
    still published over DDS whenever something outside subscribes (rosbag, rviz, a test).

    Outputs are declared when a node is constructed (``AvatarNode.LINKABLE_OUTPUTS``, resolved
    with the node's namespace and remappings) and ``run_nodes`` configures the nodes only
    after all of them exist, so a link does not depend on the order the nodes are made in or
    configured by a lifecycle manager. A name that resolves elsewhere (a remap) is not linked:
    the input is then an ordinary DDS subscription, as it would be in separate processes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._outputs: dict[str, type] = {}
        self._receivers: dict[str, tuple] = {}  # copied on change: publish() iterates without the lock

    def declare_output(self, topic: str, msg_type) -> None:
        with self._lock:
            self._outputs[topic] = msg_type

    def links(self, topic: str, msg_type) -> bool:
        with self._lock:
            return self._outputs.get(topic) is msg_type

    def add(self, receiver: "LocalSubscription") -> None:
        with self._lock:
            self._receivers[receiver.topic_name] = (*self._receivers.get(receiver.topic_name, ()), receiver)

    def remove(self, receiver: "LocalSubscription") -> None:
        with self._lock:
            left = tuple(r for r in self._receivers.get(receiver.topic_name, ()) if r is not receiver)
            self._receivers[receiver.topic_name] = left

    def receivers(self, topic: str) -> tuple:
        return self._receivers.get(topic, ())


class LinkedPublisher(LifecyclePublisher):
    """A lifecycle publisher that also hands each message to the in-process receivers of its
    topic. The receivers get the very object: a node must not change a message after
    publishing it (these nodes make a new one each time)."""

    links: InProcessLinks | None = None

    def publish(self, msg) -> None:
        if not self.is_activated:
            return
        receivers = self.links.receivers(self.topic_name) if self.links is not None else ()
        for receiver in receivers:
            receiver.deliver(msg)
        # over DDS only for someone outside: a publish to no reader still converts the message
        if not receivers or self.get_subscription_count() > 0:
            Publisher.publish(self, msg)


class LocalSubscription(SimpleManagedEntity):
    """The receiving end of an in-process link, in place of a DDS subscription: the publisher's
    thread (perception's worker, the generator's tick) queues the message and triggers a guard
    condition; the callback runs on the executor in the node's callback group, as a
    subscription's would, so the node's threading is the same as over DDS. Keeps the newest
    ``depth`` messages like a KEEP_LAST reader; takes nothing while its node is not active.
    ``direct``: a callback safe on any thread (it only hands the message to a worker) is
    called on the publisher's thread at once, with no executor wake-up in between."""

    def __init__(self, node: "AvatarNode", topic_name: str, callback, depth: int, callback_group=None,
                 direct: bool = False):
        super().__init__()
        self.topic_name = topic_name
        self._callback = callback
        self._queue = deque(maxlen=depth)
        self._guard = None if direct else node.create_guard_condition(self._drain, callback_group)

    def deliver(self, msg) -> None:
        if not self._enabled:
            return
        if self._guard is None:
            self._callback(msg)
        else:
            self._queue.append(msg)
            self._guard.trigger()

    def on_deactivate(self, state):
        self._queue.clear()
        return super().on_deactivate(state)

    def _drain(self) -> None:
        queue = self._queue
        while queue and self._enabled:
            self._callback(queue.popleft())

    def destroy(self, node: Node) -> None:
        self._enabled = False
        self._queue.clear()
        if self._guard is not None:
            node.destroy_guard_condition(self._guard)


class AvatarNode(LifecycleNode):
    """A lifecycle node that declares its parameters from a table and, with ``autostart``
    (default true), configures and activates itself so it also "just runs".

    Subclasses set PARAMETERS = {name: Param(...)} and implement ``configure()``,
    ``activate()``, ``deactivate()``, ``cleanup()`` and, for live parameters, ``apply()``.
    It reports on /diagnostics from construction on, in every state: a node whose configure
    failed says ERROR and why.

    Topics another node of the same process may take in process (``InProcessLinks``) are
    made with ``create_output`` (named in LINKABLE_OUTPUTS) and ``create_input`` /
    ``destroy_input``; without ``links`` these are plain lifecycle publishers and subscriptions.
    """

    PARAMETERS: dict[str, Param] = {}
    COMMON_PARAMETERS = {
        "autostart": Param(True, "Configure and activate on start-up (false: wait for lifecycle "
                                 "transitions from a manager)."),
        "diagnostics_period_s": Param(1.0, "Period of the /diagnostics status of this node (s).",
                                      min=0.05, max=60.0, live=True),
    }

    LINKABLE_OUTPUTS: dict[str, type] = {}  # topic -> message type, made with create_output

    def __init__(self, name: str, links: InProcessLinks | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.links = links
        for topic, msg_type in self.LINKABLE_OUTPUTS.items():
            if links is not None:
                links.declare_output(self.resolve_topic_name(topic), msg_type)
        self.telemetry = Telemetry(self.get_name(), log=self.get_logger().warning)
        GcPauses.install()
        self._transition_lock = threading.RLock()  # transitions and live parameter changes, one at a time
        self._startup_errors = []
        for pname, entry in self.parameter_table().items():
            self._declare(pname, entry)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._configure_error = ""
        self.telemetry.recent_s = 2 * self.param("diagnostics_period_s")  # OK again a period or two after the last drop
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.param("diagnostics_period_s"), self.publish_diagnostics)
        if links is None:  # else run_nodes starts it once every node has declared its outputs
            self.autostart()

    def autostart(self) -> None:
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

    # -- topics another node of this process may take in process ----------------------------

    def create_output(self, msg_type, topic: str, qos_profile):
        """A lifecycle publisher; in process with links (and ``topic`` in LINKABLE_OUTPUTS) one
        that also hands its messages to the linked inputs of the other nodes."""
        if self.links is None or topic not in self.LINKABLE_OUTPUTS:
            return self.create_lifecycle_publisher(msg_type, topic, qos_profile)
        pub = Node.create_publisher(self, msg_type, topic, qos_profile, publisher_class=LinkedPublisher)
        pub.links = self.links
        self.add_managed_entity(pub)  # enabled and disabled with the node, as create_lifecycle_publisher's
        return pub

    def create_input(self, msg_type, topic: str, callback, qos_profile, callback_group=None,
                     thread_safe: bool = False):
        """A subscription, or, where another node of this process publishes this very topic
        (the same resolved name and type), the in-process end of that link (LocalSubscription;
        ``thread_safe``: the callback may run on the publisher's thread): then there is no DDS
        subscription, so no other publisher of the topic is heard."""
        name = self.resolve_topic_name(topic)
        if self.links is None or not self.links.links(name, msg_type):
            return self.create_subscription(msg_type, topic, callback, qos_profile, callback_group=callback_group)
        sub = LocalSubscription(self, name, callback, qos_profile.depth, callback_group, direct=thread_safe)
        self.add_managed_entity(sub)
        if self.state_label == "active":  # made while active: the transition that enables it is past
            sub._enabled = True
        self.links.add(sub)
        self.telemetry.set(f"input {topic}", f"in process ({name})")
        return sub

    def destroy_input(self, sub) -> None:
        if not isinstance(sub, LocalSubscription):
            self.destroy_subscription(sub)
            return
        self.links.remove(sub)
        self._managed_entities.discard(sub)
        sub.destroy(self)

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
            GcPauses.settle()  # the model and the node are loaded: out of the collector's walk
            return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._transition_lock:
            self._safe(self.deactivate)
            GcPauses.unsettle()  # what this node drops next must be collectable
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
        kv.update(GcPauses.report())
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


_spinning = threading.Event()       # the executor runs: a signal ends it through spin_until_stopped
_stop_requested = threading.Event()  # SIGINT or SIGTERM came (or request_stop was called)
_signal_received = threading.Event()  # SIGINT or SIGTERM came: rclpy's signal thread is at work


def request_stop() -> None:
    """What Ctrl-C does: ask ``run_nodes`` to stop spinning and shut down (thread-safe)."""
    _stop_requested.set()


def _on_stop_signal(signum, frame) -> None:
    """Python's SIGINT/SIGTERM handler, which rclpy's own handler chains to. While the executor
    spins it only records the request (spin_until_stopped acts on it); Python's default of
    raising KeyboardInterrupt at whatever bytecode runs next landed inside rclpy converting a
    message (a RuntimeError out of take_message, and at times a segfault at exit, seen under
    load). Before the spin (nodes loading a model) it still interrupts."""
    _stop_requested.set()
    _signal_received.set()
    if not _spinning.is_set():
        raise KeyboardInterrupt


def _wait_for_rclpy_signal_thread(timeout_s: float = 2.0) -> None:
    """rclpy's signal thread triggers every executor's guard condition, then shuts the contexts
    down. An executor destroyed before it is through frees the array of guard conditions that
    thread is walking: a segfault at exit (a renderer node, exit code -11, once in a CI run
    with a CPU hog after the spin stopped waiting for the shutdown). Its shutdown of the
    context says it is done; bounded, should it never come."""
    deadline = time.monotonic() + timeout_s
    while rclpy.ok() and time.monotonic() < deadline:
        time.sleep(0.005)


def spin_until_stopped(executor, poll_s: float = 0.2) -> None:
    """Spin until a stop is requested (``request_stop``, a signal) or the context shuts down.

    Not ``executor.spin()``: rclpy's signal thread triggers the executors' guard condition
    *before* it shuts the contexts down. A spin that wakes in between finds the context still
    up and waits again, and with nothing else to wake it (no timer fires while a sim clock
    stands still, no message comes) it never returns: a node under ``ros2 launch`` that ignored
    Ctrl-C, its main thread in wait_for_ready_callbacks (py-spy). Here a watcher thread turns
    the request into a future, whose completion wakes the executor by its own guard condition."""
    from rclpy.task import Future

    stop, finished = Future(), threading.Event()

    def watch():
        while not finished.is_set():
            if _stop_requested.wait(poll_s):
                stop.set_result(True)
                return

    watcher = threading.Thread(target=watch, name="stop-request", daemon=True)
    watcher.start()
    try:
        executor.spin_until_future_complete(stop)
    finally:
        finished.set()
        watcher.join()


def run_nodes(node_classes, args=None, in_process: bool = False) -> None:
    """Init rclpy, make the nodes and spin them on one executor (``make_executor``) until
    Ctrl-C or SIGTERM; then finalize the nodes and shut down. A signal during start-up
    (loading a model can take seconds) ends the process quietly too. ``in_process``: topics
    one node publishes and another takes are handed over in process (``InProcessLinks``)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, _on_stop_signal)  # before rclpy.init, which chains to it
        except ValueError:  # not the main thread (a test running nodes in a thread)
            pass
    rclpy.init(args=sys.argv if args is None else args)
    nodes, executor = [], None
    try:
        links = InProcessLinks() if in_process else None
        for cls in node_classes:
            nodes.append(cls(links=links))
        if links is not None:  # every output declared: now configure, in any order
            for node in nodes:
                if rclpy.ok():
                    node.autostart()
        if not rclpy.ok() or _stop_requested.is_set():
            return  # interrupted while starting
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        _spinning.set()
        spin_until_stopped(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # The context going away under a signal can surface as whatever the entity being taken
        # raises at that moment (RCLError, or a RuntimeError from taking a message, seen in CI);
        # only an error while the context is still up and no signal came is a real one.
        if rclpy.ok() and not _stop_requested.is_set():
            raise
    finally:
        _spinning.clear()
        ignore_further_signals()
        if _signal_received.is_set():
            _wait_for_rclpy_signal_thread()
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
