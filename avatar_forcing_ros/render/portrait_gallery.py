"""Sample portraits and the portrait renderer's gallery: one PNG of faces x expressions.

    avatar-forcing gallery [--out docs/portrait_gallery.png] [--tile 128] [--portrait PHOTO ...]

The three sample portraits need no download: scikit-image's public-domain NASA astronaut
(smiling, teeth showing), and two photos made from it by this renderer — one with the lips
closed (300x380, the face off-centre to the left) and one with the mouth open (1024x800, the
face off-centre to the right). Together they cover the three mouth states a photo can have.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import cv2
import numpy as np

from ..core.motion import AF_MOTION_V1 as M

# (column title, motion channels): the expressions of the gallery, in its order
EXPRESSIONS = (
    ("rest", {}),
    ("ah", {"jawOpen": 0.8}),
    ("oo", {"jawOpen": 0.3, "mouthFunnel": 0.8, "mouthPucker": 0.5}),
    ("ee", {"jawOpen": 0.2, "mouthStretchLeft": 0.8, "mouthStretchRight": 0.8, "mouthSmileLeft": 0.2,
            "mouthSmileRight": 0.2}),
    ("smile", {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.4, "cheekSquintRight": 0.4}),
    ("blink", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0}),
    ("gaze L", {"gaze_yaw": -0.5}),
    ("gaze R", {"gaze_yaw": 0.5}),
    ("yaw -20", {"head_yaw": -np.radians(20)}),
    ("yaw +20", {"head_yaw": np.radians(20)}),
)


@functools.lru_cache(maxsize=1)
def _samples():
    from skimage import data
    from .portrait import PortraitRenderer

    astronaut = data.astronaut()
    closed = PortraitRenderer(image=astronaut, width=512, height=512, face_fraction=0.36)
    closed_photo = closed.render(M.neutral())[40:40 + 380, 150:150 + 300]
    opened = PortraitRenderer(image=astronaut, width=800, height=800, face_fraction=0.4)
    open_face = opened.render(M.from_dict({"jawOpen": 0.45}))
    open_photo = np.pad(open_face, ((0, 0), (224, 0), (0, 0)), mode="edge")
    return {"astronaut": astronaut, "closed": np.ascontiguousarray(closed_photo),
            "open": np.ascontiguousarray(open_photo)}


def sample_portraits() -> dict[str, np.ndarray]:
    """{"astronaut", "closed", "open"} -> (H, W, 3) uint8 RGB photos (copies)."""
    return {k: v.copy() for k, v in _samples().items()}


def gallery(renderers: dict, tile=128) -> np.ndarray:
    """(rows, columns) grid: one row per named renderer, one column per EXPRESSIONS entry."""
    head, side = 22, 84
    rows = []
    for name, renderer in renderers.items():
        cells = []
        for _, channels in EXPRESSIONS:
            img = renderer.render(M.from_dict(channels))
            cells.append(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
        row = np.concatenate(cells, 1)
        label = np.full((tile, side, 3), 245, np.uint8)
        _text(label, name, (6, tile // 2 + 5))
        rows.append(np.concatenate([label, row], 1))
    top = np.full((head, side + tile * len(EXPRESSIONS), 3), 245, np.uint8)
    for i, (title, _) in enumerate(EXPRESSIONS):
        _text(top, title, (side + i * tile + 6, head - 7))
    return np.concatenate([top] + rows, 0)


def _text(img, text, org):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (30, 30, 30), 1, cv2.LINE_AA)


def main_gallery(argv=None) -> int:
    from .portrait import PortraitRenderer, load_rgb

    p = argparse.ArgumentParser(prog="avatar-forcing gallery", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="docs/portrait_gallery.png", help="PNG to write")
    p.add_argument("--tile", type=int, default=128, help="size of one face in the grid (px)")
    p.add_argument("--size", type=int, default=256, help="render size before shrinking to the tile (px)")
    p.add_argument("--portrait", nargs="*", default=None,
                   help="photos to show instead of the three samples (astronaut, closed, open)")
    a = p.parse_args(argv)
    if a.portrait:
        photos = {Path(path).stem[:10]: load_rgb(path) for path in a.portrait}
    else:
        photos = sample_portraits()
    renderers = {name: PortraitRenderer(image=rgb, width=a.size, height=a.size) for name, rgb in photos.items()}
    grid = gallery(renderers, a.tile)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {out}")
    for name, r in renderers.items():
        print(f"{name}: {r.mouth.describe()}")
    print(f"wrote {out}: {grid.shape[1]}x{grid.shape[0]}, {out.stat().st_size / 1e3:.0f} kB")
    return 0
