"""Anatomical controls for posing a hand: per-joint bending axes, joint limits, :func:`articulate`
(intuitive controls -> 48-d pose) and :func:`random_pose` (natural in-limit poses).

Control layout (MANO kinematic order, see :data:`~gsdf.hand.asset.MANO_FINGER_ORDER`):

* ``flexion`` (B, 15): the 15 finger joints in the pose order, i.e. index1-3, middle1-3,
  pinky1-3, ring1-3, thumb1-3 (``flexion.view(B, 5, 3)[:, f]`` is finger ``f``). Positive bends
  the finger towards the palm.
* ``abduction`` (B, 5): one per finger, same finger order (index, middle, pinky, ring, thumb),
  applied at the finger's first joint. Positive spreads the finger away from the middle finger
  (the middle finger itself moves towards the thumb; the thumb moves away from the index).

The returned pose is the absolute axis-angle of every joint, i.e. it is meant for a
:class:`~gsdf.hand.HandLayer` with ``flat_hand_mean=True`` (the default).
"""

from __future__ import annotations

import numpy as np
import torch

from gsdf.hand.asset import MANO_FINGER_ORDER, TIP_FINGER_ORDER, HandAsset
from gsdf.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

FIRST_JOINTS = np.array([0, 3, 6, 9, 12])
"""Index (0..14) of each finger's first joint among the 15 finger joints (MANO order)."""

# (min, max) radians per finger, joints 1-3; abduction at joint 1
_FLEXION_LIMITS = {
    "index": ((-0.30, 1.60), (0.0, 1.90), (0.0, 1.40)),
    "middle": ((-0.30, 1.60), (0.0, 1.90), (0.0, 1.40)),
    "ring": ((-0.30, 1.60), (0.0, 1.90), (0.0, 1.40)),
    "pinky": ((-0.30, 1.60), (0.0, 1.90), (0.0, 1.40)),
    "thumb": ((-0.40, 0.90), (-0.20, 1.00), (-0.30, 1.40)),
}
_ABDUCTION_LIMITS = {
    "index": (-0.25, 0.35),
    "middle": (-0.25, 0.25),
    "ring": (-0.25, 0.30),
    "pinky": (-0.25, 0.45),
    "thumb": (-0.40, 0.50),
}


def default_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """Human-like joint limits.

    Returns:
        flexion limits (15, 2) and abduction limits (15, 2), radians, (min, max), MANO order;
        abduction ranges are zero except at each finger's first joint.
    """
    flex = np.zeros((15, 2))
    abd = np.zeros((15, 2))
    for f, name in enumerate(MANO_FINGER_ORDER):
        flex[3 * f: 3 * f + 3] = _FLEXION_LIMITS[name]
        abd[3 * f] = _ABDUCTION_LIMITS[name]
    return flex, abd


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def anatomical_axes(joints: np.ndarray, tips: np.ndarray, side: str) -> dict[str, np.ndarray]:
    """Bending axes of the 15 finger joints from a rest skeleton.

    The palm normal ``n`` (palm side) is ``(index1 - wrist) x (pinky1 - wrist)`` for a right hand
    (negated for a left one). For each joint with bone direction ``d`` (towards its child joint
    or tip), the pad normal is ``n`` made orthogonal to ``d`` (for the thumb, ``n`` tilted
    towards the palm centre, so that thumb flexion is opposition); the flexion axis is
    ``d x pad`` (a positive rotation moves ``d`` towards the pad side); the abduction axis is
    ``+-pad``, signed so that a positive rotation moves the finger away from the middle finger.

    Args:
        joints: (16, 3) rest joints, MANO order. tips: (5, 3) fingertips, thumb..pinky order.
        side: "right" or "left".

    Returns:
        ``{"flexion": (15, 3), "abduction": (15, 3)}`` unit axes, MANO finger-joint order.
    """
    joints = np.asarray(joints, dtype=np.float64)
    tips = np.asarray(tips, dtype=np.float64)
    if joints.shape != (16, 3) or tips.shape != (5, 3):
        raise ValueError(f"joints must be (16, 3) and tips (5, 3), got {joints.shape}, "
                         f"{tips.shape}")
    sign = {"right": 1.0, "left": -1.0}.get(side)
    if sign is None:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    first = {name: joints[1 + 3 * f] for f, name in enumerate(MANO_FINGER_ORDER)}
    wrist = joints[0]
    n_palm = sign * _unit(np.cross(first["index"] - wrist, first["pinky"] - wrist))
    centre = (wrist + first["index"] + first["middle"] + first["ring"] + first["pinky"]) / 5.0
    away = {
        "index": first["index"] - first["middle"],
        "middle": first["index"] - first["ring"],
        "ring": first["ring"] - first["middle"],
        "pinky": first["pinky"] - first["ring"],
        "thumb": joints[14] - first["index"],
    }
    flex = np.zeros((15, 3))
    abd = np.zeros((15, 3))
    for f, name in enumerate(MANO_FINGER_ORDER):
        chain = np.concatenate([joints[1 + 3 * f: 4 + 3 * f],
                                tips[TIP_FINGER_ORDER.index(name)][None]])
        for k in range(3):
            d = _unit(chain[k + 1] - chain[k])
            raw = n_palm
            if name == "thumb":
                raw = 0.8 * n_palm + 0.6 * _unit(centre - first["thumb"])
            pad = _unit(raw - (raw @ d) * d)
            axis = _unit(np.cross(d, pad))
            flex[3 * f + k] = axis
            # rotating d about u moves it along u x d; pad x d = -axis
            u = pad if np.cross(pad, d) @ away[name] > 0 else -pad
            abd[3 * f + k] = u
    return {"flexion": flex, "abduction": abd}


def _as_tensor(name: str, x: torch.Tensor | np.ndarray, width: int, batch: int | None,
               like: torch.Tensor | None) -> torch.Tensor:
    if isinstance(x, np.ndarray) or not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype)
    elif not torch.is_floating_point(x):
        x = x.float()
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name} must have shape (B, {width}), got {tuple(x.shape)}")
    if batch is not None and x.shape[0] != batch:
        raise ValueError(f"{name} has batch size {x.shape[0]}, expected {batch}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def articulate(asset: HandAsset, global_rot: torch.Tensor | np.ndarray,
               flexion: torch.Tensor | np.ndarray, abduction: torch.Tensor | np.ndarray,
               clamp: bool = True) -> torch.Tensor:
    """Build a 48-d axis-angle pose from anatomical controls (batched).

    Each finger joint's local rotation is ``R(abduction_axis, abd) @ R(flexion_axis, flex)``
    (abduct, then bend about the abducted axis), expressed as axis-angle.

    Args:
        asset: the hand (its ``flexion_axes``, ``abduction_axes`` and limits are used).
        global_rot: (B, 3) global axis-angle, radians.
        flexion: (B, 15) radians per finger joint, MANO order (index1-3, middle1-3, pinky1-3,
            ring1-3, thumb1-3); positive curls towards the palm.
        abduction: (B, 5) radians per finger (index, middle, pinky, ring, thumb) at joint 1.
        clamp: clamp flexion and abduction to the asset's limits.

    Returns:
        (B, 48) pose (global rotation, then 15 joints), dtype/device of ``global_rot`` if it is a
        tensor, float32 on CPU otherwise. For ``HandLayer(..., flat_hand_mean=True)``.
    """
    like = global_rot if isinstance(global_rot, torch.Tensor) else None
    global_rot = _as_tensor("global_rot", global_rot, 3, None, None)
    like = global_rot if like is None else like
    batch = global_rot.shape[0]
    flexion = _as_tensor("flexion", flexion, 15, batch, like)
    abduction = _as_tensor("abduction", abduction, 5, batch, like)
    opts = {"dtype": like.dtype, "device": like.device}
    if clamp:
        fl = torch.as_tensor(asset.flexion_limits, **opts)
        al = torch.as_tensor(asset.abduction_limits[FIRST_JOINTS], **opts)
        flexion = torch.maximum(torch.minimum(flexion, fl[:, 1]), fl[:, 0])
        abduction = torch.maximum(torch.minimum(abduction, al[:, 1]), al[:, 0])
    abd_full = flexion.new_zeros(batch, 15)
    abd_full[:, FIRST_JOINTS] = abduction
    flex_axes = torch.as_tensor(asset.flexion_axes, **opts)
    abd_axes = torch.as_tensor(asset.abduction_axes, **opts)
    r_flex = axis_angle_to_matrix(flex_axes * flexion[..., None])  # (B, 15, 3, 3)
    r_abd = axis_angle_to_matrix(abd_axes * abd_full[..., None])
    local = matrix_to_axis_angle(r_abd @ r_flex)  # (B, 15, 3)
    return torch.cat([global_rot, local.reshape(batch, 45)], dim=1)


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) axis-angle of rotations uniform on SO(3)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    s = np.linalg.norm(q[:, 1:], axis=1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[:, :1])
    return q[:, 1:] * np.where(s > 1e-9, angle / np.maximum(s, 1e-12), 2.0)


def random_controls(asset: HandAsset, rng: np.random.Generator | int, n: int,
                    max_curl: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample natural in-limit finger controls.

    Each sample has an overall grip closure; each finger's curl is that closure plus noise; the
    joints of a finger bend together (the distal joint follows the middle one, as tendons couple
    them); spread shrinks as fingers close. The summed flexion of each long finger is capped at
    ``max_curl`` radians (distal joint reduced first, then the middle one), so that fingertips do
    not sink into the palm (with the procedural hand, none does at the default 3.0).

    Returns:
        flexion (n, 15) and abduction (n, 5), radians, within the asset's limits.
    """
    rng = np.random.default_rng(rng)
    fl = asset.flexion_limits
    al = asset.abduction_limits[FIRST_JOINTS]
    closure = rng.beta(1.3, 1.7, size=n)
    flexion = np.zeros((n, 15))
    abduction = np.zeros((n, 5))
    for f, name in enumerate(MANO_FINGER_ORDER):
        j = 3 * f
        if name == "thumb":
            curl = np.clip(0.6 * closure + 0.4 * rng.uniform(size=n), 0, 1)
            flexion[:, j] = fl[j, 0] + (fl[j, 1] - fl[j, 0]) * np.clip(
                curl + rng.normal(0, 0.15, n), 0, 1)
            flexion[:, j + 1] = fl[j + 1, 1] * np.clip(curl + rng.normal(0, 0.15, n), 0, 1)
            flexion[:, j + 2] = fl[j + 2, 1] * np.clip(curl + rng.normal(0, 0.2, n), 0, 1)
            abduction[:, f] = rng.uniform(al[f, 0], al[f, 1], size=n)
            continue
        curl = np.clip(closure + rng.normal(0, 0.15, n), 0, 1)
        flexion[:, j] = fl[j, 1] * np.clip(curl + rng.normal(0, 0.1, n), -0.15, 1)
        pip = fl[j + 1, 1] * np.clip(curl + rng.normal(0, 0.1, n), 0, 1)
        flexion[:, j + 1] = pip
        flexion[:, j + 2] = fl[j + 2, 1] * (pip / fl[j + 1, 1]) * rng.uniform(0.6, 1.0, n)
        excess = np.maximum(flexion[:, j: j + 3].sum(1) - max_curl, 0.0)
        for k in (j + 2, j + 1):
            cut = np.minimum(excess, np.maximum(flexion[:, k], 0.0))
            flexion[:, k] -= cut
            excess -= cut
        spread = rng.normal(0.05, 0.1, n) * (1.0 - 0.7 * curl)
        abduction[:, f] = spread
    flexion = np.clip(flexion, fl[:, 0], fl[:, 1])
    abduction = np.clip(abduction, al[:, 0], al[:, 1])
    return flexion, abduction


# the 15 finger bones as (start, end) in the 21-joint order: thumb, index, middle, ring, pinky
_BONES_21 = np.array([[c + k, c + k + 1] for c in (1, 5, 9, 13, 17) for k in range(3)])
_FINGER_OF_BONE = np.repeat(np.arange(5), 3)
# kinematic (MANO-order) joint at the start of each bone
_KIN_OF_21 = {0: 0, 5: 1, 6: 2, 7: 3, 9: 4, 10: 5, 11: 6, 17: 7, 18: 8, 19: 9, 13: 10, 14: 11,
              15: 12, 1: 13, 2: 14, 3: 15}
_BONE_KIN = np.array([_KIN_OF_21[int(b)] for b in _BONES_21[:, 0]])
_PAIRS = np.array([(a, b) for a in range(15) for b in range(a + 1, 15)
                   if _FINGER_OF_BONE[a] != _FINGER_OF_BONE[b]])


def skeleton_joints(asset: HandAsset, pose: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cheap forward kinematics of the skeleton only (zero shape, no vertices).

    Fingertips ride rigidly on their distal joint (exact for the procedural hand, within pose
    blend shapes and tip skinning for MANO).

    Args:
        pose: (B, 48) axis-angle (for ``flat_hand_mean=True``).

    Returns:
        (B, 21, 3) joints, gSDF order, metres.
    """
    from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS
    from gsdf.hand.layer import chain_transforms

    pose = torch.as_tensor(np.asarray(pose, dtype=np.float64))
    batch = pose.shape[0]
    rest = torch.as_tensor(asset.J_regressor @ asset.v_template)  # (16, 3)
    rot = axis_angle_to_matrix(pose.reshape(batch, 16, 3))
    glob_r, glob_t = chain_transforms(rot, rest.expand(batch, 16, 3), asset.parents)
    tips_rest = torch.as_tensor(asset.v_template[asset.tip_vertex_ids])  # thumb..pinky
    distal = torch.tensor([15, 3, 6, 12, 9])  # distal kinematic joint of thumb..pinky
    tips = (glob_r[:, distal] @ (tips_rest - rest[distal])[None, ..., None])[..., 0]
    tips = tips + glob_t[:, distal]
    return torch.cat([glob_t, tips], 1)[:, JOINTS21_FROM_16_AND_TIPS].numpy()


def bone_radii(asset: HandAsset) -> np.ndarray:
    """(15,) typical radius of each finger bone (thumb1-3, index1-3, ..., pinky1-3), metres:
    the median distance to the bone axis of the vertices skinned mostly to it."""
    rest = np.concatenate([asset.J_regressor @ asset.v_template,
                           asset.v_template[asset.tip_vertex_ids]])
    from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS

    j21 = rest[JOINTS21_FROM_16_AND_TIPS]
    owner = asset.weights.argmax(1)
    radii = np.full(15, 0.008)
    for b, (s, e) in enumerate(_BONES_21):
        a, d = j21[s], j21[e] - j21[s]
        pts = asset.v_template[owner == _BONE_KIN[b]]
        if len(pts) == 0:
            continue
        t = (pts - a) @ d / (d @ d)
        inner = pts[(t > 0.2) & (t < 0.8)]
        t = t[(t > 0.2) & (t < 0.8)]
        if len(inner):
            radii[b] = float(np.median(np.linalg.norm(inner - a - t[:, None] * d, axis=1)))
    return radii


def _segment_distance(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
                      ) -> np.ndarray:
    """Distance between segments p1q1 and p2q2, all (..., 3) -> (...)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = (d1 * d1).sum(-1)
    e = (d2 * d2).sum(-1)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = a * e - b * b
    s = np.where(denom > 1e-15, np.clip((b * f - c * e) / np.maximum(denom, 1e-15), 0, 1), 0.0)
    t = (b * s + f) / np.maximum(e, 1e-15)
    s = np.where(t < 0, np.clip(-c / np.maximum(a, 1e-15), 0, 1), s)
    s = np.where(t > 1, np.clip((b - c) / np.maximum(a, 1e-15), 0, 1), s)
    t = np.clip(t, 0, 1)
    diff = p1 + s[..., None] * d1 - p2 - t[..., None] * d2
    return np.linalg.norm(diff, axis=-1)


def finger_collision_depth(asset: HandAsset, pose: torch.Tensor | np.ndarray,
                           radii: np.ndarray | None = None) -> np.ndarray:
    """Deepest overlap between finger bones of different fingers, modelled as capsules.

    Args:
        pose: (B, 48) axis-angle. radii: (15,) from :func:`bone_radii` (computed if None).

    Returns:
        (B,) metres: max over bone pairs of ``r_a + r_b - distance`` (negative = no contact).
    """
    radii = bone_radii(asset) if radii is None else radii
    j = skeleton_joints(asset, pose)  # (B, 21, 3)
    start, end = j[:, _BONES_21[:, 0]], j[:, _BONES_21[:, 1]]  # (B, 15, 3)
    a, b = _PAIRS[:, 0], _PAIRS[:, 1]
    dist = _segment_distance(start[:, a], end[:, a], start[:, b], end[:, b])  # (B, P)
    return (radii[a] + radii[b] - dist).max(1)


def random_pose(asset: HandAsset, rng: np.random.Generator | int, n: int,
                global_rot: bool = True, avoid_collisions: bool = True,
                tolerance: float = 0.002, max_rounds: int = 20) -> torch.Tensor:
    """Sample ``n`` natural, in-limit hand poses.

    Controls come from :func:`random_controls`; with ``avoid_collisions`` candidates whose
    fingers overlap each other (bone capsules, :func:`finger_collision_depth`) by more than
    ``tolerance`` metres are rejected and resampled (after ``max_rounds`` rounds the least
    colliding candidates fill the remainder).

    Args:
        asset: the hand. rng: numpy Generator (or seed). n: number of poses.
        global_rot: uniform random global rotation if True, identity otherwise.

    Returns:
        (n, 48) float32 axis-angle poses (for ``flat_hand_mean=True``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(rng)
    if not avoid_collisions:
        flexion, abduction = random_controls(asset, rng, n)
    else:
        radii = bone_radii(asset)
        flex_ok, abd_ok = [], []
        have = 0
        for round_ in range(max_rounds):
            f, a = random_controls(asset, rng, 2 * (n - have))
            depth = finger_collision_depth(
                asset, articulate(asset, np.zeros((len(f), 3), np.float32), f, a), radii)
            keep = depth <= tolerance
            if round_ == max_rounds - 1:
                keep = np.zeros(len(f), dtype=bool)
                keep[np.argsort(depth)[: n - have]] = True
            f, a = f[keep][: n - have], a[keep][: n - have]
            flex_ok.append(f)
            abd_ok.append(a)
            have += len(f)
            if have == n:
                break
        flexion, abduction = np.concatenate(flex_ok), np.concatenate(abd_ok)
    rot = random_rotations(rng, n) if global_rot else np.zeros((n, 3))
    return articulate(asset, rot.astype(np.float32), flexion, abduction)
