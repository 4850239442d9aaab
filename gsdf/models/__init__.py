"""gsdf.models: backbones, heads, point encodings, DeepSDF decoders, the models and a registry.

Public API (docs/architecture.md, "Models")::

    model = build_model(name, model_args, **context)   # gf | alignsdf | gsdf | gsdf_video | pose
    terms = model(batch, epoch)                         # dict of weighted loss terms + "loss"
    state = model.encode(batch)
    sdf = model.query(state, points, "hand" | "obj")    # (B, N) hand-frame units
    pose = model.predict_pose(state)                    # joints (B,21,3), obj_center (B,3) or None

Modules: ``args`` (typed ``model_args``), ``backbones``, ``heads`` (UNet neck, 3D heatmaps,
MANO / rotation heads), ``decoder`` (DeepSDF), ``encodings`` (raw, kinematic, pixel-aligned),
``losses``, ``base`` (shared decoders, query and losses), one file per model (``gf``,
``alignsdf``, ``gsdf``, ``gsdf_video``, ``pose``), ``transformer`` and ``registry`` (one
:class:`ModelSpec` per model: args class, builder, data kind, build context;
docs/adding_a_model.md).

Where we knowingly differ from the reference code (zerchen/gSDF):

* heatmap voxels and feature-map cells are read at their centres (``decode_volume``,
  ``pixel_aligned_features``), the reference is up to half a cell off;
* the decoder's output layer starts near zero, so that the clamped L1 loss has a gradient from
  the first step (a prediction beyond the clamp has none);
* gSDF's frozen pose network stays in eval mode (its BatchNorm statistics are not updated) and
  its joints are decoded with its own ``depth_dim``;
* the object-centre loss is used whenever the object branch is on (the reference: only with both
  branches);
* gSDF video supervises the middle frame only (the reference averages the losses of all frames).
"""

from gsdf.models.args import (
    AlignSDFArgs,
    DecoderArgs,
    GFArgs,
    GSDFArgs,
    GSDFVideoArgs,
    ModelArgs,
    PoseArgs,
    TransformerArgs,
)
from gsdf.models.registry import (
    MODELS,
    ModelSpec,
    build_model,
    check_experiment,
    count_parameters,
    data_kind,
    get_spec,
    parse_model_args,
    register,
    unregister,
)

__all__ = [
    "MODELS", "AlignSDFArgs", "DecoderArgs", "GFArgs", "GSDFArgs", "GSDFVideoArgs", "ModelArgs",
    "ModelSpec", "PoseArgs", "TransformerArgs", "build_model", "check_experiment",
    "count_parameters", "data_kind", "get_spec", "parse_model_args", "register", "unregister",
]
