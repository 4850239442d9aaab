"""The hand asset: everything the LBS layer needs, in the MANO format, plus anatomy metadata.

Conventions (see docs/architecture.md):

* units are metres;
* the 16 kinematic joints are in MANO order (:data:`MANO_JOINT_NAMES`): wrist, index1-3,
  middle1-3, pinky1-3, ring1-3, thumb1-3; the 15 finger joints (pose entries 3..47) are the same
  order without the wrist;
* the 21 output joints are in gSDF/manopth order (:data:`JOINT_NAMES_21`): wrist, thumb1-4,
  index1-4, middle1-4, ring1-4, pinky1-4, where the ``*4`` joints are fingertip vertices;
* part labels: 0 palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 pinky.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
"""The 16 kinematic joints, MANO order (the order of the 48-d pose and of the transforms)."""

MANO_FINGER_ORDER: tuple[str, ...] = ("index", "middle", "pinky", "ring", "thumb")
"""Finger order of the kinematic tree (pose joints 1-3 are index, 4-6 middle, ...)."""

TIP_FINGER_ORDER: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
"""Finger order of :attr:`HandAsset.tip_vertex_ids` and of the 21-joint layout."""

JOINT_NAMES_21: tuple[str, ...] = (
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb4",
    "index1", "index2", "index3", "index4",
    "middle1", "middle2", "middle3", "middle4",
    "ring1", "ring2", "ring3", "ring4",
    "pinky1", "pinky2", "pinky3", "pinky4",
)
"""The 21 output joints, gSDF/manopth order (``*4`` are fingertip vertices)."""

PART_NAMES: tuple[str, ...] = ("palm", "thumb", "index", "middle", "ring", "pinky")
"""Hand part labels: index in this tuple = label value."""

MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)
"""Parent of each of the 16 MANO joints (-1 for the wrist)."""

# index into cat([16 kinematic joints, 5 tips (thumb, index, middle, ring, pinky)]) -> 21 joints
JOINTS21_FROM_16_AND_TIPS = np.array(
    [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20], dtype=np.int64
)

# part label of each of the 16 kinematic joints (used to derive vertex parts from skinning)
JOINT_PART = np.array([0, 2, 2, 2, 3, 3, 3, 5, 5, 5, 4, 4, 4, 1, 1, 1], dtype=np.uint8)

# for each 21-joint index, the 21-joint index of its parent (wrist: -1)
PARENTS_21 = np.array(
    [-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19], dtype=np.int64
)

NUM_BETAS = 10


@dataclass
class HandAsset:
    """A hand model in the MANO format (numpy arrays, metres).

    Attributes:
        v_template: (V, 3) rest-pose template vertices.
        faces: (F, 3) int64 triangles as in the source asset (MANO's is open at the wrist).
        faces_closed: (F', 3) int64 watertight triangles (wrist hole closed) for SDF sampling.
        shapedirs: (V, 3, 10) linear shape displacement basis.
        posedirs: (V, 3, 135) pose-corrective basis on the flattened (R_j - I) of the 15 finger
            joints (zeros for the procedural asset).
        J_regressor: (16, V) dense float; rest joints = ``J_regressor @ (v_template + shapedirs @
            beta)``.
        weights: (V, 16) skinning weights, rows sum to 1.
        parents: (16,) int64 parent of each kinematic joint (MANO order), -1 for the wrist.
        hands_components: (45, 45) PCA basis of the finger pose (rows are components).
        hands_mean: (45,) mean finger pose (axis-angle).
        tip_vertex_ids: (5,) int64 fingertip vertices, order thumb, index, middle, ring, pinky.
        vertex_parts: (V,) uint8 part label (0 palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 pinky).
        side: "right" or "left".
        flexion_axes: (15, 3) unit axis per finger joint (MANO order, rest frame): a positive
            rotation about it bends the finger towards the palm.
        abduction_axes: (15, 3) unit axis per finger joint: a positive rotation about it spreads
            the finger away from the middle finger (the middle finger moves towards the thumb).
        flexion_limits: (15, 2) radians, (min, max) flexion per finger joint.
        abduction_limits: (15, 2) radians, (min, max) abduction per finger joint (non-zero range
            only at the first joint of each finger).
        source: free-text provenance ("procedural(seed=0)", path of the MANO pickle, ...).
    """

    v_template: np.ndarray
    faces: np.ndarray
    faces_closed: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    tip_vertex_ids: np.ndarray
    vertex_parts: np.ndarray
    side: str
    flexion_axes: np.ndarray
    abduction_axes: np.ndarray
    flexion_limits: np.ndarray
    abduction_limits: np.ndarray
    source: str = field(default="")

    def __post_init__(self) -> None:
        self.v_template = np.asarray(self.v_template, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        self.faces_closed = np.asarray(self.faces_closed, dtype=np.int64)
        self.tip_vertex_ids = np.asarray(self.tip_vertex_ids, dtype=np.int64)
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.vertex_parts = np.asarray(self.vertex_parts, dtype=np.uint8)
        for name in ("shapedirs", "posedirs", "J_regressor", "weights", "hands_components",
                     "hands_mean", "flexion_axes", "abduction_axes", "flexion_limits",
                     "abduction_limits"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.validate()

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def validate(self) -> None:
        """Check shapes, index ranges and finiteness; raise ValueError naming the bad field."""
        nv = self.v_template.shape[0] if self.v_template.ndim == 2 else -1
        expected = {
            "v_template": (nv, 3),
            "shapedirs": (nv, 3, NUM_BETAS),
            "posedirs": (nv, 3, 135),
            "J_regressor": (16, nv),
            "weights": (nv, 16),
            "parents": (16,),
            "hands_components": (45, 45),
            "hands_mean": (45,),
            "tip_vertex_ids": (5,),
            "vertex_parts": (nv,),
            "flexion_axes": (15, 3),
            "abduction_axes": (15, 3),
            "flexion_limits": (15, 2),
            "abduction_limits": (15, 2),
        }
        if nv <= 0 or self.v_template.shape[1:] != (3,):
            raise ValueError(f"HandAsset.v_template must be (V, 3), got {self.v_template.shape}")
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise ValueError(f"HandAsset.{name} has shape {arr.shape}, expected {shape}")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(f"HandAsset.{name} contains NaN or inf")
        for name in ("faces", "faces_closed"):
            f = getattr(self, name)
            if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
                raise ValueError(f"HandAsset.{name} must be (F, 3), got {f.shape}")
            if f.min() < 0 or f.max() >= nv:
                raise ValueError(f"HandAsset.{name} indexes vertices outside [0, {nv})")
        if self.tip_vertex_ids.min() < 0 or self.tip_vertex_ids.max() >= nv:
            raise ValueError(f"HandAsset.tip_vertex_ids outside [0, {nv})")
        if self.parents[0] != -1 or np.any(self.parents[1:] < 0) or np.any(
            self.parents[1:] >= np.arange(1, 16)
        ):
            raise ValueError(
                f"HandAsset.parents must start with -1 and list each joint after its parent, "
                f"got {self.parents.tolist()}"
            )
        if self.side not in ("right", "left"):
            raise ValueError(f"HandAsset.side must be 'right' or 'left', got {self.side!r}")
        if self.vertex_parts.max() > 5:
            raise ValueError("HandAsset.vertex_parts must be in 0..5")

    def copy(self) -> HandAsset:
        """Deep copy (arrays copied)."""
        kwargs = {
            f.name: (np.array(getattr(self, f.name), copy=True)
                     if isinstance(getattr(self, f.name), np.ndarray) else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }
        return HandAsset(**kwargs)

    def rest_joints(self, shape: np.ndarray | None = None) -> np.ndarray:
        """(16, 3) rest joints (MANO order) for shape ``(10,)`` (zeros if None), metres."""
        v = self.v_template
        if shape is not None:
            v = v + self.shapedirs @ np.asarray(shape, dtype=np.float64)
        return self.J_regressor @ v


def mirror_pose_axis_angle(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle rotations through the x = 0 plane: (..., 3k) -> (..., 3k).

    A rotation vector is a pseudovector: under x -> -x it maps to (a_x, -a_y, -a_z).
    """
    pose = np.asarray(pose, dtype=np.float64)
    signs = np.tile(np.array([1.0, -1.0, -1.0]), pose.shape[-1] // 3)
    return pose * signs


def mirror_asset(asset: HandAsset) -> HandAsset:
    """Mirror a hand through the x = 0 plane (right <-> left).

    Vertices and displacement bases get x -> -x, face winding is flipped (so normals still point
    outwards), rotation-valued data (PCA pose components, mean pose, anatomical axes) are mirrored
    as pseudovectors, and the pose-corrective basis is re-expressed for mirrored rotations
    (``R' = M R M`` with ``M = diag(-1, 1, 1)``).
    """
    m = np.array([-1.0, 1.0, 1.0])
    # sign of element (i, j) of R' = M R M is m_i m_j
    elem_sign = np.tile(np.outer(m, m).reshape(9), 15)  # (135,)
    posedirs = asset.posedirs * m[None, :, None] * elem_sign[None, None, :]
    pseudo = np.array([1.0, -1.0, -1.0])
    return HandAsset(
        v_template=asset.v_template * m,
        faces=asset.faces[:, ::-1].copy(),
        faces_closed=asset.faces_closed[:, ::-1].copy(),
        shapedirs=asset.shapedirs * m[None, :, None],
        posedirs=posedirs,
        J_regressor=asset.J_regressor.copy(),
        weights=asset.weights.copy(),
        parents=asset.parents.copy(),
        hands_components=mirror_pose_axis_angle(asset.hands_components),
        hands_mean=mirror_pose_axis_angle(asset.hands_mean),
        tip_vertex_ids=asset.tip_vertex_ids.copy(),
        vertex_parts=asset.vertex_parts.copy(),
        side="left" if asset.side == "right" else "right",
        flexion_axes=asset.flexion_axes * pseudo,
        abduction_axes=asset.abduction_axes * pseudo,
        flexion_limits=asset.flexion_limits.copy(),
        abduction_limits=asset.abduction_limits.copy(),
        source=f"mirror({asset.source})",
    )
