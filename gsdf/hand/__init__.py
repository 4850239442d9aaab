"""gsdf.hand: the hand model layer (see docs/architecture.md and DESIGN.md section 5).

* :class:`HandAsset` -- a hand in the MANO format; :func:`procedural_hand` builds one without any
  licensed data, :func:`load_mano` reads the official pickles without chumpy;
* :class:`HandLayer` -- batched, differentiable linear blend skinning returning
  :class:`HandOutput` ``(vertices, joints, transforms)``;
* :func:`articulate` / :func:`random_pose` -- poses from anatomical controls;
* :func:`inverse_kinematics` -- gSDF's IK from 21 joints to the 48-d pose.
"""

from gsdf.hand.asset import (
    JOINT_NAMES_21,
    MANO_FINGER_ORDER,
    MANO_JOINT_NAMES,
    PARENTS_21,
    PART_NAMES,
    TIP_FINGER_ORDER,
    HandAsset,
    mirror_asset,
)
from gsdf.hand.ik import inverse_kinematics
from gsdf.hand.kinematics import (
    anatomical_axes,
    articulate,
    default_joint_limits,
    random_controls,
    random_pose,
)
from gsdf.hand.layer import HandLayer, HandOutput
from gsdf.hand.mano import load_mano
from gsdf.hand.procedural import procedural_hand
from gsdf.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "JOINT_NAMES_21",
    "MANO_FINGER_ORDER",
    "MANO_JOINT_NAMES",
    "PARENTS_21",
    "PART_NAMES",
    "TIP_FINGER_ORDER",
    "HandAsset",
    "HandLayer",
    "HandOutput",
    "anatomical_axes",
    "articulate",
    "axis_angle_to_matrix",
    "default_joint_limits",
    "inverse_kinematics",
    "load_mano",
    "matrix_to_axis_angle",
    "mirror_asset",
    "procedural_hand",
    "random_controls",
    "random_pose",
]
