"""Grasps: place the hand against the object, then flex each finger until it touches the surface.

All of this happens in the **hand-local frame**: the hand layer's output with zero global rotation
and no translation (metres). The object is placed against the palm side of the slightly open hand
by casting one ray per hand vertex along the palm normal (the first hand vertex to meet the
object stops it), then every finger bends along its flexion axes until its vertices come within
``contact`` metres of the object (a coarse scan of the flexion, then bisection). Fingers that
never meet the object close fully.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from trimesh.ray.ray_pyembree import RayMeshIntersector

from gsdf.hand.asset import JOINTS21_FROM_16_AND_TIPS, HandAsset
from gsdf.hand.kinematics import FIRST_JOINTS, articulate
from gsdf.hand.layer import HandLayer
from gsdf.synth.objects import MeshSDF, ObjectMesh

# Fingers in part-label order 1..5 (thumb, index, middle, ring, pinky) -> their 3 kinematic joints
# (MANO order: index 1-3, middle 4-6, pinky 7-9, ring 10-12, thumb 13-15).
FINGER_JOINTS = np.array([[13, 14, 15], [1, 2, 3], [4, 5, 6], [10, 11, 12], [7, 8, 9]])
# finger (0 thumb .. 4 pinky) of each of the 15 finger joints of the pose, MANO order
JOINT_FINGER = np.argsort(FINGER_JOINTS.reshape(-1)) // 3
# index of the thumb in the abduction controls (index, middle, pinky, ring, thumb)
THUMB_ABDUCTION = 4
# 21-joint indices (gSDF order) of the wrist, index1, middle1, ring1, pinky1, middle tip.
WRIST, INDEX1, MIDDLE1, RING1, PINKY1, MIDDLE_TIP = 0, 5, 9, 13, 17, 12


class HandRig:
    """The hand layer (float64) plus the finger articulation the grasp search needs.

    Args:
        asset: a hand asset (procedural or MANO), right or left.
    """

    def __init__(self, asset: HandAsset):
        self.asset = asset
        self.layer = HandLayer(asset).double()
        self.faces = np.asarray(asset.faces_closed, dtype=np.int64)
        self.parts = np.asarray(asset.vertex_parts, dtype=np.uint8)
        self.side = asset.side
        limits = np.asarray(asset.flexion_limits, dtype=np.float64)  # (15, 2) radians
        # Flexion of the open hand: straight fingers, the thumb fully extended (its lower limit).
        self.flex_open = np.where(JOINT_FINGER == 0, limits[:, 0], 0.0)  # (15,)
        self.flex_max = limits[:, 1]
        # (5, 2) abduction range per finger (index, middle, pinky, ring, thumb)
        self.abd_range = np.asarray(asset.abduction_limits, dtype=np.float64)[FIRST_JOINTS]
        # vertices of each finger (part labels 1..5)
        self.finger_vertices = [np.flatnonzero(self.parts == f + 1) for f in range(5)]
        # A sparse subset of each finger (one vertex per 6 mm cell) for the coarse scan, and the
        # distance within which it represents every vertex of the finger (with slack for the
        # stretching of skinning).
        self.finger_subsets, self.subset_margin = [], np.zeros(5)
        for f, ids in enumerate(self.finger_vertices):
            cell = np.floor(asset.v_template[ids] / 0.006).astype(np.int64)
            _, first = np.unique(cell, axis=0, return_index=True)
            sub = ids[np.sort(first)]
            gap = cKDTree(asset.v_template[sub]).query(asset.v_template[ids])[0].max()
            self.finger_subsets.append(sub)
            self.subset_margin[f] = 1.5 * gap + 1e-4

    def articulate(self, flexion: np.ndarray, abduction: np.ndarray) -> np.ndarray:
        """Finger pose from anatomical controls (:func:`gsdf.hand.kinematics.articulate`).

        Args:
            flexion: (B, 15) radians per finger joint, MANO order.
            abduction: (B, 5) radians per finger (index, middle, pinky, ring, thumb).

        Returns:
            (B, 45) axis-angle finger pose (pose entries 3..47).
        """
        flexion = np.atleast_2d(np.asarray(flexion, dtype=np.float64))
        glob = torch.zeros(len(flexion), 3, dtype=torch.float64)
        pose = articulate(self.asset, glob, torch.from_numpy(np.ascontiguousarray(flexion)),
                          torch.as_tensor(np.array(np.broadcast_to(abduction, (len(flexion), 5))),
                                          dtype=torch.float64))
        return pose[:, 3:].numpy()

    def forward(self, pose: np.ndarray, shape: np.ndarray,
                trans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pose the hand.

        Args:
            pose: (B, 48) axis-angle (global rotation then 15 finger joints), or (B, 45) finger
                pose only (zero global rotation).
            shape: (10,) or (B, 10) betas.
            trans: optional (B, 3) translation, metres.

        Returns:
            vertices (B, V, 3) and joints (B, 21, 3), float64 metres.
        """
        pose = np.array(np.atleast_2d(pose), dtype=np.float64)
        if pose.shape[1] == 45:
            pose = np.concatenate([np.zeros((len(pose), 3)), pose], axis=1)
        shape = np.array(np.broadcast_to(np.asarray(shape, dtype=np.float64), (len(pose), 10)))
        with torch.no_grad():
            out = self.layer(torch.from_numpy(pose), torch.from_numpy(shape),
                             None if trans is None else torch.tensor(trans, dtype=torch.float64))
        return out.vertices.numpy(), out.joints.numpy()

    def rest_wrist(self, shape: np.ndarray) -> np.ndarray:
        """(3,) rest position of the wrist joint (the centre of the global rotation), metres."""
        with torch.no_grad():
            _, joints = self.layer.shaped(torch.as_tensor(np.asarray(shape)[None],
                                                          dtype=torch.float64))
        return joints[0, 0].numpy()


class ShapedHand:
    """Fast linear blend skinning of a subset of vertices of one shaped hand, for the grasp
    search (many poses per grasp). Same kinematics as :class:`~gsdf.hand.HandLayer` without the
    pose correctives (zero for the procedural hand; millimetres for MANO); final poses always go
    through the real layer.

    Args:
        rig: the hand. shape: (10,) betas.
    """

    def __init__(self, rig: HandRig, shape: np.ndarray):
        with torch.no_grad():
            v, j = rig.layer.shaped(torch.as_tensor(np.asarray(shape)[None], dtype=torch.float64))
        self.vertices = v[0].numpy()  # (V, 3)
        self.joints = j[0].numpy()  # (16, 3) rest joints
        self.weights = np.asarray(rig.asset.weights, dtype=np.float64)  # (V, 16)
        self.parents = np.asarray(rig.asset.parents)
        self.tip_ids = np.asarray(rig.asset.tip_vertex_ids)
        if not all(self.parents[k] < k for k in range(1, 16)):
            raise ValueError("ShapedHand needs parents listed before children (MANO order)")

    def _chain(self, finger_pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 45) finger poses -> global rotations (B, 16, 3, 3) and joints (B, 16, 3)."""
        b = len(finger_pose)
        rotvec = np.concatenate([np.zeros((b, 3)), finger_pose], axis=1).reshape(-1, 3)
        rot = Rotation.from_rotvec(rotvec).as_matrix().reshape(b, 16, 3, 3)
        glob_r = np.empty_like(rot)
        glob_t = np.empty((b, 16, 3))
        glob_r[:, 0], glob_t[:, 0] = rot[:, 0], self.joints[0]
        for k in range(1, 16):
            par = self.parents[k]
            glob_r[:, k] = glob_r[:, par] @ rot[:, k]
            glob_t[:, k] = glob_r[:, par] @ (self.joints[k] - self.joints[par]) + glob_t[:, par]
        return glob_r, glob_t

    def skin(self, finger_pose: np.ndarray, ids: np.ndarray | None = None,
             with_joints: bool = False):
        """Pose vertices ``ids`` (N,) (all if None) with finger poses (B, 45), zero global
        rotation.

        Returns:
            (B, N, 3) vertices, metres; with ``with_joints`` also the (B, 21, 3) joints (gSDF
            order; tips from all vertices).
        """
        b = len(finger_pose)
        glob_r, glob_t = self._chain(np.asarray(finger_pose, dtype=np.float64))
        skin_t = glob_t - np.einsum("bkij,kj->bki", glob_r, self.joints)  # (B, 16, 3)
        skin = np.concatenate([glob_r, skin_t[..., None]], axis=-1).reshape(b, 16, 12)
        sel = slice(None) if ids is None else ids
        per_v = (self.weights[sel] @ skin).reshape(b, -1, 3, 4)  # (B, N, 3, 4)
        verts = np.einsum("bnij,nj->bni", per_v[..., :3], self.vertices[sel]) + per_v[..., 3]
        if not with_joints:
            return verts
        tips_v = verts if ids is None else self.skin(finger_pose, self.tip_ids)
        tips = tips_v[:, self.tip_ids] if ids is None else tips_v
        joints = np.concatenate([glob_t, tips], axis=1)[:, JOINTS21_FROM_16_AND_TIPS]
        return verts, joints


@dataclass(frozen=True)
class GraspParams:
    """The random choices of one grasp (hand-local frame).

    Attributes:
        shape: (10,) hand betas.
        abduction: (5,) radians per finger (index, middle, pinky, ring, thumb), at joint 1.
        profile: (15,) relative flexion of each joint when its finger closes (0..1 of the limit).
        obj_rotation: (3, 3) object rest -> hand-local rotation.
        offset: (2,) metres: object centre offset along the finger direction and across the palm.
        open_amount: finger closure (0..1) of the open hand the object is placed against.
        lift: gap left between the palm and the object, metres (0: a power grasp against the
            palm; a few centimetres: the fingertips hold the object).
    """

    shape: np.ndarray
    abduction: np.ndarray
    profile: np.ndarray
    obj_rotation: np.ndarray
    offset: np.ndarray
    open_amount: float = 0.05
    lift: float = 0.0


@dataclass(frozen=True)
class Grasp:
    """A solved grasp in the hand-local frame.

    Attributes:
        finger_pose: (45,) axis-angle finger pose.
        closure: (5,) closure of each finger (thumb..pinky), 0 open .. 1 closed.
        touching: (5,) bool, the finger stopped on the object.
        obj_rotation: (3, 3), obj_translation: (3,) object rest -> hand-local.
        vertices: (V, 3), joints: (21, 3) hand-local, metres.
        penetration: depth of the deepest hand vertex inside the object, metres (>= 0).
        gap: smallest distance of a hand vertex to the object surface, metres (>= 0).
        params: the grasp parameters actually used (the thumb may have been swung out).
    """

    finger_pose: np.ndarray
    closure: np.ndarray
    touching: np.ndarray
    obj_rotation: np.ndarray
    obj_translation: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray
    penetration: float
    gap: float
    params: GraspParams | None = None


def smooth_closures(closure: np.ndarray, touching: np.ndarray,
                    max_step: float = 0.06) -> np.ndarray:
    """Finger closures of a sequence made smooth without cutting into the object.

    A closure below a frame's contact closure is collision free (the search closes each finger
    from open until its first contact), and a finger that touches nothing may take any closure.
    So: free frames take the closure interpolated from the touching frames of that finger,
    then every closure is lowered to the largest ``max_step``-Lipschitz function under them
    (closures only go down, so no penetration appears; a few contacts may be given up).

    Args:
        closure: (T, 5) solved closures per frame; touching: (T, 5) bool.
        max_step: largest change of a closure between consecutive frames.

    Returns:
        (T, 5) closures.
    """
    closure = np.asarray(closure, dtype=np.float64)
    out = closure.copy()
    t = np.arange(len(closure))
    for f in range(closure.shape[1]):
        hit = np.flatnonzero(touching[:, f])
        if len(hit):
            free = ~touching[:, f]
            out[free, f] = np.minimum(np.interp(t[free], hit, closure[hit, f]), closure[free, f])
    # lower Lipschitz envelope: c(t) = min_s c(s) + max_step * |t - s|
    return (out[None, :, :] + max_step * np.abs(t[:, None] - t[None, :])[..., None]).min(1)


class GraspSolver:
    """Solves grasps of one object by one hand.

    Args:
        rig: the hand.
        obj: the object (rest frame).
        contact: a finger stops when one of its vertices is this close to the surface, metres.
        clearance: gap left between the palm and the object when placing it, metres.
        scan_steps: coarse steps of the closure scan; bisection_steps: refinement steps.
    """

    def __init__(self, rig: HandRig, obj: ObjectMesh, contact: float = 0.0008,
                 clearance: float = 0.0004, scan_steps: int = 16, bisection_steps: int = 7):
        self.rig = rig
        self.obj = obj
        self.sdf = MeshSDF(obj.vertices, obj.faces)
        self._rays = RayMeshIntersector(trimesh.Trimesh(obj.vertices, obj.faces, process=False))
        self.contact = contact
        self.clearance = clearance
        self.scan_steps = scan_steps
        self._subsets = np.concatenate(rig.finger_subsets)
        self._subset_owner = np.concatenate([np.full(len(ids), f)
                                             for f, ids in enumerate(rig.finger_subsets)])
        self._shaped: tuple[bytes, ShapedHand] | None = None
        # Largest distance a vertex travels in one scan step is well under this (metres).
        self.bound = 0.03
        self.bisection_steps = bisection_steps

    def _pose(self, p: GraspParams, closure: np.ndarray) -> np.ndarray:
        """(B, 5) closures -> (B, 45) finger pose."""
        closure = np.atleast_2d(closure)
        per_joint = closure[:, JOINT_FINGER]  # (B, 15)
        rig = self.rig
        flex = rig.flex_open + per_joint * p.profile * (rig.flex_max - rig.flex_open)  # (B, 15)
        return rig.articulate(flex, p.abduction)

    def _sdf_local(self, points: np.ndarray, rot: np.ndarray, trans: np.ndarray,
                   bound: float | None = None) -> np.ndarray:
        """Signed distance of hand-local points (..., 3) to the placed object (``+inf`` beyond
        ``bound``, see :class:`MeshSDF`)."""
        shape = points.shape[:-1]
        rest = (points.reshape(-1, 3) - trans) @ rot  # R^T (p - t), row vectors
        return self.sdf(rest, bound).reshape(shape)

    def palm_frame(self, joints: np.ndarray, joints_closed: np.ndarray) -> tuple[np.ndarray, ...]:
        """Palm centre and axes from the open and a closed hand's joints (21, 3).

        Returns:
            centre (3,), u (3,) towards the fingers, n (3,) palm normal (the side the fingers
            close towards), w (3,) = n x u.
        """
        wrist = joints[WRIST]
        mcp = joints[[INDEX1, MIDDLE1, RING1, PINKY1]].mean(0)
        u = joints[MIDDLE1] - wrist
        u /= np.linalg.norm(u)
        n = np.cross(joints[INDEX1] - wrist, joints[PINKY1] - wrist)
        n -= u * (n @ u)
        n /= np.linalg.norm(n)
        if (joints_closed[MIDDLE_TIP] - joints[MIDDLE_TIP]) @ n < 0:
            n = -n
        centre = wrist + 0.75 * (mcp - wrist)
        return centre, u, n, np.cross(n, u)

    def _place(self, points: np.ndarray, base: np.ndarray, n: np.ndarray,
               rot: np.ndarray, lift: float = 0.0) -> np.ndarray:
        """Object translation (3,): start at ``base + s n`` far along the palm normal ``n`` and
        slide along ``-n`` until the object meets one of ``points`` (P, 3), hand-local."""
        radius = np.linalg.norm(self.obj.vertices, axis=1).max()
        s_hi = float(((points - base) @ n).max() + radius + 0.01)
        origins = (points - base - s_hi * n) @ rot  # object rest frame
        dirs = np.ascontiguousarray(np.broadcast_to(n @ rot, origins.shape))
        _, ray_idx, locs = self._rays.intersects_id(origins, dirs, multiple_hits=False,
                                                    return_locations=True)
        if len(ray_idx):
            t_hit = np.einsum("nd,nd->n", locs - origins[ray_idx], dirs[ray_idx])
            s = s_hi - t_hit.min() + self.clearance + lift
        else:  # nothing in the way (e.g. through a torus hole): rest the object's centre here
            s = 0.0
        return base + s * n

    def shaped(self, shape: np.ndarray) -> ShapedHand:
        """The fast skinning of hand shape ``shape`` (10,), cached for the last shape."""
        key = np.asarray(shape, dtype=np.float64).tobytes()
        if self._shaped is None or self._shaped[0] != key:
            self._shaped = (key, ShapedHand(self.rig, shape))
        return self._shaped[1]

    def solve(self, p: GraspParams) -> Grasp:
        """Place the object against the open hand and close every finger onto it."""
        rig = self.rig
        fast = self.shaped(p.shape)
        bound = self.bound
        verts, joints = fast.skin(self._pose(p, np.array([[p.open_amount] * 5, [0.6] * 5])),
                                  with_joints=True)
        centre, u, n, w = self.palm_frame(joints[0], joints[1])
        rot = np.asarray(p.obj_rotation, dtype=np.float64)
        base = centre + p.offset[0] * u + p.offset[1] * w
        # Slide the object along -n onto the open hand: one ray per hand vertex. The thumb is
        # left out first (it may then close onto the object from the side); if the object would
        # then cut the open thumb, the thumb takes part in the placement too.
        v0 = verts[0]
        thumb = rig.finger_vertices[0]
        not_thumb = np.setdiff1d(np.arange(len(v0)), thumb)
        trans = self._place(v0[not_thumb], base, n, rot, p.lift)
        if self._sdf_local(v0[thumb], rot, trans).min() < self.contact:
            # the open thumb cuts the object: swing it back out of the palm (its lowest
            # abduction), else let it hold the object off the palm
            swung = np.array(p.abduction, dtype=np.float64)
            swung[THUMB_ABDUCTION] = rig.abd_range[THUMB_ABDUCTION, 0]
            p = dataclasses.replace(p, abduction=swung)
            v_thumb = fast.skin(self._pose(p, np.array([[p.open_amount] * 5])), thumb)[0]
            if self._sdf_local(v_thumb, rot, trans).min() < self.contact:
                v0 = fast.skin(self._pose(p, np.array([[p.open_amount] * 5])))[0]
                trans = self._place(v0, base, n, rot, p.lift)
        # Coarse scan of the closure of all fingers at once. Distances are only needed near the
        # surface: a vertex moves less than `bound` per scan step, so it cannot cross the
        # surface unseen.
        grid = np.linspace(p.open_amount, 1.0, self.scan_steps)
        sub = self._subsets
        scan_v = fast.skin(self._pose(p, np.repeat(grid[:, None], 5, axis=1)), sub)
        scan_d = self._sdf_local(scan_v, rot, trans, bound)  # (steps, len(sub))
        d_sub = np.full((len(grid), 5), np.inf)
        for f in range(5):
            d_sub[:, f] = scan_d[:, self._subset_owner == f].min(axis=1)
        # first step at which the subset says a finger *may* be in contact
        near = d_sub < self.contact + rig.subset_margin
        step = np.where(near.any(0), near.argmax(0), len(grid))  # (5,)
        hit = np.full(5, -1)
        # walk every finger forward from there with all its vertices (batched over fingers)
        while True:
            pending = np.flatnonzero((hit < 0) & (step < len(grid)))
            if not len(pending):
                break
            closure = np.full(5, p.open_amount)
            closure[pending] = grid[step[pending]]
            ids = np.concatenate([rig.finger_vertices[f] for f in pending])
            owner = np.concatenate([np.full(len(rig.finger_vertices[f]), f) for f in pending])
            d = self._sdf_local(fast.skin(self._pose(p, closure), ids)[0], rot, trans, bound)
            dmin = np.full(5, np.inf)
            np.minimum.at(dmin, owner, d)
            for f in pending:
                if dmin[f] < self.contact:
                    hit[f] = step[f]
                else:
                    step[f] += 1
        lo = np.where(hit < 0, 1.0, grid[np.maximum(hit - 1, 0)])
        hi = np.where(hit > 0, grid[np.minimum(np.maximum(hit, 0), len(grid) - 1)], np.nan)
        touching = hit >= 0
        # Bisection on the fingers that met the object between two scan steps (all at once).
        todo = np.flatnonzero(~np.isnan(hi))
        if len(todo):
            ids = np.concatenate([rig.finger_vertices[f] for f in todo])
            owner = np.concatenate([np.full(len(rig.finger_vertices[f]), k)
                                    for k, f in enumerate(todo)])
        for _ in range(self.bisection_steps if len(todo) else 0):
            mid = lo.copy()
            mid[todo] = (lo[todo] + hi[todo]) / 2
            mv = fast.skin(self._pose(p, mid), ids)
            d = self._sdf_local(mv[0], rot, trans, bound)
            dmin = np.full(len(todo), np.inf)
            np.minimum.at(dmin, owner, d)
            close = dmin < self.contact
            hi[todo[close]] = mid[todo[close]]
            lo[todo[~close]] = mid[todo[~close]]
        return self.finish(p, trans, lo, touching)

    def finish(self, p: GraspParams, trans: np.ndarray, closure: np.ndarray,
               touching: np.ndarray) -> Grasp:
        """The grasp with finger closures ``closure`` (5,) and the object at ``trans``."""
        rot = np.asarray(p.obj_rotation, dtype=np.float64)
        finger_pose = self._pose(p, closure)[0]
        verts, joints = self.shaped(p.shape).skin(finger_pose[None], with_joints=True)
        d = self._sdf_local(verts[0], rot, trans)
        return Grasp(finger_pose=finger_pose, closure=np.asarray(closure, dtype=np.float64),
                     touching=np.asarray(touching, dtype=bool), obj_rotation=rot,
                     obj_translation=trans, vertices=verts[0], joints=joints[0],
                     penetration=float(max(0.0, -d.min())), gap=float(np.abs(d).min()),
                     params=p)
