"""What a ROS workspace without the heavy optional libraries can import and run.

rosdep gives a workspace numpy, onnxruntime, OpenCV... but no torch (optional: checkpoint
directories, CUDA, training). Each check runs in a fresh interpreter whose import system refuses
the blocked libraries, as if they were not installed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

BLOCKER = """
import sys

class _NotInstalled:
    '''Refuses the blocked top-level modules, as an environment without them would.'''
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, _NotInstalled())
"""


def run_blocked(blocked: set[str], code: str) -> dict:
    """Run `code` with `blocked` unimportable; it prints one JSON line last, returned parsed."""
    script = BLOCKER + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script, ",".join(sorted(blocked))], capture_output=True,
                            text=True, timeout=240, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def conditions_code(seed: int = 3) -> str:
    return f"""
    import numpy as np
    from avatar_forcing_ros.core.motion_model import BlockConditions

    def conditions(model, blocks=4):
        rng = np.random.default_rng({seed})
        B, A, D = model.block_frames, model.cfg.audio_dim, model.cfg.motion_dim
        return [BlockConditions(start_frame=i * B, avatar_audio=rng.normal(size=(B, A)).astype(np.float32),
                                user_audio=rng.normal(size=(B, A)).astype(np.float32),
                                user_motion=np.tile(model.space.neutral(), (B, 1)).astype(np.float32),
                                user_present=np.ones(B, np.float32)) for i in range(blocks)]
    """


def test_the_shipped_model_runs_on_onnxruntime_without_torch():
    out = run_blocked({"torch", "safetensors"}, conditions_code() + """
    import json, sys
    from avatar_forcing_ros.generation.factory import load_motion_model

    model, note = load_motion_model("default", device="cpu", guidance_scale=5.0)
    motion = np.concatenate([model.next_block(c) for c in conditions(model)])
    print(json.dumps({"model": type(model).__name__, "backend": model.backend, "note": note,
                      "path": str(model.path), "motion": motion.tolist(),
                      "torch_loaded": "torch" in sys.modules}))
    """)
    assert (out["model"], out["backend"], out["note"]) == ("LearnedMotionModel", "onnx", "")
    from avatar_forcing_ros.generation.factory import SHIPPED_MODEL
    assert out["path"].endswith(f"{SHIPPED_MODEL}/model.onnx") and not out["torch_loaded"]

    # the same motion as the learned model gives with every library present
    from avatar_forcing_ros.generation.factory import load_motion_model

    namespace: dict = {}
    exec(textwrap.dedent(conditions_code()), namespace)
    model, _ = load_motion_model("default", device="cpu", guidance_scale=5.0)
    expected = np.concatenate([model.next_block(c) for c in namespace["conditions"](model)])
    motion = np.array(out["motion"], np.float32)
    assert motion.shape == expected.shape and np.isfinite(motion).all()
    assert np.allclose(motion, expected, atol=1e-5)
    assert np.abs(motion - model.space.neutral()).max() > 1e-3  # a moving face, not a constant


def test_a_node_of_another_package_imports_face_motion_without_the_ml_stack():
    out = run_blocked({"torch", "mediapipe", "onnxruntime", "safetensors", "cv2", "scipy"}, """
    import json, sys
    from avatar_forcing_ros.msg import FaceMotion

    msg = FaceMotion()
    msg.header.frame_id = "user_face"
    print(json.dumps({"fields": sorted(FaceMotion.get_fields_and_field_types()),
                      "type": FaceMotion.__module__,
                      "heavy": sorted(m for m in ("torch", "mediapipe", "onnxruntime", "cv2", "scipy")
                                      if m in sys.modules)}))
    """)
    assert "header" in out["fields"] and out["heavy"] == []
    assert out["type"].startswith("avatar_forcing_ros.msg")
