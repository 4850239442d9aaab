"""gsdf.hand: the hand model layer (see docs/architecture.md and DESIGN.md section 5).

* :class:`HandAsset` -- a hand in the MANO format; :func:`procedural_hand` builds one without any
  licensed data, :func:`load_mano` reads the official pickles without chumpy;
* :class:`HandLayer` -- batched, differentiable linear blend skinning returning
  :class:`HandOutput` ``(vertices (B, V, 3), joints (B, 21, 3), transforms (B, 16, 4, 4))``;
* :func:`articulate` / :func:`random_pose` -- poses from anatomical controls;
* :func:`inverse_kinematics` -- gSDF's IK from 21 joints to the 48-d pose.

Units are metres; joint orders and the transform convention are documented in
:mod:`gsdf.hand.asset` and :mod:`gsdf.hand.layer`.
"""

from gsdf.hand.asset import (
    JOINT_NAMES_21,
    JOINT_PART,
    JOINTS21_FROM_16_AND_TIPS,
    MANO_FINGER_ORDER,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    PARENTS_21,
    PART_NAMES,
    TIP_FINGER_ORDER,
    HandAsset,
    mirror_asset,
    mirror_pose_axis_angle,
)
from gsdf.hand.ik import inverse_kinematics
from gsdf.hand.kinematics import (
    FIRST_JOINTS,
    anatomical_axes,
    articulate,
    bone_radii,
    default_joint_limits,
    finger_collision_depth,
    random_controls,
    random_pose,
    random_rotations,
    skeleton_joints,
)
from gsdf.hand.layer import HandLayer, HandOutput, chain_transforms
from gsdf.hand.mano import close_holes, load_mano, pca_to_axis_angle, read_mano_pickle
from gsdf.hand.mesh_checks import self_intersections
from gsdf.hand.procedural import BONE_LENGTHS, procedural_hand
from gsdf.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "BONE_LENGTHS",
    "FIRST_JOINTS",
    "JOINTS21_FROM_16_AND_TIPS",
    "JOINT_NAMES_21",
    "JOINT_PART",
    "MANO_FINGER_ORDER",
    "MANO_JOINT_NAMES",
    "MANO_PARENTS",
    "PARENTS_21",
    "PART_NAMES",
    "TIP_FINGER_ORDER",
    "HandAsset",
    "HandLayer",
    "HandOutput",
    "anatomical_axes",
    "articulate",
    "axis_angle_to_matrix",
    "bone_radii",
    "chain_transforms",
    "close_holes",
    "default_joint_limits",
    "finger_collision_depth",
    "inverse_kinematics",
    "load_mano",
    "matrix_to_axis_angle",
    "pca_to_axis_angle",
    "mirror_asset",
    "mirror_pose_axis_angle",
    "procedural_hand",
    "random_controls",
    "random_pose",
    "random_rotations",
    "read_mano_pickle",
    "self_intersections",
    "skeleton_joints",
]
