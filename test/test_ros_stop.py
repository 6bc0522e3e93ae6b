"""How a node process stops: a stop request ends the spin even when nothing wakes the executor.

rclpy's signal thread triggers the executors' guard condition before it shuts the context down;
a spin that woke in between waited again, for ever where no timer fires (a sim clock standing
still) and no message comes. That hung a perception node under ``ros2 launch`` 30 s after Ctrl-C
(its stack, read with py-spy: the main thread in wait_for_ready_callbacks). The node processes
spin with ``spin_until_stopped``, which ends on the stop request itself (what the SIGINT/SIGTERM
handler records), not on the context's shutdown.
"""
import threading
import time

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed: run scripts/setup.sh")


def test_a_stop_request_ends_a_spin_that_nothing_else_would_wake(ros_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from avatar_forcing_ros.ros import common

    node = Node("stop_probe", context=ros_context.context,
                parameter_overrides=[Parameter("use_sim_time", value=True)])
    fired = []
    node.create_timer(0.05, lambda: fired.append(1))  # sim time, no /clock: never fires
    executor = SingleThreadedExecutor(context=ros_context.context)
    executor.add_node(node)
    spinner = threading.Thread(target=common.spin_until_stopped, args=(executor,), daemon=True)
    try:
        spinner.start()
        time.sleep(1.0)
        assert spinner.is_alive(), "the spin returned with no stop requested"
        common.request_stop()
        spinner.join(5.0)
        assert not spinner.is_alive(), "the spin did not end within 5 s of the stop request"
        assert ros_context.context.ok()  # it ended on the request, not on a shutdown
        assert fired == []
    finally:
        common._stop_requested.clear()  # this process goes on with other tests
        if spinner.is_alive():  # the failure case: end it through the executor
            executor.shutdown(timeout_sec=1.0)
            spinner.join(5.0)
        executor.remove_node(node)
        node.destroy_node()
