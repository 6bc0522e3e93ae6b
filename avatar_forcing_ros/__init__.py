"""avatar_forcing_ros: a conversing robot face (Avatar Forcing) as a ROS 2 package.

The core modules are pure Python (no rclpy); ``avatar_forcing_ros.ros`` holds the nodes.
"""
__version__ = "0.1.0"
