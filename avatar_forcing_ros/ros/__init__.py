"""ROS 2 nodes: the only place in the package that imports rclpy.

Nodes are thin: declare parameters, convert messages, call the core, publish.
"""
