"""SDF sampling of hand-object pairs (stage ``sample_sdf``, DESIGN.md section 6).

For every sample of a dataset shard, points are drawn around the hand mesh (the *hand set*) and
around the object mesh (the *object set*) as Grasping Field's ``PreprocessMesh`` (itself DeepSDF's
``SampleSDFNearSurface``) does:

* both meshes are normalised together into the unit sphere: centre ``c`` = centre of the joint
  axis-aligned bounding box, radius ``r`` = largest vertex distance to ``c`` times ``buffer``
  (1.03);
* ``near_fraction`` (47/50) of each set's ``points_per_mesh`` (20,000) points: ``n_near / 2``
  area-weighted surface samples, each perturbed twice with isotropic Gaussian noise of variance
  ``variance`` (0.005) and ``second_variance`` (0.0005), in normalised units (standard deviations
  ``0.071 r`` and ``0.022 r``);
* the rest uniform in the normalised bounding cube ``[-cube/2, cube/2]^3`` (``cube`` = 2);
* optionally (``recon_cube_fraction`` > 0, not in the reference: 0 by default) that fraction of
  the points uniform in the **reconstruction cube**, hand-frame ``[-1, 1]^3`` (the wrist
  +- ``2 / recon_scale`` metres), taken out of the uniform budget. The bounding-sphere points
  cover only the hand and object's neighbourhood (|p| <= 0.6 in hand-frame units for 99% of
  them on the synthetic data), while ``reconstruct`` meshes the whole cube; without points out
  there a decoder's field is unsupervised over most of the cube, and a negative patch there
  becomes a spurious surface (on the default preset, sheets 60 cm wide that the evaluation's
  largest-component step kept instead of the object);
* optionally (``ray_fraction`` > 0, not in the reference: 0 by default) that fraction of the
  points uniform along **camera rays** through area-weighted surface samples, on the part of
  each ray inside the reconstruction cube, also taken out of the uniform budget. A pixel-aligned
  feature is the same everywhere on a camera ray, so the ambiguity of a single image lies along
  the rays through the hand and the object; the near-surface and cube points put few samples
  there (a 6 cm object's ray tube is ~1% of the cube), and the decoders' surfaces came out
  stretched along the rays (median depth extent 2.2x the true one for gSDF's objects on the
  default preset, lateral extent 1.0x).

Every point gets the signed distance to the hand and to the object, and the part label of the
nearest hand face. Distances are exact point-to-triangle distances (libigl
``point_mesh_squared_distance``, which also gives the nearest face); the sign is negative inside,
decided by the generalised winding number (libigl ``fast_winding_number > 0.5``), which is right
on meshes with holes (ShapeNet objects) where the nearest normal alone is not. The hand is
watertight; it uses the same test by default (``hand_sign: pseudonormal`` is the cheaper
option). The part label of a face is the majority part
of its three vertices (the first vertex's part when all three differ).

Points and distances are stored in the **hand frame** (docs/architecture.md): ``p_hand = (p_cam -
wrist) * recon_scale / 2`` with ``wrist = hand_joints_3d[0]``; distances are multiplied by
``recon_scale / 2`` too.

The SDF shard file format is owned by :mod:`gsdf.data.sdf_shard`; the stage that writes it is
:mod:`gsdf.stages.sample_sdf`.
"""

from __future__ import annotations

from dataclasses import dataclass

import igl
import numpy as np
import trimesh

from gsdf.geometry.mesh_io import MeshError

DATA_COLUMNS = ("x", "y", "z", "sdf_hand", "sdf_obj")
SETS = ("hand", "obj")
NUM_PARTS = 6


@dataclass
class SampleSDFConfig:
    """Config section ``sample_sdf`` (defaults: Grasping Field's ``PreprocessMesh``).

    Attributes:
        points_per_mesh: points drawn around each mesh (hand set and object set each).
        near_fraction: fraction of them near the surface; the rest is uniform in the cube.
        variance: variance of the first (coarse) Gaussian perturbation, normalised units.
        second_variance: variance of the second (fine) perturbation, normalised units.
        buffer: the normalisation radius is the largest vertex distance times this.
        cube: side of the uniform-sampling cube, normalised units (2 = the sphere's cube).
        recon_cube_fraction: fraction of the points drawn uniformly in the hand-frame
            reconstruction cube ``[-1, 1]^3`` instead (0 = the reference); at most
            ``1 - near_fraction``.
        ray_fraction: fraction of the points drawn uniformly along the camera rays through
            surface samples, within the reconstruction cube (0 = the reference); also out of
            the uniform budget, so ``recon_cube_fraction + ray_fraction <= 1 - near_fraction``.
        winding_threshold: a point is inside a mesh where its winding number exceeds this.
        hand_sign: ``winding`` (generalised winding number, robust to self-intersections) or
            ``pseudonormal`` (nearest-feature pseudonormal, ~1.3x faster on the hand, right for
            closed hands without self-intersection). The object always uses the winding number.
        seed: base seed; each sample's generator is seeded from (seed, sample id).
        compressed: write the shard with ``np.savez_compressed``.
    """

    points_per_mesh: int = 20000
    near_fraction: float = 47.0 / 50.0
    variance: float = 0.005
    second_variance: float = 0.0005
    buffer: float = 1.03
    cube: float = 2.0
    recon_cube_fraction: float = 0.0
    ray_fraction: float = 0.0
    winding_threshold: float = 0.5
    hand_sign: str = "winding"
    seed: int = 0
    compressed: bool = False

    def __post_init__(self):
        if self.points_per_mesh < 2:
            raise ValueError(f"sample_sdf.points_per_mesh must be >= 2, got {self.points_per_mesh}")
        if not 0.0 <= self.near_fraction <= 1.0:
            raise ValueError(
                f"sample_sdf.near_fraction must be in [0, 1], got {self.near_fraction}")
        if not 0.0 <= self.recon_cube_fraction <= 1.0 - self.near_fraction + 1e-9:
            raise ValueError(
                f"sample_sdf.recon_cube_fraction must be in [0, 1 - near_fraction = "
                f"{1.0 - self.near_fraction:g}] (its points come out of the uniform budget), "
                f"got {self.recon_cube_fraction}")
        if not 0.0 <= self.ray_fraction <= (1.0 - self.near_fraction
                                            - self.recon_cube_fraction + 1e-9):
            raise ValueError(
                f"sample_sdf.ray_fraction must be in [0, 1 - near_fraction - "
                f"recon_cube_fraction = "
                f"{1.0 - self.near_fraction - self.recon_cube_fraction:g}] (its points come "
                f"out of the uniform budget), got {self.ray_fraction}")
        if self.hand_sign not in ("winding", "pseudonormal"):
            raise ValueError(f"sample_sdf.hand_sign must be winding or pseudonormal, got "
                             f"{self.hand_sign!r}")
        if self.variance < 0 or self.second_variance < 0:
            raise ValueError("sample_sdf.variance and second_variance must be >= 0")


# ---------------------------------------------------------------------------------------------
# Distances
# ---------------------------------------------------------------------------------------------


class MeshSDF:
    """Exact signed distance to one triangle mesh (libigl), with the nearest face.

    Args:
        vertices: (V, 3) float, any unit (distances come back in the same unit).
        faces: (F, 3) int.
        winding_threshold: inside where the generalised winding number is above this.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, winding_threshold: float = 0.5):
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or len(self.vertices) == 0:
            raise MeshError(f"vertices must be (V, 3) with V > 0, got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise MeshError(f"faces must be (F, 3) with F > 0, got {self.faces.shape}")
        if not np.isfinite(self.vertices).all():
            raise MeshError("mesh has NaN or infinite vertex coordinates")
        if self.faces.min() < 0 or self.faces.max() >= len(self.vertices):
            raise MeshError("face indices out of range")
        self.winding_threshold = winding_threshold

    def unsigned(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact distance to the surface and the index of the nearest face.

        Args:
            points: (N, 3).
        Returns:
            distance (N,) float64 and face index (N,) int64.
        """
        pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        sq, face, _ = igl.point_mesh_squared_distance(pts, self.vertices, self.faces)
        return np.sqrt(np.maximum(sq, 0.0)), np.asarray(face, dtype=np.int64)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: generalised winding number > threshold (robust to holes)."""
        pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 0:
            return np.zeros(0, dtype=bool)
        return igl.fast_winding_number(self.vertices, self.faces, pts) > self.winding_threshold

    def pseudonormal(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like ``__call__`` but signed by the angle-weighted pseudonormal of the nearest
        feature (libigl ``signed_distance``): one tree query instead of two, right only on
        closed, non-self-intersecting meshes (the hand, optionally)."""
        pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        if len(pts) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        sdf, face, _, _ = igl.signed_distance(
            pts, self.vertices, self.faces,
            sign_type=igl.SignedDistanceType.SIGNED_DISTANCE_TYPE_PSEUDONORMAL)
        return np.asarray(sdf), np.asarray(face, dtype=np.int64)

    def __call__(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance (N,) float64, negative inside, and the nearest face (N,) int64."""
        dist, face = self.unsigned(points)
        return np.where(self.inside(points), -dist, dist), face


def face_parts(faces: np.ndarray, vertex_parts: np.ndarray) -> np.ndarray:
    """Part label of every face: majority of its 3 vertices, the first vertex's on a 3-way tie.

    Args:
        faces: (F, 3) int.
        vertex_parts: (V,) int labels.
    Returns:
        (F,) uint8.
    """
    p = np.asarray(vertex_parts)[np.asarray(faces)]  # (F, 3)
    out = p[:, 0].copy()
    second = (p[:, 1] == p[:, 2]) & (p[:, 1] != p[:, 0])  # vertices 1 and 2 outvote vertex 0
    out[second] = p[second, 1]
    return out.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------


@dataclass
class SetSamples:
    """One set of a sample (hand or object): rows ordered outside first, then inside.

    Attributes:
        data: (n, 5) float32 ``x, y, z, sdf_hand, sdf_obj`` in the hand frame.
        part: (n,) uint8 part of the nearest hand face.
        num_pos: rows ``[:num_pos]`` are outside this set's mesh (sdf > 0).
    """

    data: np.ndarray
    part: np.ndarray
    num_pos: int


@dataclass
class PairSamples:
    """Both sets of one sample, plus the hand-frame origin (camera metres)."""

    hand: SetSamples
    obj: SetSamples
    wrist: np.ndarray


def sample_surface(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> np.ndarray:
    """Area-weighted uniform samples on the surface: (count, 3)."""
    tris = mesh.vertices[mesh.faces]  # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    total = area.sum()
    if not np.isfinite(total) or total <= 0:
        raise MeshError("mesh has zero surface area (degenerate faces)")
    face = rng.choice(len(area), size=count, p=area / total)
    u, v = rng.random((2, count))
    flip = u + v > 1.0  # reflect into the triangle
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tris[face]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def ray_points(surface: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator,
               min_depth: float = 0.01) -> np.ndarray:
    """Points uniform along the camera rays through ``surface`` (K, 3) camera metres (camera at
    the origin), on each ray's segment inside the box ``[lo, hi]`` (3,) and in front of the
    camera (``t >= min_depth`` metres along the ray). A ray that misses the box keeps its
    surface point. Returns (K, 3)."""
    dist = np.linalg.norm(surface, axis=1, keepdims=True)
    direction = surface / np.maximum(dist, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = lo / direction
        t2 = hi / direction
    # slab test; an axis the ray is parallel to constrains nothing (its origin 0 is inside the
    # slab for the reconstruction cube around a hand in front of the camera)
    parallel = np.abs(direction) < 1e-12
    t_near = np.where(parallel, -np.inf, np.minimum(t1, t2)).max(axis=1)
    t_far = np.where(parallel, np.inf, np.maximum(t1, t2)).min(axis=1)
    t_near = np.maximum(t_near, min_depth)
    hit = t_far > t_near
    t = np.where(hit, t_near + rng.random(len(surface)) * (t_far - t_near), dist[:, 0])
    return direction * t[:, None]


def draw_points(mesh: trimesh.Trimesh, center: np.ndarray, radius: float,
                cfg: SampleSDFConfig, rng: np.random.Generator,
                wrist: np.ndarray | None = None, half_side: float = 0.0) -> np.ndarray:
    """Query points of one set, camera metres: (points_per_mesh, 3).

    Near-surface points, then uniform ones in the bounding sphere's cube, then (with
    ``recon_cube_fraction`` > 0) uniform ones in the cube ``wrist +- half_side``, then (with
    ``ray_fraction`` > 0) uniform ones along the camera rays through surface samples, inside
    that cube.
    """
    n_near = int(round(cfg.points_per_mesh * cfg.near_fraction))
    n_surf = n_near // 2
    n_recon = int(round(cfg.points_per_mesh * cfg.recon_cube_fraction))
    n_ray = int(round(cfg.points_per_mesh * cfg.ray_fraction))
    if (n_recon or n_ray) and (wrist is None or not half_side > 0):
        raise ValueError("recon_cube_fraction or ray_fraction > 0 needs the wrist and the "
                         "cube's half side")
    n_recon = min(n_recon, cfg.points_per_mesh - 2 * n_surf)
    n_ray = min(n_ray, cfg.points_per_mesh - 2 * n_surf - n_recon)
    surf = sample_surface(mesh, n_surf, rng)
    coarse = surf + rng.normal(0.0, np.sqrt(cfg.variance) * radius, surf.shape)
    fine = surf + rng.normal(0.0, np.sqrt(cfg.second_variance) * radius, surf.shape)
    n_uniform = cfg.points_per_mesh - 2 * n_surf - n_recon - n_ray
    uniform = center + (rng.random((n_uniform, 3)) - 0.5) * cfg.cube * radius
    parts = [coarse, fine, uniform]
    if n_recon:
        parts.append(np.asarray(wrist) + (rng.random((n_recon, 3)) * 2 - 1) * half_side)
    if n_ray:
        wrist = np.asarray(wrist, dtype=np.float64)
        parts.append(ray_points(sample_surface(mesh, n_ray, rng), wrist - half_side,
                                wrist + half_side, rng))
    return np.concatenate(parts, axis=0)


def sample_seed(seed: int, sample_id: str) -> list[int]:
    """Seed of one sample's generator: the config seed and the id's bytes."""
    return [int(seed)] + list(sample_id.encode("utf-8"))


def sample_pair(hand: trimesh.Trimesh, hand_vertex_parts: np.ndarray, obj: trimesh.Trimesh,
                wrist: np.ndarray, recon_scale: float, cfg: SampleSDFConfig,
                rng: np.random.Generator) -> PairSamples:
    """Sample the hand set and the object set of one hand-object pair.

    Args:
        hand: watertight hand mesh, camera metres.
        hand_vertex_parts: (V_hand,) part label per hand vertex.
        obj: object mesh, camera metres (need not be watertight).
        wrist: (3,) origin of the hand frame, camera metres.
        recon_scale: hand-frame scale; points and distances are multiplied by ``recon_scale / 2``.
        cfg: sampling settings.
        rng: random generator.
    Returns:
        both sets, in the hand frame.
    """
    hand_sdf = MeshSDF(hand.vertices, hand.faces, cfg.winding_threshold)
    obj_sdf = MeshSDF(obj.vertices, obj.faces, cfg.winding_threshold)
    parts = face_parts(hand_sdf.faces, hand_vertex_parts)
    both = np.concatenate([hand_sdf.vertices, obj_sdf.vertices])
    center = 0.5 * (both.min(axis=0) + both.max(axis=0))
    radius = float(np.linalg.norm(both - center, axis=1).max()) * cfg.buffer
    if not radius > 0:
        raise MeshError("hand and object meshes are a single point")
    wrist = np.asarray(wrist, dtype=np.float64).reshape(3)
    factor = recon_scale / 2.0
    drawn = [draw_points(mesh, center, radius, cfg, rng, wrist, 1.0 / factor)
             for mesh in (hand, obj)]
    pts = np.concatenate(drawn)  # (2n, 3) camera metres: hand set, then object set
    if cfg.hand_sign == "pseudonormal":
        d_hand, face = hand_sdf.pseudonormal(pts)
    else:
        d_hand, face = hand_sdf(pts)
    d_obj, _ = obj_sdf(pts)
    data = np.empty((len(pts), 5), dtype=np.float64)
    data[:, :3] = (pts - wrist) * factor
    data[:, 3] = d_hand * factor
    data[:, 4] = d_obj * factor
    part = parts[face]
    sets = {}
    start = 0
    for name, own, block in (("hand", 3, drawn[0]), ("obj", 4, drawn[1])):
        rows = slice(start, start + len(block))
        start += len(block)
        pos = data[rows, own] > 0
        order = np.concatenate([np.flatnonzero(pos), np.flatnonzero(~pos)])
        sets[name] = SetSamples(data[rows][order].astype(np.float32), part[rows][order],
                                int(pos.sum()))
    return PairSamples(hand=sets["hand"], obj=sets["obj"], wrist=wrist)


__all__ = [
    "DATA_COLUMNS", "MeshSDF", "NUM_PARTS", "PairSamples", "SETS", "SampleSDFConfig", "SetSamples",
    "draw_points", "face_parts", "ray_points", "sample_pair", "sample_seed", "sample_surface",
]
