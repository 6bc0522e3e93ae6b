"""The renderer node on a face screen: with display:=true, what the (virtual) screen shows is
the image the node publishes, scaled full-screen."""
import time

import cv2
import numpy as np
import pytest

from conftest import XVFB_SCREEN
from pipeline_driver import PipelineDriver, node_args
from ros_helpers import unique_topic, wait_for

pytestmark = pytest.mark.timeout(120)


def grab(display):
    from PIL import ImageGrab

    try:
        return np.asarray(ImageGrab.grab(xdisplay=display))[..., :3]
    except OSError:  # Xvfb now and then drops a fresh connection
        return None


def test_renderer_node_shows_the_published_face_full_screen(xvfb, ros_context, node_process):
    from avatar_forcing_ros.core.motion import AF_MOTION_V1 as M
    from avatar_forcing_ros.msg import FaceMotion

    ns = unique_topic("screen")
    ren = node_process("avatar_forcing_ros.ros.renderer_node",
                       *node_args(ns, "display:=true", f"display_name:={xvfb}"))
    drv = PipelineDriver(ros_context, ns, compressed=False)
    drv.wait_connected(["avatar_motion_in"], [ren])
    smiling_open = M.from_dict({"jawOpen": 0.7, "mouthSmileLeft": 0.8, "mouthSmileRight": 0.8,
                                "head_roll": 0.2})
    msg = FaceMotion(motion_space=M.id, values=smiling_open.tolist(), confidence=1.0, face_present=True)

    def published_image():
        # Sent again until an image comes back: the node renders only for matched image
        # subscribers, and it may not have discovered this test's subscriber yet.
        if not drv.images:
            drv.pub["avatar_motion_in"].publish(msg)
        return drv.images

    wait_for(published_image, timeout=30, spin=ros_context, processes=[ren], what="the published image",
             interval=0.1)
    img = drv.images[-1]
    published = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)

    # Full screen, aspect kept: the square face scaled to the screen height, centred.
    width, height = XVFB_SCREEN
    left = (width - height) // 2
    expected = np.zeros((height, width, 3), np.uint8)
    expected[:, left:left + height] = cv2.resize(published, (height, height), interpolation=cv2.INTER_LINEAR)
    deadline, diff = time.monotonic() + 30, None
    while time.monotonic() < deadline:  # the window maps asynchronously
        drv.pub["avatar_motion_in"].publish(msg)  # the same face again, as a stream would
        ros_context.spin_once(0.1)
        shot = grab(xvfb)
        if shot is not None and shot.shape == expected.shape:
            diff = np.abs(shot.astype(np.int16) - expected).max(axis=2)
            if diff.mean() < 3:
                break
    assert diff is not None, f"no screenshot of {xvfb} could be taken"
    assert diff.mean() < 3 and np.percentile(diff, 99) < 60, \
        f"screen differs from the published image: mean {diff.mean():.1f}\n{ren.log_tail()}"
    ren.stop(check=True)
