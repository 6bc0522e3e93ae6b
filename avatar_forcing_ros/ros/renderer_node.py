"""Renderer node: the avatar's face motion -> images for a face screen or a video stream.

Subscribes ``avatar/face_motion`` (FaceMotion); publishes ``avatar/image``
(sensor_msgs/Image, rgb8) and ``avatar/image/compressed`` (JPEG), stamped with the motion's
presentation time; can also show the face full-screen on a display. Renders on a worker
thread, newest motion first: if rendering falls behind, old motions are dropped and counted.
"""
from __future__ import annotations

from sensor_msgs.msg import CompressedImage, Image

from ..core.imaging import encode_compressed
from ..core.messages import compressed_image_msg, image_msg
from ..core.stages import Skip
from ..msg import FaceMotion
from ..pipeline import build_renderer_stage
from .common import Param, NewestFirstNode, main_for, qos
from .messages import ROS_KIT


class RendererNode(NewestFirstNode):
    ROLE = "avatar renderer"
    PARAMETERS = {
        "renderer": Param("stylised", "Which face: stylised (face screens), portrait (a photo "
                                 "animated by warping), neural (LivePortrait-style ONNX) or "
                                 "avatarforcing (the official network's decoder; needs the "
                                 "generator's model avatarforcing:<dir>).",
                          choices=("stylised", "portrait", "neural", "avatarforcing")),
        "width": Param(480, "Image width (px).", min=16, max=4096),
        "height": Param(480, "Image height (px).", min=16, max=4096),
        "background": Param([20, 20, 30], "Stylised face: background colour, RGB 0-255.", min=0, max=255),
        "face_colour": Param([250, 212, 170], "Stylised face: skin colour, RGB.", min=0, max=255),
        "feature_colour": Param([70, 45, 40], "Stylised face: brows and outlines colour, RGB.", min=0, max=255),
        "portrait_path": Param("", "Portrait renderer: the photo to animate (empty: the public-domain "
                              "astronaut portrait shipped with scikit-image)."),
        "neural_model_dir": Param("", "Neural renderer: directory with the LivePortrait-style ONNX "
                                 "files (appearance_feature_extractor, motion_extractor, "
                                 "warping_spade, stitching)."),
        "onnx_providers": Param(["CPUExecutionProvider"], "Neural renderer: onnxruntime providers "
                                                     "in order of preference."),
        "avatarforcing_dir": Param("", "avatarforcing renderer: the converted official weights "
                                  "directory (the generator's avatarforcing:<dir>)."),
        "avatarforcing_device": Param("cpu", "avatarforcing renderer: torch device (cpu, cuda, cuda:N)."),
        "publish_raw": Param(True, "Publish avatar/image (sensor_msgs/Image, rgb8)."),
        "publish_compressed": Param(True, "Publish avatar/image/compressed (JPEG)."),
        "jpeg_quality": Param(85, "JPEG quality of the compressed image (1-100).", min=1, max=100, live=True),
        "display": Param(False, "Also show the face in a window (needs an X display)."),
        "display_fullscreen": Param(True, "Show the window full-screen (a robot's face screen)."),
        "display_name": Param("", "X display to show it on, e.g. ':0' (empty: $DISPLAY)."),
        "frame_id": Param("avatar_face", "frame_id of published images.", live=True),
    }

    def __init__(self, **kwargs):
        self._sub = self._worker = self.stage = self.display = None
        self._pubs = {}
        super().__init__("renderer", **kwargs)

    def configure(self) -> None:
        self.stage = build_renderer_stage(self.parameter_values(), telemetry=self.telemetry)
        if self.param("publish_raw"):
            self._pubs["raw"] = self.create_lifecycle_publisher(Image, "avatar/image", qos("reliable", 2))
        if self.param("publish_compressed"):
            self._pubs["compressed"] = self.create_lifecycle_publisher(
                CompressedImage, "avatar/image/compressed", qos("reliable", 2))
        if self.param("display"):
            from ..render.display import FaceScreenDisplay
            self.display = FaceScreenDisplay(fullscreen=self.param("display_fullscreen"),
                                             display=self.param("display_name") or None)
        # _on_motion only offers to the render worker: safe on the generator's thread
        self._sub = self.create_input(FaceMotion, "avatar/face_motion", self._on_motion, qos("reliable"),
                                      thread_safe=True)
        self.make_worker(self._render, "motion")

    def cleanup(self) -> None:
        stopped = self.stop_worker()
        if self._sub is not None:
            self.destroy_input(self._sub)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        for thing in (self.display, self.stage):
            if thing is not None and stopped:  # never under a running render
                thing.close()
        self._sub = self._worker = self.stage = self.display = None
        self._pubs = {}

    def _on_motion(self, msg) -> None:
        self.offer("avatar face motion", msg)

    def _render(self, msg) -> None:
        start = self.now_s()
        values = self.stage.read(msg)
        if isinstance(values, Skip):
            return
        # Work only for someone: an image nobody subscribes to is neither encoded nor sent.
        wanted = {k: p for k, p in self._pubs.items() if p.get_subscription_count() > 0}
        if not wanted and self.display is None:
            return
        rgb = self.stage.render(values)
        frame_id = self.param("frame_id")
        if "raw" in wanted:
            wanted["raw"].publish(image_msg(ROS_KIT, rgb, msg.header.stamp, frame_id))
        if "compressed" in wanted:
            jpeg = encode_compressed(rgb, "jpeg", self.param("jpeg_quality"))
            wanted["compressed"].publish(compressed_image_msg(ROS_KIT, jpeg, "jpeg", msg.header.stamp, frame_id))
        if self.display is not None:
            self.display.show(rgb)
        self.telemetry.latency(self.now_s() - start)


def main(args=None):
    main_for(RendererNode, args)


if __name__ == "__main__":
    main()
