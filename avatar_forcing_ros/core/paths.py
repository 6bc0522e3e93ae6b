"""Where the package's data files are: the one place that knows the install layouts.

A source tree or pip editable install keeps them beside the package (``<repo>/config``,
``<repo>/models``, ``<repo>/msg``); a colcon or pip install puts them under
``<prefix>/share/avatar_forcing_ros`` (every prefix of AMENT_PREFIX_PATH, then sys.prefix).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "avatar_forcing_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def share_candidates(*parts: str, package: str = PACKAGE) -> list[Path]:
    """Every place ``parts`` (e.g. "config", "avatar_forcing.yaml") may live, in search order."""
    found = []
    if package == PACKAGE:
        found.append(SOURCE_ROOT.joinpath(*parts))
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) + [sys.prefix]:
        if prefix:
            found.append(Path(prefix, "share", package, *parts))
    return found


def find_share(*parts: str, package: str = PACKAGE, is_dir: bool = False) -> Path | None:
    """The first existing file (or folder with ``is_dir``) named by ``parts``, or None."""
    for c in share_candidates(*parts, package=package):
        if (c.is_dir() if is_dir else c.is_file()):
            return c
    return None
