"""gsdf.models: backbones, heads, point encodings, DeepSDF decoders, the models and a registry.

Public API (docs/architecture.md, "Models")::

    model = build_model(name, model_args, **context)   # gf | alignsdf | gsdf | gsdf_video | pose
    terms = model(batch, epoch)                         # dict of weighted loss terms + "loss"
    state = model.encode(batch)
    sdf = model.query(state, points, "hand" | "obj")    # (B, N) hand-frame units
    pose = model.predict_pose(state)                    # joints (B,21,3), obj_center (B,3) or None
"""

from gsdf.models.args import (
    AlignSDFArgs,
    DecoderArgs,
    GFArgs,
    GSDFArgs,
    GSDFVideoArgs,
    PoseArgs,
    TransformerArgs,
)
from gsdf.models.registry import MODELS, build_model, count_parameters, parse_model_args

__all__ = [
    "MODELS", "AlignSDFArgs", "DecoderArgs", "GFArgs", "GSDFArgs", "GSDFVideoArgs", "PoseArgs",
    "TransformerArgs", "build_model", "count_parameters", "parse_model_args",
]
