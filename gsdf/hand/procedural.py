"""A procedural right/left hand in the MANO format, generated without any licensed data.

Frame of the right hand at rest (metres): wrist joint at the origin, ``+y`` from the wrist towards
the middle finger, ``+z`` out of the palm (the side the fingers curl towards), ``+x`` towards the
thumb. The hand is flat with straight, slightly spread fingers and an abducted thumb.

Construction (deterministic for a given seed):

1. the 16 joints and 5 fingertips are laid out with the mean ObMan bone lengths of DESIGN.md
   section 4; the seed only perturbs finger splay, thumb direction and thicknesses slightly;
2. the rest surface is the zero level set of a smooth union of a rounded palm slab (extruded
   polygon) with tapered capsules along the phalanges (the thumb's first capsule forms the
   thenar), meshed by marching cubes and simplified by quadric edge collapse (libigl ``qslim``,
   blocking collapses that would create intersections) to ~3k vertices;
3. every vertex is attached to the nearest finger chain (wrist -> joint1 -> joint2 -> joint3 ->
   tip); its skinning weights are smoothsteps of its arc-length position along that chain,
   centred on the joints, so weights are smooth across joints and sum to 1; part labels are the
   argmax of the weights (as for MANO);
4. the joint regressor rows are weights on a ring of vertices around each joint, corrected (least
   norm) so that ``J_regressor @ v_template`` equals the designed joints exactly;
5. the 10 shape directions are displacement fields: overall size, palm width, hand length, hand
   thickness, finger thickness, then the length of thumb, index, middle, ring and pinky. One unit
   of beta changes its quantity by roughly 4-7 %, so ``beta ~ N(0, 1)`` gives plausible hands.

Joint frames: as in MANO, every joint's local frame has the rest-pose axes, so a finger joint's
flexion is a rotation about one fixed axis, ``asset.flexion_axes[j]`` (for the four fingers,
``(cos s, -sin s, 0)`` with ``s`` the finger's splay; positive curls towards ``+z``), and its
abduction a rotation about ``asset.abduction_axes[j]`` (``+-z`` for the four fingers).
The shape basis is ordered: 0 size, 1 palm width, 2 hand length, 3 hand thickness, 4 finger
thickness, 5-9 length of thumb, index, middle, ring, pinky.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import igl
import numpy as np
import trimesh
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from gsdf.hand.asset import (
    JOINT_PART,
    MANO_FINGER_ORDER,
    MANO_PARENTS,
    TIP_FINGER_ORDER,
    HandAsset,
    mirror_asset,
)
from gsdf.hand.kinematics import anatomical_axes, default_joint_limits

# mean ObMan bone lengths (DESIGN.md section 4): wrist->1, 1->2, 2->3, 3->tip, metres
BONE_LENGTHS: dict[str, tuple[float, float, float, float]] = {
    "thumb": (0.049, 0.028, 0.025, 0.032),
    "index": (0.098, 0.031, 0.022, 0.022),
    "middle": (0.102, 0.030, 0.023, 0.025),
    "ring": (0.094, 0.027, 0.023, 0.024),
    "pinky": (0.088, 0.018, 0.018, 0.019),
}

# x of the knuckle (joint 1) of the four fingers, metres; y follows from the bone length
_KNUCKLE_X = {"index": 0.026, "middle": 0.0045, "ring": -0.0165, "pinky": -0.0355}
_KNUCKLE_Z = {"index": 0.0, "middle": 0.0, "ring": 0.0, "pinky": 0.0}
# splay of each finger from +y towards +x (thumb side), degrees
_SPLAY_DEG = {"index": 6.0, "middle": 1.0, "ring": -5.0, "pinky": -12.0}
# capsule radii at joint1, joint2, joint3, tip (metres)
_RADII = {
    "thumb": (0.0155, 0.0118, 0.0106, 0.0095),
    "index": (0.0096, 0.0089, 0.0080, 0.0072),
    "middle": (0.0099, 0.0091, 0.0082, 0.0074),
    "ring": (0.0094, 0.0086, 0.0078, 0.0070),
    "pinky": (0.0084, 0.0077, 0.0070, 0.0063),
}
_THUMB1_DIR = np.array([0.027, 0.0388, 0.0129])
_THUMB_DIR = np.array([0.70, 0.60, 0.38])
# palm: the xy polygon below dilated by _PALM_OUTLINE_RADIUS (rounded outline), extruded to
# +-_PALM_HALF_THICKNESS in z with edges rounded by _PALM_ROUNDING, metres
_PALM_POLYGON = np.array([
    [-0.018, -0.004], [0.011, -0.004], [0.021, 0.028], [0.022, 0.080], [0.004, 0.087],
    [-0.018, 0.079], [-0.028, 0.068], [-0.031, 0.040], [-0.023, 0.004],
])
_PALM_OUTLINE_RADIUS = 0.010
_PALM_HALF_THICKNESS = 0.0135
_PALM_ROUNDING = 0.011
# smooth-union radius of each finger with the palm
_BLEND = {"thumb": 0.010, "index": 0.005, "middle": 0.005, "ring": 0.005, "pinky": 0.005}
# half widths of the skinning transitions at joint1, joint2, joint3 (metres)
_SKIN_HALF_WIDTH = {"thumb": (0.014, 0.009, 0.008), "other": (0.012, 0.007, 0.006)}
_VOXEL = 0.002
_TARGET_FACES = 6400

# shape directions: per unit beta
_SCALE_PER_BETA = 0.05
_WIDTH_PER_BETA = 0.05
_LENGTH_PER_BETA = 0.04
_THICK_PER_BETA = 0.06
_FINGER_THICK_PER_BETA = 0.07
_FINGER_LEN_PER_BETA = 0.05


@functools.lru_cache(maxsize=4)
def _cached_right_hand(seed: int) -> HandAsset:
    return _build_right_hand(seed)


def procedural_hand(seed: int = 0, side: str = "right") -> HandAsset:
    """Build the procedural hand asset (MANO format, metres).

    Args:
        seed: perturbs splay, thumb direction and thickness slightly; the same seed always
            gives the same asset (bone lengths at zero shape are the DESIGN.md means for any seed).
        side: "right", or "left" for the mirror image (x -> -x, face winding flipped).

    Returns:
        A fresh :class:`HandAsset` (the caller may modify it) with ~3k vertices, watertight
        ``faces == faces_closed``, zero ``posedirs``, and a pose PCA (``hands_components``,
        ``hands_mean``) fitted to natural finger poses of :func:`~gsdf.hand.random_pose`, so
        ``use_pca`` / ``flat_hand_mean=False`` behave as with MANO.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    asset = _cached_right_hand(int(seed)).copy()
    return asset if side == "right" else mirror_asset(asset)


# ---------------------------------------------------------------------------------------------
# layout


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def hand_layout(seed: int = 0) -> dict[str, np.ndarray]:
    """Designed skeleton of the right hand.

    Returns:
        dict with ``joints`` (16, 3) in MANO order, ``tips`` (5, 3) in thumb..pinky order,
        ``chains`` (5, 5, 3) per MANO-order finger the points wrist, joint1-3, tip, and ``radii``
        (5, 4) capsule radii at joint1-3 and tip, metres.
    """
    rng = np.random.default_rng(seed)
    jitter = seed != 0
    joints = np.zeros((16, 3))
    chains = np.zeros((5, 5, 3))
    radii = np.zeros((5, 4))
    tips = {}
    for f, name in enumerate(MANO_FINGER_ORDER):
        lengths = BONE_LENGTHS[name]
        if name == "thumb":
            j1 = _unit(_THUMB1_DIR) * lengths[0]
            d = _THUMB_DIR + (rng.normal(0, 0.03, 3) if jitter else 0.0)
            d = _unit(d)
        else:
            x = _KNUCKLE_X[name]
            z = _KNUCKLE_Z[name]
            y = np.sqrt(lengths[0] ** 2 - x**2 - z**2)
            j1 = np.array([x, y, z])
            splay = np.deg2rad(_SPLAY_DEG[name] + (rng.normal(0, 1.0) if jitter else 0.0))
            d = np.array([np.sin(splay), np.cos(splay), 0.0])
        j2 = j1 + lengths[1] * d
        j3 = j2 + lengths[2] * d
        tip = j3 + lengths[3] * d
        chains[f] = [np.zeros(3), j1, j2, j3, tip]
        joints[1 + 3 * f: 4 + 3 * f] = [j1, j2, j3]
        scale = 1.0 + (rng.normal(0, 0.03) if jitter else 0.0)
        radii[f] = np.array(_RADII[name]) * scale
        tips[name] = tip
    return {
        "joints": joints,
        "tips": np.stack([tips[n] for n in TIP_FINGER_ORDER]),
        "chains": chains,
        "radii": radii,
    }


# ---------------------------------------------------------------------------------------------
# implicit surface


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum with blend radius ``k``."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _polygon_sdf(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of (N, 2) points to a closed simple polygon (M, 2)."""
    d = np.full(len(p), np.inf)
    inside = np.zeros(len(p), dtype=bool)
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        e = b - a
        w = p - a
        t = np.clip((w @ e) / (e @ e), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(w - t[:, None] * e, axis=1))
        cond = (p[:, 1] >= a[1]) != (p[:, 1] >= b[1])
        cross = e[0] * w[:, 1] - e[1] * w[:, 0]
        flip = cond & ((cross > 0) == (b[1] > a[1]))
        inside ^= flip
    return np.where(inside, -d, d)


def _palm_sdf(p: np.ndarray) -> np.ndarray:
    """Rounded extruded palm polygon: (N, 3) -> (N,) signed distance, metres (approximate)."""
    r = _PALM_ROUNDING
    d2 = _polygon_sdf(p[:, :2], _PALM_POLYGON) - _PALM_OUTLINE_RADIUS + r
    dz = np.abs(p[:, 2]) - (_PALM_HALF_THICKNESS - r)
    w = np.stack([d2, dz], axis=1)
    return np.minimum(w.max(axis=1), 0.0) + np.linalg.norm(np.maximum(w, 0.0), axis=1) - r


def _tapered_capsule_sdf(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float,
                         rb: float) -> np.ndarray:
    """Approximate distance to a capsule from ``a`` (radius ra) to ``b`` (radius rb)."""
    e = b - a
    t = np.clip(((p - a) @ e) / (e @ e), 0.0, 1.0)
    return np.linalg.norm(p - a - t[:, None] * e, axis=1) - (ra + (rb - ra) * t)


_FAR = 0.03  # stand-in distance (metres) for grid points outside a primitive's bounding box


def _eval_block(axes: list[np.ndarray], lo: np.ndarray, hi: np.ndarray,
                fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Evaluate ``fn((N, 3) points) -> (N,)`` on the grid points inside the box [lo, hi] only;
    the rest of the (X, Y, Z) grid gets ``_FAR`` (larger than any blend radius, so the zero
    level set is unchanged as long as the box contains the primitive plus ``_FAR``)."""
    out = np.full(tuple(len(a) for a in axes), _FAR)
    sl = []
    for a, l, h in zip(axes, lo - _FAR, hi + _FAR, strict=True):
        i0, i1 = np.searchsorted(a, l), np.searchsorted(a, h, side="right")
        sl.append(slice(i0, i1))
    sub = np.stack(np.meshgrid(*(a[s] for a, s in zip(axes, sl, strict=True)), indexing="ij"),
                   axis=-1)
    if sub.size:
        out[tuple(sl)] = np.minimum(fn(sub.reshape(-1, 3)).reshape(sub.shape[:3]), _FAR)
    return out


def _hand_sdf(axes: list[np.ndarray], layout: dict[str, np.ndarray]) -> np.ndarray:
    """Signed distance (approximate, negative inside) on the grid ``axes`` -> (X, Y, Z)."""
    half = _PALM_HALF_THICKNESS
    poly_lo = _PALM_POLYGON.min(0) - _PALM_OUTLINE_RADIUS
    poly_hi = _PALM_POLYGON.max(0) + _PALM_OUTLINE_RADIUS
    d = _eval_block(axes, np.append(poly_lo, -half), np.append(poly_hi, half), _palm_sdf)
    for f, name in enumerate(MANO_FINGER_ORDER):
        chain, radii = layout["chains"][f], layout["radii"][f]
        tip_dir = _unit(chain[4] - chain[3])
        ends = [chain[1], chain[2], chain[3], chain[4] - radii[3] * tip_dir]
        df = np.full(d.shape, _FAR)
        for k in range(3):
            a, b, ra, rb = ends[k], ends[k + 1], radii[k], radii[k + 1]
            r = max(ra, rb)
            block = _eval_block(axes, np.minimum(a, b) - r, np.maximum(a, b) + r,
                                lambda q, a=a, b=b, ra=ra, rb=rb: _tapered_capsule_sdf(
                                    q, a, b, ra, rb))
            df = np.minimum(df, block)
        d = _smin(d, df, _BLEND[name])
    return d


def _mesh_surface(layout: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    pts = np.concatenate([layout["chains"].reshape(-1, 3), layout["tips"]])
    # the odd offset keeps grid points off the flat faces of the palm (where marching cubes
    # would emit degenerate triangles)
    lo = np.minimum(pts.min(0), [-0.05, -0.02, -0.02]) - 0.02 - 0.37 * _VOXEL
    hi = np.maximum(pts.max(0), [0.04, 0.1, 0.02]) + 0.02
    axes = [np.arange(lo[i], hi[i] + _VOXEL, _VOXEL) for i in range(3)]
    sdf = _hand_sdf(axes, layout)  # (X, Y, Z)
    verts, faces, _, _ = marching_cubes(sdf, level=0.0, spacing=(_VOXEL,) * 3)
    verts = verts + lo
    faces = faces[:, ::-1]  # skimage winding points normals inwards for a negative-inside field
    mesh = trimesh.Trimesh(verts, faces, process=True)
    mesh.merge_vertices()
    parts = mesh.split(only_watertight=False)
    mesh = max(parts, key=lambda m: len(m.faces))
    v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    u, g, _, _ = igl.qslim(np.asfortranarray(v), np.asfortranarray(f.astype(np.int32)),
                              _TARGET_FACES, True)
    mesh = trimesh.Trimesh(np.asarray(u), np.asarray(g), process=True)
    mesh.remove_unreferenced_vertices()
    if not (mesh.is_watertight and mesh.is_winding_consistent) or len(mesh.faces) < 1000:
        raise RuntimeError("procedural hand: the simplified surface is not a closed manifold")
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


# ---------------------------------------------------------------------------------------------
# skinning, regressor, shape directions


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 as x goes -1 -> 1."""
    t = np.clip(0.5 * (x + 1.0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _chain_projection(v: np.ndarray, chain: np.ndarray, radii: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project (V, 3) vertices on one finger chain (5 points: wrist, joint1-3, tip).

    Returns:
        distance to the chain minus the local radius (V,), arc length relative to joint1 (V,),
        and the closest axis point (V, 3).
    """
    best = np.full(len(v), np.inf)
    arc = np.zeros(len(v))
    axis_pt = np.zeros_like(v)
    seg_len = np.linalg.norm(np.diff(chain, axis=0), axis=1)
    # arc length at the start of each segment, zero at joint1: [-|wrist j1|, 0, l1, l1 + l2]
    start = np.array([-seg_len[0], 0.0, seg_len[1], seg_len[1] + seg_len[2]])
    seg_r = [(radii[0], radii[0]), (radii[0], radii[1]), (radii[1], radii[2]),
             (radii[2], radii[3])]
    for s in range(4):
        a, b = chain[s], chain[s + 1]
        e = b - a
        t = np.clip(((v - a) @ e) / (e @ e), 0.0, 1.0)
        q = a + t[:, None] * e
        d = np.linalg.norm(v - q, axis=1) - (seg_r[s][0] + (seg_r[s][1] - seg_r[s][0]) * t)
        better = d < best
        best = np.where(better, d, best)
        arc = np.where(better, start[s] + t * seg_len[s], arc)
        axis_pt = np.where(better[:, None], q, axis_pt)
    return best, arc, axis_pt


def _skinning(v: np.ndarray, layout: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Skinning weights (V, 16), finger assignment (V,), arc length (V,), axis points (V, 3)."""
    nv = len(v)
    dist = np.zeros((5, nv))
    arcs = np.zeros((5, nv))
    axis_pts = np.zeros((5, nv, 3))
    for f in range(5):
        dist[f], arcs[f], axis_pts[f] = _chain_projection(v, layout["chains"][f],
                                                          layout["radii"][f])
    finger = dist.argmin(0)
    idx = np.arange(nv)
    arc = arcs[finger, idx]
    axis_pt = axis_pts[finger, idx]
    weights = np.zeros((nv, 16))
    for f, name in enumerate(MANO_FINGER_ORDER):
        sel = finger == f
        chain = layout["chains"][f]
        seg = np.linalg.norm(np.diff(chain, axis=0), axis=1)
        centres = [0.0, seg[1], seg[1] + seg[2]]
        hw = _SKIN_HALF_WIDTH["thumb" if name == "thumb" else "other"]
        s = [_smoothstep((arc[sel] - c) / h) for c, h in zip(centres, hw, strict=True)]
        weights[sel, 0] = 1.0 - s[0]
        weights[sel, 1 + 3 * f] = s[0] - s[1]
        weights[sel, 2 + 3 * f] = s[1] - s[2]
        weights[sel, 3 + 3 * f] = s[2]
    return {"weights": weights, "finger": finger, "arc": arc, "axis_pt": axis_pt}


def _ring_regressor(v: np.ndarray, target: np.ndarray, normal: np.ndarray, radius: float,
                    allowed: np.ndarray) -> np.ndarray:
    """Weights (V,) on vertices near the plane through ``target`` with ``normal``, within
    ``radius``, restricted to ``allowed``; least-norm corrected so that ``w @ v == target`` and
    ``w.sum() == 1``."""
    rel = v - target
    plane = np.abs(rel @ normal)
    dist = np.linalg.norm(rel, axis=1)
    for band in (0.0015, 0.0025, 0.004, 0.006, 0.01):
        sel = np.nonzero(allowed & (plane < band) & (dist < radius))[0]
        if len(sel) >= 12:
            break
    else:
        raise RuntimeError("procedural hand: no vertex ring around a joint")
    a = np.concatenate([v[sel].T, np.ones((1, len(sel)))])  # (4, n)
    w0 = np.full(len(sel), 1.0 / len(sel))
    b = np.concatenate([target, [1.0]])
    w = w0 + a.T @ np.linalg.solve(a @ a.T, b - a @ w0)
    out = np.zeros(len(v))
    out[sel] = w
    return out


def _shapedirs(v: np.ndarray, layout: dict[str, np.ndarray], skin: dict[str, np.ndarray]
               ) -> np.ndarray:
    """(V, 3, 10) shape displacement fields per unit beta, metres."""
    nv = len(v)
    dirs = np.zeros((nv, 3, 10))
    dirs[:, :, 0] = _SCALE_PER_BETA * v
    dirs[:, 0, 1] = _WIDTH_PER_BETA * v[:, 0]
    dirs[:, 1, 2] = _LENGTH_PER_BETA * v[:, 1]
    dirs[:, 2, 3] = _THICK_PER_BETA * v[:, 2]
    finger_w = 1.0 - skin["weights"][:, 0]  # 0 on the palm, 1 on the fingers
    dirs[:, :, 4] = _FINGER_THICK_PER_BETA * finger_w[:, None] * (v - skin["axis_pt"])
    for k, name in enumerate(TIP_FINGER_ORDER):
        f = MANO_FINGER_ORDER.index(name)
        chain = layout["chains"][f]
        d = _unit(chain[2] - chain[1])
        sel = skin["finger"] == f
        ramp = _smoothstep(skin["arc"][sel] / _SKIN_HALF_WIDTH["other"][0])
        along = np.maximum(skin["arc"][sel], 0.0) * ramp
        dirs[sel, :, 5 + k] = _FINGER_LEN_PER_BETA * along[:, None] * d
    return dirs


def _pose_pca(asset: HandAsset, seed: int, n: int = 4000) -> dict[str, np.ndarray]:
    """PCA of the 45-d finger pose over ``n`` natural poses (MANO's ``hands_components`` /
    ``hands_mean`` analogue): components (45, 45), rows by decreasing variance, and mean (45,)."""
    from gsdf.hand.kinematics import articulate, random_controls

    rng = np.random.default_rng([seed, 45])
    flexion, abduction = random_controls(asset, rng, n)
    pose = articulate(asset, np.zeros((n, 3), np.float32), flexion, abduction,
                      clamp=False).double().numpy()[:, 3:]
    mean = pose.mean(0)
    _, _, vt = np.linalg.svd(pose - mean, full_matrices=True)
    signs = np.sign(vt[np.arange(45), np.abs(vt).argmax(1)])  # deterministic orientation
    return {"components": vt * signs[:, None], "mean": mean}


def _build_right_hand(seed: int) -> HandAsset:
    layout = hand_layout(seed)
    v, faces = _mesh_surface(layout)
    # fingertip vertices: the closest vertex, snapped onto the designed tip
    tree = cKDTree(v)
    _, tip_ids = tree.query(layout["tips"])
    v[tip_ids] = layout["tips"]
    skin = _skinning(v, layout)
    weights = skin["weights"]
    parts = JOINT_PART[weights.argmax(1)]
    joints = layout["joints"]
    regressor = np.zeros((16, len(v)))
    regressor[0] = _ring_regressor(v, joints[0], np.array([0.0, 1.0, 0.0]), 0.06,
                                   np.ones(len(v), dtype=bool))
    for f in range(5):
        chain = layout["chains"][f]
        radius = 2.5 * layout["radii"][f].max()
        for k in range(3):
            d = _unit(chain[k + 2] - chain[k + 1])
            regressor[1 + 3 * f + k] = _ring_regressor(v, chain[k + 1], d, radius,
                                                       skin["finger"] == f)
    shapedirs = _shapedirs(v, layout, skin)
    axes = anatomical_axes(joints, v[tip_ids], "right")
    flex_lim, abd_lim = default_joint_limits()
    asset = HandAsset(
        v_template=v,
        faces=faces,
        faces_closed=faces.copy(),
        shapedirs=shapedirs,
        posedirs=np.zeros((len(v), 3, 135)),
        J_regressor=regressor,
        weights=weights,
        parents=MANO_PARENTS.copy(),
        hands_components=np.eye(45),  # replaced below
        hands_mean=np.zeros(45),
        tip_vertex_ids=tip_ids,
        vertex_parts=parts,
        side="right",
        flexion_axes=axes["flexion"],
        abduction_axes=axes["abduction"],
        flexion_limits=flex_lim,
        abduction_limits=abd_lim,
        source=f"procedural(seed={seed})",
    )
    pca = _pose_pca(asset, seed)
    asset.hands_components, asset.hands_mean = pca["components"], pca["mean"]
    asset.validate()
    return asset
