"""Typed ``model_args`` of every registered model (built with :func:`gsdf.config.from_dict`).

One dataclass per model; the experiment YAML's ``model_args`` block is turned into it, unknown keys
are refused with a message naming them and the allowed keys, and each class checks its own values
(``validate``, run on construction) with a message naming the key and the allowed values.

These classes are the ONE source of model defaults. The defaults are the reference's settings
for each model: zerchen/gSDF ``playground/{task}/config.py`` overridden by that task's ObMan
experiment file (``playground/hsdf_osdf_1net/experiments/obman_resnet18_hnerf3_onerf3.yaml`` for
gf, ``.../obman_resnet18_hkine6_otrans6.yaml`` for alignsdf,
``playground/hsdf_osdf_2net_pa/experiments/obman_presnet18_sresnet18_hkine6_okine6.yaml`` for
gsdf, ``playground/hsdf_osdf_2net_video_pa/config.py`` for gsdf_video and
``playground/pose_kpt/experiments/obman_hand.yaml`` for pose), except gSDF's point encodings,
51 / 72 (the paper's full model; the released experiment files set 6 / 6).
``config/experiments/*.yaml`` hold only what differs from these defaults.

Hand-frame units: points are ``(p_cam - wrist) * recon_scale / 2`` (docs/architecture.md); SDF
values, ``clamp_dist`` and every point encoding are in these units. Camera quantities (joints,
object centre, ``depth_dim``) are metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gsdf.config import ConfigError

BACKBONES = ("resnet18", "resnet34", "resnet50")
ENCODE_STYLES = ("raw", "kine")
HAND_KINE_LATENTS = (6, 21, 36, 51)
OBJ_KINE_LATENTS = (6, 9, 69, 72)
ROT_STYLES = ("6d", "axisang")
POSE_SOURCES = ("network", "ground_truth")
SDF_LOSSES = ("clamped", "band")
JOINTS_LOSSES = ("mse", "l1")


def check_choice(key: str, value: Any, allowed: tuple) -> None:
    """Raise :class:`ConfigError` naming ``model_args`` key ``key`` unless ``value`` is allowed."""
    if value not in allowed:
        raise ConfigError(f"model_args '{key}' = {value!r} is not allowed; allowed values: "
                          f"{list(allowed)}")


@dataclass
class ModelArgs:
    """Base of every model's ``model_args`` dataclass: checks the values on construction.

    Subclasses extend :meth:`validate` (calling ``super().validate()``) with their own checks;
    :func:`gsdf.config.from_dict` builds them, so a bad value fails when the config is read.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the key and the allowed values."""


@dataclass
class DecoderArgs:
    """DeepSDF decoder (reference ``SDFHead``): ``len(dims)`` hidden layers + a linear output.

    Attributes:
        dims: widths of the hidden layers (reference: 4 x 512, i.e. 5 linear layers).
        dropout_layers: hidden layers followed by dropout.
        dropout_prob: dropout probability (0.2).
        norm_layers: hidden layers with weight normalisation.
        latent_in: hidden layers whose input is re-concatenated with the decoder input (the
            middle layer, 2).
        num_classes: classes of the optional hand-part head (6: palm + 5 fingers).
    """

    dims: tuple[int, ...] = (512, 512, 512, 512)
    dropout_layers: tuple[int, ...] = (0, 1, 2, 3)
    dropout_prob: float = 0.2
    norm_layers: tuple[int, ...] = (0, 1, 2, 3)
    latent_in: tuple[int, ...] = (2,)
    num_classes: int = 6


@dataclass
class PoseArgs(ModelArgs):
    """The hand pose network (reference ``playground/pose_kpt``, hand only).

    ResNet backbone -> UNet neck (``neck_stages`` stride-2 deconvolutions) -> 1x1 conv to
    ``21 * heatmap_depth`` channels -> 3D soft-argmax -> wrist-relative depth decoding.

    Attributes:
        backbone: torchvision ResNet name.
        backbone_weights: optional local file with ImageNet weights (torchvision format).
        image_size: training image side in pixels (square).
        neck_channels: channels of the UNet neck.
        neck_stages: number of x2 upsampling stages (3: heatmap at 1/4 of the image).
        neck_skips: add the backbone's stride-16/8/4/2 maps to the neck's stages (a UNet with
            skip connections, needs ``neck_stages`` <= 4); the reference's neck has none. Skips
            localise joints far better from small inputs (docs/results.md, "The pose network").
        heatmap_depth: depth bins of the 3D heatmap (64).
        depth_dim: half range, metres, of the depth bins around the wrist depth (0.20 in the
            reference's pose experiments, 0.28 in its config default).
        joints_weight: weight of the loss on 3D joints (camera metres; reference
            ``volume_weight``).
        joints_loss: ``mse`` (the reference) or ``l1`` (mean absolute error, Integral Human
            Pose Regression's choice for soft-argmax joints: its gradient does not fade as the
            error shrinks).
        hand_ordinal_weight: weight of the hand ordinal loss (reference ``hand_ordinal_weight``).
    """

    backbone: str = "resnet18"
    backbone_weights: str | None = None
    image_size: int = 256
    neck_channels: int = 256
    neck_stages: int = 3
    neck_skips: bool = False
    heatmap_depth: int = 64
    depth_dim: float = 0.20
    joints_weight: float = 1.0
    joints_loss: str = "mse"
    hand_ordinal_weight: float = 1.0

    def validate(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        if self.neck_skips and not 1 <= self.neck_stages <= 4:
            raise ConfigError(f"model_args 'neck_stages' = {self.neck_stages} with 'neck_skips: "
                              f"true'; allowed values: 1 to 4 (one backbone map per stage)")
        check_choice("joints_loss", self.joints_loss, JOINTS_LOSSES)


@dataclass
class GFArgs(ModelArgs):
    """Grasping Field (reference ``hsdf_osdf_1net`` with ``nerf`` 3-d encodings).

    Attributes:
        backbone, backbone_weights, image_size: see :class:`PoseArgs`.
        hand_branch, obj_branch: build the hand / object SDF decoder.
        sdf_latent: size of the image feature given to the decoders.
        hand_encode_style, obj_encode_style: ``raw`` (the point, 3) or ``kine`` (kinematic
            embeddings; needs a pose estimate, so not for ``gf``).
        hand_point_latent, obj_point_latent: size of the point encoding.
        hand_cls: add the 6-class hand-part head to the hand decoder.
        decoder: :class:`DecoderArgs`.
        clamp_dist: SDF clamp, hand-frame units (0.05).
        sdf_loss: ``clamped`` (the reference's DeepSDF loss, ``|clamp(pred) - clamp(target)|``:
            a prediction beyond the clamp gets no gradient) | ``band`` (the same value while the
            prediction is inside the band, and a gradient back into it when it is not, see
            :func:`gsdf.models.losses.masked_l1`).
        sdf_add_epoch: before this epoch each decoder is trained only on its own shape's samples
            (hand decoder on the first N/2 points, object decoder on the last N/2); from it on,
            both decoders see all points and the part loss is switched on (reference mask
            schedule).
        hand_sdf_weight, obj_sdf_weight, hand_cls_weight: loss weights (``hand_cls_weight``: 0
            in every reference experiment file, 0.05 in its ``config.py``).
    """

    #: the model estimates a hand pose / object centre, so ``kine`` encodings are possible
    pose_estimate: ClassVar[bool] = False

    backbone: str = "resnet18"
    backbone_weights: str | None = None
    image_size: int = 256
    hand_branch: bool = True
    obj_branch: bool = True
    sdf_latent: int = 256
    hand_encode_style: str = "raw"
    obj_encode_style: str = "raw"
    hand_point_latent: int = 3
    obj_point_latent: int = 3
    hand_cls: bool = False
    decoder: DecoderArgs = field(default_factory=DecoderArgs)
    clamp_dist: float = 0.05
    sdf_loss: str = "clamped"
    sdf_add_epoch: int = 1201
    hand_sdf_weight: float = 0.5
    obj_sdf_weight: float = 0.5
    hand_cls_weight: float = 0.0

    def validate(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        if not (self.hand_branch or self.obj_branch):
            raise ConfigError("model_args: 'hand_branch' and 'obj_branch' are both false; "
                              "enable at least one")
        check_choice("sdf_loss", self.sdf_loss, SDF_LOSSES)
        for branch, kine in (("hand", HAND_KINE_LATENTS), ("obj", OBJ_KINE_LATENTS)):
            style = getattr(self, f"{branch}_encode_style")
            latent = getattr(self, f"{branch}_point_latent")
            check_choice(f"{branch}_encode_style", style, ENCODE_STYLES)
            if style == "kine" and not self.pose_estimate:
                raise ConfigError(f"{type(self).__name__} (gf-like models) has no pose "
                                  f"estimate: model_args '{branch}_encode_style' must be 'raw' "
                                  f"(allowed values: ['raw'])")
            allowed = (3,) if style == "raw" else kine
            if latent not in allowed:
                raise ConfigError(f"model_args '{branch}_point_latent' = {latent!r} does not fit "
                                  f"'{branch}_encode_style: {style}'; allowed values: "
                                  f"{list(allowed)}")
        dec = self.decoder
        in_dim = self.sdf_latent + max(self.hand_point_latent, self.obj_point_latent)
        for layer in dec.latent_in:
            if not 0 < layer < len(dec.dims) or dec.dims[layer - 1] <= in_dim:
                raise ConfigError(f"model_args 'decoder.latent_in' = {list(dec.latent_in)}: "
                                  f"layer {layer} must be a hidden layer (1..{len(dec.dims) - 1})"
                                  f" whose input width exceeds the decoder input ({in_dim}); "
                                  f"widen 'decoder.dims' or lower 'sdf_latent'")


@dataclass
class AlignSDFArgs(GFArgs):
    """AlignSDF (reference ``hsdf_osdf_1net`` with ``mano_branch`` and ``obj_trans``).

    Attributes (besides :class:`GFArgs`):
        mano_ncomps: PCA components of the finger pose (15); 45 regresses the full axis-angle.
        mano_neurons: widths of the MANO MLP (512, 512, 512).
        neck_channels, neck_stages, heatmap_depth, depth_dim: object-centre heatmap branch, see
            :class:`PoseArgs` (reference: 256, 3, 64, 0.28).
        obj_rot: add an object rotation head (corner loss); ``rot_style`` ``6d`` or ``axisang``.
        mano_joints_weight, mano_shape_weight, mano_pose_weight: MANO losses (joint MSE in
            camera metres, shape and pose regularisers).
        obj_center_weight: MSE on the object centre (reference ``volume_weight``).
        corner_weight: MSE on the object corners (with ``obj_rot``; 0 in the reference's AlignSDF
            experiment file, 0.2 in its ``config.py``).
    """

    pose_estimate: ClassVar[bool] = True

    hand_encode_style: str = "kine"
    obj_encode_style: str = "kine"
    hand_point_latent: int = 6
    obj_point_latent: int = 6
    mano_ncomps: int = 15
    mano_neurons: tuple[int, ...] = (512, 512, 512)
    neck_channels: int = 256
    neck_stages: int = 3
    heatmap_depth: int = 64
    depth_dim: float = 0.28
    obj_rot: bool = False
    rot_style: str = "6d"
    mano_joints_weight: float = 0.5
    mano_shape_weight: float = 5e-7
    mano_pose_weight: float = 5e-5
    obj_center_weight: float = 0.5
    corner_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_choice("rot_style", self.rot_style, ROT_STYLES)
        if not 1 <= self.mano_ncomps <= 45:
            raise ConfigError(f"model_args 'mano_ncomps' = {self.mano_ncomps!r}; allowed "
                              f"values: 1..45")


@dataclass
class GSDFArgs(GFArgs):
    """gSDF (reference ``hsdf_osdf_2net_pa``): frozen pose network + a second backbone.

    Attributes (besides :class:`GFArgs`):
        pose: :class:`PoseArgs` of the frozen pose network. When the model is built from a pose
            checkpoint, the checkpoint's ``model_args`` are used (and must agree with any value
            given here).
        pixel_channels: channels of the pixel-aligned feature map (UNet with one stage, 256).
        pixel_neck_stages: x2 upsampling stages of that UNet (the reference: 1, a map at 1/16
            of the input: 16x16 for 256 px inputs, but only 4x4 for 64 px ones).
        pixel_neck_skips: add the backbone's stride-16/8/4/2 maps to those stages (needs
            ``pixel_neck_stages`` <= 4); the reference has none.
        with_add_feats: append depth (1) and view direction (3) to the sampled features.
        neck_channels, neck_stages, heatmap_depth, depth_dim: object-centre heatmap branch.
        obj_rot, rot_style, obj_center_weight, corner_weight: see :class:`AlignSDFArgs`.
        pose_source: where the hand joints of the kinematic embeddings come from: ``network``
            (the frozen pose network, the method) or ``ground_truth`` (the annotated joints, in
            training and at test: an oracle that measures what a perfect pose network would
            give; its numbers are not a result of the method).
    """

    pose_estimate: ClassVar[bool] = True

    hand_encode_style: str = "kine"
    obj_encode_style: str = "kine"
    hand_point_latent: int = 51
    obj_point_latent: int = 72
    pose: PoseArgs = field(default_factory=PoseArgs)
    pixel_channels: int = 256
    pixel_neck_stages: int = 1
    pixel_neck_skips: bool = False
    with_add_feats: bool = True
    neck_channels: int = 256
    neck_stages: int = 3
    heatmap_depth: int = 64
    depth_dim: float = 0.28
    obj_rot: bool = False
    rot_style: str = "6d"
    obj_center_weight: float = 0.5
    corner_weight: float = 0.5
    pose_source: str = "network"

    def validate(self) -> None:
        super().validate()
        stages, skips = self.pixel_neck_stages, self.pixel_neck_skips
        if not (1 <= stages <= 4 if skips else stages >= 1):
            raise ConfigError(f"model_args 'pixel_neck_stages' = {stages}; allowed values: 1 to "
                              f"4 with 'pixel_neck_skips: true' (one backbone map per stage), "
                              f"else >= 1")
        check_choice("rot_style", self.rot_style, ROT_STYLES)
        check_choice("pose_source", self.pose_source, POSE_SOURCES)


@dataclass
class TransformerArgs:
    """Spatial-temporal transformer of gSDF video (reference ``VideoTransformer``).

    Attributes:
        dim: token width (256).
        depth: layers of the spatial and of the temporal transformer (8 each).
        heads: attention heads (4).
        dim_head: width per head (256; inner width ``heads * dim_head``).
        mlp_ratio: hidden width of the feed-forward block / ``dim`` (4).
        dropout: dropout in attention output and feed-forward (0).
        temporal_embedding: learn one positional embedding per frame (else one for all).
    """

    dim: int = 256
    depth: int = 8
    heads: int = 4
    dim_head: int = 256
    mlp_ratio: int = 4
    dropout: float = 0.0
    temporal_embedding: bool = False


@dataclass
class GSDFVideoArgs(GSDFArgs):
    """gSDF video (reference ``hsdf_osdf_2net_video_pa``).

    Attributes (besides :class:`GSDFArgs`):
        num_frames: frames per clip (3 or 5); the middle one is reconstructed.
        transformer: :class:`TransformerArgs`.
    """

    num_frames: int = 3
    transformer: TransformerArgs = field(default_factory=TransformerArgs)

    def validate(self) -> None:
        super().validate()
        if self.num_frames < 1 or self.num_frames % 2 == 0:
            raise ConfigError(f"model_args 'num_frames' = {self.num_frames!r}; allowed values: "
                              f"odd numbers (3 or 5 in the paper)")
        if self.image_size % 16:
            raise ConfigError(f"model_args 'image_size' = {self.image_size} must be a multiple "
                              f"of 16 for gsdf_video")
