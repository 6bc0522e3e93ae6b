"""The ``avatar-forcing`` command: everything the package does without ROS.

    avatar-forcing demo        write an MP4 of the avatar in a synthetic conversation
    avatar-forcing gallery     a PNG of the photo portrait's expressions on sample portraits
    avatar-forcing corpus      generate the dyadic training corpus
    avatar-forcing perceive-corpus   a corpus copy with the user's motion as perception reads it
    avatar-forcing measure-tracker   the tracker's lag, gain, noise, dropouts in such a copy
    avatar-forcing train       train the Avatar Forcing model
    avatar-forcing dpo         preference-tune it (losers: user conditions dropped)
    avatar-forcing evaluate    metrics of models on a held-out corpus
    avatar-forcing export      export the streaming step to ONNX
    avatar-forcing record      record the pipeline's topics to a rosbag2 (needs ROS 2)
    avatar-forcing replay      run a recorded bag through the exact pipeline, offline
    avatar-forcing dataset     turn recorded bags into training data
    avatar-forcing timeline    a figure and metrics report of a bag, replay or session
    avatar-forcing convert-official DIR   the official weights (.pth) -> safetensors, once
"""
from __future__ import annotations

import importlib
import logging
import sys

# subcommand -> (module, function taking argv); modules load lazily (torch only when needed)
COMMANDS = {
    "demo": ("avatar_forcing_ros.demo", "main"),
    "gallery": ("avatar_forcing_ros.render.portrait_gallery", "main_gallery"),
    "corpus": ("avatar_forcing_ros.corpus.dataset", "main_generate"),
    "perceive-corpus": ("avatar_forcing_ros.corpus.perceived", "main_perceive"),
    "measure-tracker": ("avatar_forcing_ros.corpus.perceived", "main_measure"),
    "train": ("avatar_forcing_ros.generation.forcing.train", "main_train"),
    "dpo": ("avatar_forcing_ros.generation.forcing.dpo", "main_dpo"),
    "evaluate": ("avatar_forcing_ros.generation.evaluation", "main_evaluate"),
    "export": ("avatar_forcing_ros.generation.forcing.onnx_export", "main_export"),
    "record": ("avatar_forcing_ros.ros.recorder", "main_record"),
    "replay": ("avatar_forcing_ros.offline.replay", "main_replay"),
    "dataset": ("avatar_forcing_ros.offline.recordings", "main_dataset"),
    "timeline": ("avatar_forcing_ros.offline.timeline", "main_timeline"),
    "convert-official": ("avatar_forcing_ros.generation.official.convert", "main_convert"),
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"avatar-forcing: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module, func = COMMANDS[name]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
