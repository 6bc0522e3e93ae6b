"""A neural portrait renderer for users who bring LivePortrait-style ONNX weights.

No weights ship with this package. Put these four files in one directory (e.g. an ONNX export
of LivePortrait; the signatures are checked on load):

    appearance_feature_extractor.onnx  img (1,3,256,256) in [0,1] -> feature_3d (1,32,16,64,64)
    motion_extractor.onnx              img (1,3,256,256) -> pitch, yaw, roll (1,66) bins,
                                       t (1,3), exp (1,63), scale (1,1), kp (1,63), in this order
    warping_spade.onnx                 feature_3d, kp_driving (1,21,3), kp_source (1,21,3)
                                       -> image (1,3,H,W) in [0,1]
    stitching.onnx (optional)          (1,126) = [kp_source, kp_driving] -> (1,65) = 63 keypoint
                                       deltas + (tx, ty)

How af-motion-v1 drives the implicit keypoints (the source's own motion is the neutral):
- pitch/yaw/roll (degrees) = source + pose_signs * degrees(head_pitch/head_yaw/head_roll);
- kp = scale * (kp_canonical @ R + exp) + t, with t_z = 0, as the keypoint model defines it;
- exp = exp_source + EXPRESSION_MAP^T @ [gaze_yaw, gaze_pitch, 20 expression coefficients];
- t_x/t_y = t_source + head_tx/ty * keypoint_units_per_face; scale = scale_source * e^head_scale.
EXPRESSION_MAP moves the keypoints that LivePortrait expression editors commonly use for each
action (19 mouth opening, 14/17/20 lips, 11/13/15/16 eyes and lids, 1/2 brows). It was not fitted
to real weights (none are available here): pass ``expression_map`` (22, 63) and ``pose_signs``
to correct it for a given export.
"""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from ..core.motion import AF_MOTION_V1

log = logging.getLogger(__name__)

_M = AF_MOTION_V1
_I = {n: _M.index(n) for n in _M.names}
# the channels that move keypoints through the expression map, in map row order
MAP_CHANNELS = ["gaze_yaw", "gaze_pitch"] + [c.name for c in _M.channels if c.group not in ("pose", "gaze")]

# expected signatures: (name or None for any, shape with None for any size)
SIGNATURES = {
    "appearance_feature_extractor.onnx": ([(None, (1, 3, 256, 256))], [(None, (1, 32, 16, 64, 64))]),
    "motion_extractor.onnx": ([(None, (1, 3, 256, 256))],
                              [(None, (1, 66)), (None, (1, 66)), (None, (1, 66)), (None, (1, 3)),
                               (None, (1, 63)), (None, (1, 1)), (None, (1, 63))]),
    "warping_spade.onnx": ([("feature_3d", (1, 32, 16, 64, 64)), ("kp_driving", (1, 21, 3)),
                            ("kp_source", (1, 21, 3))], [(None, (1, 3, None, None))]),
    "stitching.onnx": ([(None, (1, 126))], [(None, (1, 65))]),
}
OPTIONAL = {"stitching.onnx"}

# short names accepted for the onnxruntime execution providers
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "tensorrt": "TensorrtExecutionProvider"}

# (channel, keypoint, axis, weight): keypoint units are about 1 per half image; y points down
_MAP_ENTRIES = [
    ("gaze_yaw", 11, 0, 0.012), ("gaze_yaw", 15, 0, 0.012),
    ("gaze_pitch", 11, 1, -0.008), ("gaze_pitch", 15, 1, -0.008),
    ("jawOpen", 19, 1, 0.06), ("jawOpen", 19, 2, 0.006), ("jawOpen", 17, 1, -0.006),
    ("mouthFunnel", 19, 1, 0.02), ("mouthFunnel", 14, 1, 0.015), ("mouthFunnel", 17, 2, -0.02),
    ("mouthPucker", 14, 1, 0.01), ("mouthPucker", 17, 2, -0.03),
    ("mouthSmileLeft", 20, 1, -0.02), ("mouthSmileLeft", 14, 1, -0.015), ("mouthSmileLeft", 17, 1, 0.006),
    ("mouthSmileRight", 20, 1, -0.02), ("mouthSmileRight", 14, 1, -0.015), ("mouthSmileRight", 17, 1, 0.006),
    ("mouthFrownLeft", 20, 1, 0.015), ("mouthFrownRight", 20, 1, 0.015),
    ("mouthStretchLeft", 20, 2, -0.015), ("mouthStretchRight", 20, 2, -0.015),
    ("eyeBlinkLeft", 11, 1, 0.02), ("eyeBlinkLeft", 13, 1, -0.006),
    ("eyeBlinkRight", 15, 1, 0.02), ("eyeBlinkRight", 16, 1, -0.006),
    ("eyeWideLeft", 11, 1, -0.008), ("eyeWideRight", 15, 1, -0.008),
    ("browInnerUp", 1, 1, -0.015), ("browInnerUp", 2, 1, -0.015),
    ("browDownLeft", 1, 1, 0.012), ("browDownRight", 2, 1, 0.012),
    ("browOuterUpLeft", 1, 0, 0.006), ("browOuterUpRight", 2, 0, -0.006),
    ("cheekSquintLeft", 13, 1, -0.008), ("cheekSquintRight", 16, 1, -0.008),
]


def default_expression_map() -> np.ndarray:
    """(22, 63): row per MAP_CHANNELS entry, column = keypoint * 3 + axis."""
    m = np.zeros((len(MAP_CHANNELS), 63), np.float32)
    for channel, kp, axis, weight in _MAP_ENTRIES:
        m[MAP_CHANNELS.index(channel), kp * 3 + axis] += weight
    return m


def rotation_matrix(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) R such that rotated row-vector keypoints are kp @ R (R = (Rz Ry Rx)^T)."""
    x, y, z = np.radians([pitch_deg, yaw_deg, roll_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return (rz @ ry @ rx).T


def bins_to_degrees(logits: np.ndarray) -> float:
    """66 pose bins of 3 degrees -> expected angle (softmax expectation, centred at 97.5)."""
    z = logits.reshape(-1).astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return float((p * np.arange(z.size)).sum() * 3.0 - 97.5)


def _signature_text(name):
    ins, outs = SIGNATURES[name]
    fmt = lambda items: ", ".join(f"{n or '*'}{tuple('?' if d is None else d for d in s)}" for n, s in items)
    return f"inputs [{fmt(ins)}] -> outputs [{fmt(outs)}]"


def _shape_matches(actual, expected):
    if len(actual) != len(expected):
        return False
    # symbolic or unknown dims in the model match anything
    return all(e is None or not isinstance(a, int) or a == e for a, e in zip(actual, expected))


def _check_signature(session, path, name):
    ins, outs = SIGNATURES[name]
    got_in = [(i.name, tuple(i.shape)) for i in session.get_inputs()]
    got_out = [(o.name, tuple(o.shape)) for o in session.get_outputs()]
    problem = None
    if len(got_in) != len(ins) or len(got_out) != len(outs):
        problem = f"has {len(got_in)} inputs and {len(got_out)} outputs"
    else:
        by_name = dict(got_in)
        for i, (want_name, want_shape) in enumerate(ins):
            have_name, have_shape = (want_name, by_name.get(want_name)) if want_name else got_in[i]
            if have_shape is None:
                problem = f"has no input named {want_name!r} (inputs: {[n for n, _ in got_in]})"
            elif not _shape_matches(have_shape, want_shape):
                problem = f"input {have_name!r} has shape {have_shape}"
            if problem:
                break
        for (have_name, have_shape), (_, want_shape) in zip(got_out, outs):
            if problem is None and not _shape_matches(have_shape, want_shape):
                problem = f"output {have_name!r} has shape {have_shape}"
    if problem:
        raise ValueError(f"{path} {problem}; expected {_signature_text(name)}")
    return [n for n, _ in got_in]


def resolve_providers(providers) -> list[str]:
    """Provider names in preference order ("cuda" or "CUDAExecutionProvider", ...), keeping the
    ones this onnxruntime has (the others logged) and always ending with the CPU."""
    import onnxruntime as ort

    if isinstance(providers, str):
        providers = [providers]
    known = set(PROVIDER_NAMES.values())
    wanted = []
    for p in providers:
        full = PROVIDER_NAMES.get(str(p).lower(), str(p))
        if full not in known:
            raise ValueError(f"unknown onnxruntime provider {p!r}; use one of "
                             f"{sorted(PROVIDER_NAMES)} or {sorted(known)}")
        wanted.append(full)
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    missing = [p for p in wanted if p not in available]
    if missing:
        log.warning("%s not available in this onnxruntime (it has %s); running on %s",
                    ", ".join(missing), sorted(available), chosen)
    return chosen


def make_session(path, providers):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=options, providers=providers)


def _load_source_rgb(image_path, image):
    if image is not None:
        rgb = np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        return rgb, "<image array>"
    if image_path:
        from .portrait import load_rgb
        return load_rgb(str(image_path)), str(image_path)
    from skimage import data
    return data.astronaut(), "skimage.data.astronaut()"


class NeuralPortraitRenderer:
    """render(values (28,)) -> (height, width, 3) uint8 RGB from LivePortrait-style ONNX models."""

    def __init__(self, model_dir, image_path=None, image=None, width=512, height=512,
                 providers=("CPUExecutionProvider",),
                 crop_to_face=True, crop_scale=2.3, expression_map=None, pose_signs=(1.0, 1.0, 1.0),
                 use_stitching=True):
        if int(width) != width or int(height) != height or width < 16 or height < 16:
            raise ValueError(f"width and height must be integers >= 16, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(f"neural renderer model directory not found: {model_dir}")
        self.model_dir = str(model_dir)
        self.providers = resolve_providers(providers)
        self.sessions, self.input_names = {}, {}
        for name in SIGNATURES:
            path = os.path.join(self.model_dir, name)
            if not os.path.isfile(path):
                if name in OPTIONAL:
                    log.info("%s not found: rendering without stitching", path)
                    continue
                raise FileNotFoundError(f"missing model file {path}; expected {_signature_text(name)}")
            try:
                session = make_session(path, self.providers)
            except Exception as e:  # onnxruntime raises its own types for corrupt files
                raise ValueError(f"{path} is not a loadable ONNX model ({e}); expected {_signature_text(name)}") from e
            self.input_names[name] = _check_signature(session, path, name)
            self.sessions[name] = session
        self.use_stitching = bool(use_stitching) and "stitching.onnx" in self.sessions

        m = default_expression_map() if expression_map is None else np.asarray(expression_map, np.float32)
        if m.shape != (len(MAP_CHANNELS), 63):
            raise ValueError(f"expression_map must have shape ({len(MAP_CHANNELS)}, 63), got {m.shape}")
        self.expression_map = m
        self.pose_signs = np.asarray(pose_signs, np.float64).reshape(3)
        self._map_idx = np.array([_I[n] for n in MAP_CHANNELS])
        # the crop spans crop_scale face widths; keypoints span 2 units across the crop
        self.keypoint_units_per_face = 2.0 / float(crop_scale)
        self.dropped_values = 0

        rgb, self.source = _load_source_rgb(image_path, image)
        self.source_crop = self._crop(rgb, crop_to_face, float(crop_scale))       # (256, 256, 3)
        img = self.source_crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0  # (1, 3, 256, 256)
        self.feature_3d = self._run("appearance_feature_extractor.onnx", [img])[0].astype(np.float32)
        pitch, yaw, roll, t, exp, scale, kp = self._run("motion_extractor.onnx", [img])
        self.source_pose = np.array([bins_to_degrees(pitch), bins_to_degrees(yaw), bins_to_degrees(roll)])
        self.source_t = t.reshape(3).astype(np.float64)
        self.source_exp = exp.reshape(21, 3).astype(np.float64)
        self.source_scale = float(scale.reshape(-1)[0])
        self.kp_canonical = kp.reshape(21, 3).astype(np.float64)
        self.kp_source = self._keypoints(self.source_pose, self.source_exp, self.source_t, self.source_scale)

    def _crop(self, rgb, crop_to_face, crop_scale):
        if crop_to_face:
            from .portrait import FACE_OVAL, detect_face_mesh
            oval = detect_face_mesh(rgb, self.source)[FACE_OVAL, :2]
            centre = (oval.min(0) + oval.max(0)) / 2
            side = crop_scale * (oval[:, 0].max() - oval[:, 0].min())
            k = 256.0 / side
            affine = np.array([[k, 0, 128 - k * centre[0]], [0, k, 128 - k * centre[1]]])
            return cv2.warpAffine(rgb, affine, (256, 256), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        return cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)

    def _run(self, name, arrays):
        feed = dict(zip(self.input_names[name], arrays))
        return self.sessions[name].run(None, feed)

    def _keypoints(self, pose_deg, exp, t, scale):
        """(21, 3) implicit keypoints: scale * (kp_c @ R + exp) + t, translation only in x, y."""
        R = rotation_matrix(*pose_deg)
        kp = scale * (self.kp_canonical @ R + exp)
        kp[:, :2] += t[:2]
        return kp

    def driving_keypoints(self, v):
        """(21, 3) driving keypoints for a sanitised af-motion-v1 vector (before stitching)."""
        delta_deg = np.degrees([v[_I["head_pitch"]], v[_I["head_yaw"]], v[_I["head_roll"]]]) * self.pose_signs
        exp = self.source_exp + (v[self._map_idx] @ self.expression_map).reshape(21, 3)
        t = self.source_t.copy()
        t[:2] += np.array([v[_I["head_tx"]], v[_I["head_ty"]]]) * self.keypoint_units_per_face
        scale = self.source_scale * np.exp(v[_I["head_scale"]])
        return self._keypoints(self.source_pose + delta_deg, exp, t, scale)

    def render(self, values):
        v, n_bad = _M.sanitize(values)
        self.dropped_values += n_bad
        v = v.astype(np.float64)
        kp_d = self.driving_keypoints(v)
        if self.use_stitching:
            both = np.concatenate([self.kp_source.reshape(-1), kp_d.reshape(-1)])[None].astype(np.float32)
            delta = self._run("stitching.onnx", [both])[0].reshape(-1).astype(np.float64)
            kp_d = kp_d + delta[:63].reshape(21, 3)
            kp_d[:, :2] += delta[63:65]
        by_name = {"feature_3d": self.feature_3d, "kp_driving": kp_d[None].astype(np.float32),
                   "kp_source": self.kp_source[None].astype(np.float32)}
        out = self._run("warping_spade.onnx", [by_name[n] for n in self.input_names["warping_spade.onnx"]])[0]
        frame = (np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if frame.shape[:2] != (self.height, self.width):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return frame

    def close(self):
        self.sessions.clear()
