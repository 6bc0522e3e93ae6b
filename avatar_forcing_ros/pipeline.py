"""Building the pipeline's stages from node parameters — one place, so the ROS nodes, the
offline replay and the demo construct exactly the same things from the same YAML.

Parameter names and defaults are those of config/avatar_forcing.yaml (node -> key -> value).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .core.audio import AudioFormat
from .core.motion_model import MotionModel
from .core.paths import find_share
from .generation.factory import load_motion_model
from .core.runtime import StreamingGenerator
from .core.face_commands import FaceCommands, FaceCommandSettings
from .core.humans import HumanSettings, HumanSource
from .core.stages import GeneratorStage, PerceptionStage, RendererStage
from .core.telemetry import Telemetry

NODES = ("perception", "generator", "renderer")


def default_config_path() -> Path | None:
    """config/avatar_forcing.yaml of a source tree, pip install or ROS install."""
    return find_share("config", "avatar_forcing.yaml")


def load_node_parameters(path: str | Path | None = None) -> dict[str, dict]:
    """{node: {parameter: value}} from a ROS 2 parameter YAML, read the way rcl reads it for a
    node of that name in any namespace: ``/**:`` (every node), then ``/**/<node>:``, then
    ``<node>:`` / ``/<node>:`` (later sections override earlier ones), each with ``ros__parameters``."""
    path = Path(path) if path else default_config_path()
    if path is None or not path.is_file():
        raise FileNotFoundError(f"parameter file {path} not found")
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a ROS 2 parameter file (expected node: ros__parameters: ...)")
    out = {}
    for node in NODES:
        params = {}
        for key in ("/**", f"/**/{node}", node, f"/{node}"):
            section = doc.get(key) or {}
            if not isinstance(section, dict) or not isinstance(section.get("ros__parameters", {}), dict):
                raise ValueError(f"{path}: section {key!r} has no ros__parameters mapping")
            params.update(section.get("ros__parameters") or {})
        out[node] = params
    return out


def perception_space(p: dict):
    """The motion space the perception node publishes with these parameters."""
    from .core.motion import AF_MOTION_V1, AVATARFORCING_LATENT_512

    return (AVATARFORCING_LATENT_512 if str(p.get("motion_encoder", "blendshapes")).startswith("avatarforcing:")
            else AF_MOTION_V1)


def build_estimator(p: dict):
    encoder = str(p.get("motion_encoder", "blendshapes"))
    if encoder.startswith("avatarforcing:"):  # the official network's encoder: its latent space
        from .generation.official.face import OfficialFaceEncoder

        return OfficialFaceEncoder(encoder[len("avatarforcing:"):], device=str(p.get("motion_encoder_device", "cpu")))
    if encoder != "blendshapes":
        raise ValueError(f"motion_encoder {encoder!r}: expected 'blendshapes' or 'avatarforcing:<dir>'")
    from .core.perception import FaceMotionEstimator

    return FaceMotionEstimator(auto_calibration_frames=int(p["calibration_frames"]),
                               decay_tau_s=float(p["no_face_decay_s"]))


def build_motion_model(p: dict) -> tuple[MotionModel, str]:
    return load_motion_model(
        str(p["model"]), fps=float(p["fps"]), block_frames=int(p["block_frames"]),
        seed=int(p["seed"]), device=str(p["device"]), providers=list(p["onnx_providers"]),
        guidance_scale=float(p["guidance_scale"]), threads=int(p["torch_threads"]),
        audio_guidance_scale=float(p.get("audio_guidance_scale", -1.0)),  # -1: the model's own
        mouth_temperature=float(p.get("mouth_temperature", -1.0)),
        nod_guidance_scale=float(p.get("nod_guidance_scale", -1.0)))  # -1: the model's own


def build_generator(p: dict, model: MotionModel) -> StreamingGenerator:
    budget = float(p.get("compute_budget_s", -1.0))  # -1: the measured p95 of block compute
    return StreamingGenerator(model, output_delay_s=float(p["output_delay_s"]),
                              user_motion_timeout_s=float(p["user_motion_timeout_s"]),
                              compute_budget_s=None if budget < 0 else budget)


def build_renderer(p: dict):
    from .render import make_renderer

    kind = str(p["renderer"])
    params = {"width": int(p["width"]), "height": int(p["height"])}
    if kind == "stylised":
        for key in ("background", "face_colour", "feature_colour"):
            params[key] = tuple(int(c) for c in p[key])
    elif kind == "portrait":
        params["image_path"] = p["portrait_path"] or None
    elif kind == "neural":
        params["model_dir"] = p["neural_model_dir"]
        params["providers"] = list(p["onnx_providers"])
    elif kind == "avatarforcing":
        params["weights_dir"] = p["avatarforcing_dir"]
        params["portrait_path"] = p["portrait_path"] or None
        params["device"] = p["avatarforcing_device"]
    return make_renderer(kind, **params)


def audio_format(p: dict, side: str) -> AudioFormat:
    """The configured format of one audio input ("user" or "speech") until an AudioInfo says
    otherwise; an AudioFormatError names what is wrong."""
    return AudioFormat(int(p[f"{side}_audio_sample_rate"]), int(p[f"{side}_audio_channels"]),
                       str(p[f"{side}_audio_sample_format"])).validate()


def build_perception_stage(p: dict, telemetry: Telemetry | None = None) -> PerceptionStage:
    return PerceptionStage(build_estimator(p), float(p["max_frame_age_s"]), telemetry)


def build_generator_stage(p: dict, telemetry: Telemetry | None = None) -> tuple[GeneratorStage, str]:
    """The generator stage and a note for the log ('' if none): a model fallback, or an
    ``output_delay_s`` raised to what the model needs (its block and look-ahead)."""
    model, note = build_motion_model(p)
    generator = build_generator(p, model)
    if float(p["output_delay_s"]) < generator.min_output_delay_s - 1e-9:
        note = "; ".join(filter(None, [note, (
            f"output_delay_s {p['output_delay_s']} is less than this model needs (its block and "
            f"look-ahead, {generator.block + generator.lookahead} frames): frames are presented "
            f"{generator.output_delay_s:.3f} s after their input")]))
    return GeneratorStage(generator, audio_format(p, "user"), audio_format(p, "speech"), telemetry,
                          build_face_commands(p, model.space), build_human_source(p, model.space)), note


def build_human_source(p: dict, space) -> HumanSource | None:
    """The ROS4HRI user selection of ``user_source: hri`` (None for the camera)."""
    if p.get("user_source", "camera") != "hri":
        return None
    from .core.motion import AF_MOTION_V1
    if space.id != AF_MOTION_V1.id:
        raise ValueError(f"user_source hri gives the user's face as {AF_MOTION_V1.id} (from "
                         f"landmarks); this model reads {space.id}: use user_source camera")
    d = HumanSettings()
    return HumanSource(space, HumanSettings(
        calibration_frames=int(p.get("hri_calibration_frames", d.calibration_frames)),
        switch_time_s=float(p.get("hri_switch_time_s", d.switch_time_s)),
        max_ids=int(p.get("hri_max_ids", d.max_ids)),
        camera_hfov_deg=float(p.get("hri_camera_hfov_deg", d.camera_hfov_deg))))


def face_command_settings(p: dict) -> FaceCommandSettings:
    """The expression / look-at blend settings (defaults where a parameter file predates them)."""
    d = FaceCommandSettings()
    return FaceCommandSettings(
        expression_time_constant_s=float(p.get("expression_time_constant_s", d.expression_time_constant_s)),
        look_at_time_constant_s=float(p.get("look_at_time_constant_s", d.look_at_time_constant_s)),
        look_at_head_share=float(p.get("look_at_head_share", d.look_at_head_share)),
        look_at_hold_s=float(p.get("look_at_hold_s", d.look_at_hold_s)),
        look_at_frames=tuple(p.get("look_at_frames", d.look_at_frames)))


def build_face_commands(p: dict, space) -> FaceCommands:
    return FaceCommands(space, face_command_settings(p))


def build_renderer_stage(p: dict, model_space=None, telemetry: Telemetry | None = None) -> RendererStage:
    from .core.motion import AF_MOTION_V1

    renderer = build_renderer(p)  # a renderer of a model's own latent says its space
    return RendererStage(renderer, model_space or getattr(renderer, "space", AF_MOTION_V1), telemetry)
