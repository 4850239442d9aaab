"""The hand's root (wrist) position in the camera from predicted 2D joints, without ground truth.

Every published hand-object SDF method reconstructs in a frame centred on the annotated wrist
(zerchen/gSDF issue #11). Our pose network (:mod:`gsdf.models.pose`) predicts, per joint, a pixel
position ``(u_j, v_j)`` and a *metric* depth offset from the wrist ``d_j`` (metres: its 3D
heatmap spans ``wrist depth +- depth_dim`` and it is trained on camera-space metres); the wrist
depth ``Z`` it needs to turn those into 3D comes from the batch. Without ``Z`` the joints are
known up to one number, and that number fixes both the hand's depth and its metric size
(a hand twice as far away looks half as big). Two steps recover it:

1. **Depth from the hand's proportions, size from the hand model** (:func:`solve_root_depth`).
   For a trial wrist depth ``Z`` the joints are ``X_j(Z) = K^-1 (u_j, v_j, 1) (Z + d_j - d_0)``
   (joint 0 at depth ``Z``). Only at the true depth do the lateral extents (which scale with
   ``Z``) and the metric depth offsets (which do not) agree, i.e. does the skeleton have a
   hand's proportions: ``Z`` minimises the squared difference between the bone-length
   proportions of ``X(Z)`` (each bone over their sum) and those of the hand model
   (:func:`model_bone_lengths`, the IK layer's asset at its mean shape). The skeleton ``X(Z)``
   is then scaled about the camera centre (projections unchanged) to the hand model's total
   bone length: a hand 5% larger than the model comes out 5% too near (the monocular scale
   ambiguity). Fitting the *size* at fixed metric offsets instead (``L(X(Z)) = L_model``) is
   worse: on 449 synthetic images with oracle joints the median root error is 2.3 cm against
   1.7 cm, 3.6 against 2.3 cm with 1 cm of noise on the depth offsets, 12.5 against 2.7 cm
   with 2 cm (and 14 samples without a solution, noisy offsets alone making the skeleton
   larger than the model) (``scripts/root_error.py``, docs/predict.md).
2. **Translation by linear least squares** (:func:`solve_root_translation`): given wrist-relative
   metric joints ``x_j`` and their pixels, the root ``t`` satisfies, per joint, the two equations
   ``u_j (z_j + t_z) = f_x (x_j + t_x) + c_x (z_j + t_z)`` and the same in ``v``: linear in
   ``t``, solved over all joints at once.

:func:`root_from_2p5d` chains both. Units: metres, pixels; OpenCV camera (x right, y down, z
forward). Joint order: gSDF's 21 (wrist first, :data:`gsdf.hand.asset.PARENTS_21`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize_scalar

from gsdf.hand.asset import PARENTS_21

# Wrist depths searched by solve_root_depth, metres (a hand 5 cm to 20 m from the camera).
DEPTH_RANGE = (0.05, 20.0)


class RootSolveError(ValueError):
    """The root cannot be solved (degenerate or inconsistent 2D joints)."""


@dataclasses.dataclass(frozen=True)
class RootSolution:
    """Result of :func:`root_from_2p5d`.

    Attributes:
        root: (3,) wrist position, camera metres.
        joints: (J, 3) joints in camera space, metres (``joints[0] == root`` up to rounding).
        depth: the wrist depth at which the skeleton has the model's proportions, metres.
        scale: the factor that brought that skeleton to the model's size (the observed hand is
            ``1 / scale`` times the model; far from 1: implausible joints).
        hand_size: total bone length of ``joints``, metres (equals the model's size).
        reprojection_px: RMS distance between the joints' projections and the 2D input, pixels.
    """

    root: np.ndarray
    joints: np.ndarray
    depth: float
    scale: float
    hand_size: float
    reprojection_px: float


def bone_lengths(joints: np.ndarray, parents: np.ndarray = PARENTS_21) -> np.ndarray:
    """Lengths of the bones (joint -> parent). Args: joints (..., J, 3). Returns (..., J-1)."""
    joints = np.asarray(joints, dtype=np.float64)
    child = np.flatnonzero(np.asarray(parents) >= 0)
    return np.linalg.norm(joints[..., child, :] - joints[..., parents[child], :], axis=-1)


def model_bone_lengths(layer) -> np.ndarray:
    """(20,) bone lengths, metres, of a :class:`gsdf.hand.HandLayer` at zero pose and mean
    shape (bone lengths do not depend on the pose)."""
    import torch

    pose = torch.zeros(1, 48, dtype=layer.v_template.dtype, device=layer.v_template.device)
    if getattr(layer, "use_pca", False):
        pose = pose[:, : 3 + layer.ncomps]
    with torch.no_grad():
        joints = layer(pose).joints[0].double().cpu().numpy()
    return bone_lengths(joints)


def model_hand_size(layer) -> float:
    """Total bone length, metres, of the hand model (:func:`model_bone_lengths`)."""
    return float(model_bone_lengths(layer).sum())


def project(points: np.ndarray, cam_intr: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of camera points (..., 3) (z > 0) through ``cam_intr`` (3, 3)."""
    uvw = np.asarray(points, dtype=np.float64) @ np.asarray(cam_intr, dtype=np.float64).T
    return uvw[..., :2] / uvw[..., 2:3]


def _rays(joints_2d: np.ndarray, cam_intr: np.ndarray) -> np.ndarray:
    """(J, 3) rays ``K^-1 (u, v, 1)`` (z = 1) of pixels (J, 2)."""
    uv1 = np.concatenate([joints_2d, np.ones((len(joints_2d), 1))], axis=1)
    return uv1 @ np.linalg.inv(np.asarray(cam_intr, dtype=np.float64)).T


def lift(joints_2d: np.ndarray, depth_rel: np.ndarray, cam_intr: np.ndarray,
         depth: float) -> np.ndarray:
    """Joints (J, 3) camera metres with the wrist (joint 0) at depth ``depth``.

    Args:
        joints_2d: (J, 2) pixels; depth_rel: (J,) metric depth offsets (any common origin: the
            wrist's offset is subtracted); cam_intr: (3, 3); depth: wrist depth, metres.
    """
    depth_rel = np.asarray(depth_rel, dtype=np.float64)
    z = depth + depth_rel - depth_rel[0]
    return _rays(np.asarray(joints_2d, dtype=np.float64), cam_intr) * z[:, None]


def solve_root_depth(joints_2d: np.ndarray, depth_rel: np.ndarray, cam_intr: np.ndarray,
                     model_bones: np.ndarray,
                     depth_range: tuple[float, float] = DEPTH_RANGE) -> float:
    """The wrist depth ``Z`` at which the lifted skeleton has the hand model's proportions.

    Args:
        joints_2d: (J, 2) pixels; depth_rel: (J,) metric depth offsets; cam_intr: (3, 3).
        model_bones: (J-1,) bone lengths of the hand model (:func:`model_bone_lengths`).
        depth_range: wrist depths searched, metres.

    Raises:
        RootSolveError: non-finite input, or degenerate joints (all on one pixel and depth).
    """
    if not np.isfinite(joints_2d).all() or not np.isfinite(depth_rel).all():
        raise RootSolveError("the 2D joints or depth offsets are not finite")
    ratios = np.asarray(model_bones, dtype=np.float64)
    ratios = ratios / ratios.sum()

    def cost(z: float) -> float:
        bones = bone_lengths(lift(joints_2d, depth_rel, cam_intr, z))
        total = bones.sum()
        return float(np.sum((bones / total - ratios) ** 2)) if total > 1e-9 else np.inf

    grid = np.geomspace(*depth_range, 96)
    values = np.array([cost(z) for z in grid])
    if not np.isfinite(values).any():
        raise RootSolveError("the 2D joints and depth offsets are degenerate (all joints on "
                             "one point)")
    k = int(np.argmin(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = minimize_scalar(cost, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    return float(res.x) if res.fun <= values[k] else float(grid[k])


def solve_root_translation(joints_2d: np.ndarray, joints_rel: np.ndarray,
                           cam_intr: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Root translation ``t`` (3,) such that ``joints_rel + t`` projects onto ``joints_2d``.

    Linear least squares over the two equations per joint
    ``f_x t_x + (c_x - u) t_z = (u - c_x) z - f_x x`` and
    ``f_y t_y + (c_y - v) t_z = (v - c_y) z - f_y y`` (from ``u (z + t_z) = f_x (x + t_x) +
    c_x (z + t_z)``). With noise-free pixels the solution is exact; pixel noise ``sigma`` enters
    each equation as ``sigma * (z_j + t_z)`` to first order (see the tests for the bound).

    Args:
        joints_2d: (J, 2) pixels.
        joints_rel: (J, 3) joints relative to the root, camera axes, metres.
        cam_intr: (3, 3) with zero skew.
        weights: (J,) optional per-joint weights (e.g. heatmap confidences).

    Returns:
        (3,) camera metres.
    """
    uv = np.asarray(joints_2d, dtype=np.float64)
    rel = np.asarray(joints_rel, dtype=np.float64)
    k = np.asarray(cam_intr, dtype=np.float64)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    n = len(uv)
    a = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    a[0::2, 0] = fx
    a[0::2, 2] = cx - uv[:, 0]
    b[0::2] = (uv[:, 0] - cx) * rel[:, 2] - fx * rel[:, 0]
    a[1::2, 1] = fy
    a[1::2, 2] = cy - uv[:, 1]
    b[1::2] = (uv[:, 1] - cy) * rel[:, 2] - fy * rel[:, 1]
    if weights is not None:
        w = np.repeat(np.sqrt(np.asarray(weights, dtype=np.float64)), 2)
        a, b = a * w[:, None], b * w
    t, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    if rank < 3:
        raise RootSolveError("the 2D joints do not determine the root (all on one pixel?)")
    return t


def root_from_2p5d(joints_2d: np.ndarray, depth_rel: np.ndarray, cam_intr: np.ndarray,
                   model_bones: np.ndarray) -> RootSolution:
    """Root and camera-space joints from 2D joints and metric wrist-relative depths.

    Args:
        joints_2d: (J, 2) pixels; depth_rel: (J,) metric depth offsets; cam_intr: (3, 3).
        model_bones: (J-1,) bone lengths of the hand model, metres (:func:`model_bone_lengths`).

    Returns:
        :class:`RootSolution`.
    """
    uv = np.asarray(joints_2d, dtype=np.float64)
    size = float(np.sum(model_bones))
    depth = solve_root_depth(uv, depth_rel, cam_intr, model_bones)
    lifted = lift(uv, depth_rel, cam_intr, depth)
    scale = size / float(bone_lengths(lifted).sum())  # the model's size, projections kept
    rel = (lifted - lifted[0]) * scale
    root = solve_root_translation(uv, rel, cam_intr)
    joints = rel + root
    err = np.sqrt(np.mean(np.sum((project(joints, cam_intr) - uv) ** 2, axis=-1)))
    return RootSolution(root=root, joints=joints, depth=depth, scale=scale,
                        hand_size=float(bone_lengths(joints).sum()), reprojection_px=float(err))
