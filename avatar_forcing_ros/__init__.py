"""avatar_forcing_ros: a conversing robot face (Avatar Forcing) as a ROS 2 package.

The core modules are pure Python (no rclpy); ``avatar_forcing_ros.ros`` holds the nodes.
"""
__version__ = "0.1.0"

# The ROS message code generated for this package (avatar_forcing_ros.msg) is a package of the
# same name that may live in another folder (see scripts/setup.sh and CMakeLists.txt):
# extend_path adds such folders to this package's search path.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
