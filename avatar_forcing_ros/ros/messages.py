"""The rclpy flavour of the package's messages: the classes ``core.messages`` builds with."""
from __future__ import annotations

import array

from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Header

from ..core.messages import MessageKit
from ..msg import FaceMotion

# rclpy takes uint8[] / float32[] fastest as array.array (a list is checked element by element)
ROS_KIT = MessageKit(time=Time, header=Header, face_motion=FaceMotion, audio_data=AudioData,
                     audio_stamped=AudioDataStamped, audio_info=AudioInfo, image=Image,
                     compressed_image=CompressedImage,
                     u8=lambda data: array.array("B", data),
                     f32=lambda values: array.array("f", values.tobytes()))



def named_motion_msg(space, face_motion) -> JointState:
    """A FaceMotion as sensor_msgs/JointState: name[] = the motion space's channel names,
    position[] = its values, the same header. Tools that know no FaceMotion (PlotJuggler,
    Foxglove, rosbag tools) show one named curve per channel."""
    return JointState(header=face_motion.header, name=list(space.names),
                      position=[float(x) for x in face_motion.values])
