"""Publish a few messages from a process of its own, for tests of delivery between processes.

    python test/ros_publisher.py <module.Type> <topic> <count> '<fields as JSON>'
    python test/ros_publisher.py avatar_forcing_ros.msg.FaceMotion /face 3 '{"motion_space": "af-motion-v1"}'

Builds the message from the JSON fields (nested objects fill nested messages), waits until a
subscription has matched, publishes it ``count`` times 20 ms apart over reliable QoS -- the i-th
copy with i added to header.stamp.nanosec, so that each one can be told apart -- and then spins
until SIGINT, after which it exits 0.
"""
import importlib
import json
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException


def fill(message, fields: dict):
    for name, value in fields.items():
        if isinstance(value, dict):
            fill(getattr(message, name), value)
        else:
            setattr(message, name, value)
    return message


def main(argv):
    type_path, topic, count, fields = argv[1], argv[2], int(argv[3]), json.loads(argv[4])
    module_name, _, type_name = type_path.rpartition(".")
    msg_type = getattr(importlib.import_module(module_name), type_name)

    rclpy.init()
    node = rclpy.create_node("test_publisher")
    publisher = node.create_publisher(msg_type, topic, max(count, 10))
    try:
        while publisher.get_subscription_count() == 0:
            rclpy.spin_once(node, timeout_sec=0.01)
        for i in range(count):
            message = fill(msg_type(), fields)
            if hasattr(message, "header"):
                message.header.stamp.nanosec += i
            publisher.publish(message)
            time.sleep(0.02)
        node.get_logger().info(f"published {count} {type_name} on {topic}")
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
