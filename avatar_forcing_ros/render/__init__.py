"""Renderers: af-motion-v1 vector -> RGB image.

Every renderer has ``render(values (28,)) -> (height, width, 3) uint8 RGB``, ``width``,
``height`` and ``close()``. ``make_renderer`` builds one by name from ROS-parameter-like
keyword arguments; heavy dependencies are imported only for the kind asked for.
"""
from __future__ import annotations

RENDERER_KINDS = ("stylised", "portrait", "neural", "avatarforcing")


def make_renderer(kind: str, **params):
    """Build a renderer by kind ("stylised", "portrait", "neural" or "avatarforcing") with its
    keyword params."""
    if kind == "stylised":
        from .stylised import StylisedFaceRenderer
        return StylisedFaceRenderer(**params)
    if kind == "portrait":
        from .portrait import PortraitRenderer
        return PortraitRenderer(**params)
    if kind == "neural":
        from .neural import NeuralPortraitRenderer
        return NeuralPortraitRenderer(**params)
    if kind == "avatarforcing":
        from .avatarforcing import OfficialLatentRenderer
        return OfficialLatentRenderer(**params)
    raise ValueError(f"unknown renderer kind {kind!r}; known: {', '.join(RENDERER_KINDS)}")
