"""Procedural objects for the synthetic dataset, and user meshes (DESIGN.md section 4).

Every object is a triangle mesh in its **rest frame**: metres, centred on the centre of its
axis-aligned bounding box. Procedural objects are closed (watertight) surfaces; user meshes are
used as they are (they need not be watertight) after centring and rescaling.

Size convention: ``size`` is the largest extent of the rest bounding box (metres); every other
extent is at least ``min_thickness`` so that the object stays graspable and visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import igl
import numpy as np
import trimesh

from gsdf.geometry.mesh_io import MeshError, load_mesh

# Files a user-mesh folder may hold (what trimesh reads without extra dependencies).
USER_MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


@dataclass(frozen=True)
class ObjectMesh:
    """An object in its rest frame.

    Attributes:
        vertices: (V, 3) float64, metres, bounding-box centre at the origin.
        faces: (F, 3) int64.
        family: family name (``box``, ``cylinder`` ... or ``user:<file name>``).
    """

    vertices: np.ndarray
    faces: np.ndarray
    family: str

    @property
    def rest_corners(self) -> np.ndarray:
        """(8, 3) corners of the rest-frame bounding box, metres (x fastest: binary order)."""
        return bbox_corners(self.vertices)

    @property
    def rest_center(self) -> np.ndarray:
        """(3,) centre of the rest-frame bounding box (the origin up to rounding)."""
        lo, hi = self.vertices.min(0), self.vertices.max(0)
        return (lo + hi) / 2

    @property
    def extents(self) -> np.ndarray:
        """(3,) extents of the rest bounding box, metres."""
        return self.vertices.max(0) - self.vertices.min(0)


def bbox_corners(points: np.ndarray) -> np.ndarray:
    """(8, 3) corners of the axis-aligned box of ``points`` (N, 3); corner ``i`` takes the max
    along axis ``a`` iff bit ``a`` of ``i`` is set."""
    lo, hi = points.min(0), points.max(0)
    idx = np.arange(8)
    bits = np.stack([(idx >> a) & 1 for a in range(3)], axis=1).astype(bool)  # (8, 3)
    return np.where(bits, hi, lo)


# ----------------------------------------------------------------------------------------------
# Surfaces of revolution (cone, frustum, bottle, mug body)
# ----------------------------------------------------------------------------------------------


def revolve(profile: np.ndarray, sections: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about the z axis.

    Args:
        profile: (P, 2) points ``(r, z)`` from the bottom pole to the top pole; the first and last
            points must have ``r == 0`` (they become the poles), the others ``r > 0``.
        sections: number of angular sections.

    Returns:
        vertices (2 + (P-2)*sections, 3), faces (2*(P-2)*sections... , 3) with outward normals.
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.ndim != 2 or profile.shape[1] != 2 or len(profile) < 3:
        raise ValueError(f"profile must be (P>=3, 2), got {profile.shape}")
    if profile[0, 0] != 0 or profile[-1, 0] != 0 or (profile[1:-1, 0] <= 0).any():
        raise ValueError("profile must start and end on the axis (r = 0) and stay off it between")
    rings = profile[1:-1]
    n_rings = len(rings)
    theta = np.arange(sections) * (2 * np.pi / sections)
    ring_v = np.stack([
        rings[:, None, 0] * np.cos(theta)[None],
        rings[:, None, 0] * np.sin(theta)[None],
        np.repeat(rings[:, None, 1], sections, axis=1),
    ], axis=-1).reshape(-1, 3)  # (n_rings * sections, 3)
    bottom = np.array([[0.0, 0.0, profile[0, 1]]])
    top = np.array([[0.0, 0.0, profile[-1, 1]]])
    vertices = np.concatenate([bottom, ring_v, top])
    top_idx = len(vertices) - 1
    j = np.arange(sections)
    jn = (j + 1) % sections
    faces = [np.stack([np.zeros(sections, dtype=np.int64), 1 + jn, 1 + j], axis=1)]
    for r in range(n_rings - 1):
        a = 1 + r * sections + j
        b = 1 + r * sections + jn
        c = 1 + (r + 1) * sections + j
        d = 1 + (r + 1) * sections + jn
        faces += [np.stack([a, b, d], axis=1), np.stack([a, d, c], axis=1)]
    last = 1 + (n_rings - 1) * sections
    faces.append(np.stack([last + j, last + jn, np.full(sections, top_idx)], axis=1))
    return vertices, np.concatenate(faces).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# Families. Each builder takes (rng, size, min_thickness) and returns (vertices, faces).
# ----------------------------------------------------------------------------------------------


def _thick(value: float, min_thickness: float, size: float) -> float:
    return float(np.clip(value, min_thickness, size))


def _box(rng: np.random.Generator, size: float, tmin: float):
    ext = np.array([size, _thick(size * rng.uniform(0.3, 1.0), tmin, size),
                    _thick(size * rng.uniform(0.3, 1.0), tmin, size)])
    mesh = trimesh.creation.box(extents=ext)
    return mesh.vertices, mesh.faces


def _cylinder(rng: np.random.Generator, size: float, tmin: float):
    if rng.random() < 0.7:  # tall: can, bottle-like
        height = size
        radius = _thick(size * rng.uniform(0.25, 0.7), tmin, size) / 2
    else:  # flat: puck, jar lid
        radius = size / 2
        height = _thick(size * rng.uniform(0.3, 1.0), tmin, size)
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=40)
    return mesh.vertices, mesh.faces


def _ellipsoid(rng: np.random.Generator, size: float, tmin: float):
    semi = np.array([size, _thick(size * rng.uniform(0.5, 1.0), tmin, size),
                     _thick(size * rng.uniform(0.5, 1.0), tmin, size)]) / 2
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    return mesh.vertices * semi, mesh.faces


def _capsule(rng: np.random.Generator, size: float, tmin: float):
    radius = _thick(size * rng.uniform(0.18, 0.4), tmin, size) / 2
    height = max(size - 2 * radius, 1e-3)  # cylinder part
    mesh = trimesh.creation.capsule(height=height, radius=radius, count=[24, 24])
    return mesh.vertices, mesh.faces


def _torus(rng: np.random.Generator, size: float, tmin: float):
    minor = max(size / 2 * rng.uniform(0.2, 0.4), tmin / 2)
    major = max(size / 2 - minor, 1.3 * minor)
    mesh = trimesh.creation.torus(major_radius=major, minor_radius=minor,
                                  major_sections=40, minor_sections=20)
    return mesh.vertices, mesh.faces


def _frustum(rng: np.random.Generator, size: float, tmin: float):
    if rng.random() < 0.5:
        height = size
        r_big = _thick(size * rng.uniform(0.35, 0.8), tmin, size) / 2
    else:
        r_big = size / 2
        height = _thick(size * rng.uniform(0.4, 1.0), tmin, size)
    r_small = r_big * rng.uniform(0.0, 0.7)
    prof = [(0.0, 0.0), (r_big, 0.0)]
    prof += [(r_small, height)] if r_small > 1e-3 else [(1e-4, height)]
    prof += [(0.0, height)]
    return revolve(np.array(prof), sections=40)


def _bottle(rng: np.random.Generator, size: float, tmin: float):
    height = size
    radius = _thick(size * rng.uniform(0.25, 0.45), tmin, size) / 2
    neck_r = radius * rng.uniform(0.3, 0.5)
    body_h = height * rng.uniform(0.5, 0.7)
    shoulder_h = height * rng.uniform(0.1, 0.2)
    z = [0.0, 0.0, body_h, body_h + shoulder_h * 0.5, body_h + shoulder_h, height, height]
    r = [0.0, radius, radius, (radius + neck_r) / 2 * 1.1, neck_r, neck_r, 0.0]
    # A rounded bottom edge: one extra ring just above the base.
    z.insert(2, height * 0.02)
    r.insert(2, radius)
    r[1] = radius * 0.92
    return revolve(np.stack([r, z], axis=1), sections=40)


def _mug(rng: np.random.Generator, size: float, tmin: float):
    height = _thick(size * rng.uniform(0.6, 1.0), tmin, size)
    radius = _thick(size * rng.uniform(0.3, 0.6), tmin, size) / 2
    bv, bf = revolve(np.array([(0.0, 0.0), (radius, 0.0), (radius * 1.03, height),
                               (0.0, height)]), sections=40)
    # The handle: a torus of which the body hides the inner half, on the +x side.
    major = height * rng.uniform(0.25, 0.35)
    minor = max(major * 0.22, 0.004)
    handle = trimesh.creation.torus(major_radius=major, minor_radius=minor,
                                    major_sections=28, minor_sections=12)
    hv = np.asarray(handle.vertices)[:, [0, 2, 1]]  # the ring stands in the x-z plane
    hf = np.asarray(handle.faces)[:, [0, 2, 1]]  # swapping two axes flips orientation back
    hv = hv + np.array([radius, 0.0, height / 2])
    return np.concatenate([bv, hv]), np.concatenate([bf, hf + len(bv)])


FAMILIES: dict[str, Callable[[np.random.Generator, float, float], tuple]] = {
    "box": _box,
    "cylinder": _cylinder,
    "ellipsoid": _ellipsoid,
    "capsule": _capsule,
    "torus": _torus,
    "frustum": _frustum,
    "bottle": _bottle,
    "mug": _mug,
}


def check_families(families: list[str] | tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming any unknown family."""
    if not families:
        raise ValueError(f"synth.families is empty; allowed families: {sorted(FAMILIES)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown object family {unknown}; allowed families: {sorted(FAMILIES)}")


def _centre(vertices: np.ndarray) -> np.ndarray:
    lo, hi = vertices.min(0), vertices.max(0)
    return vertices - (lo + hi) / 2


def make_object(family: str, rng: np.random.Generator, size: float,
                min_thickness: float = 0.03) -> ObjectMesh:
    """A random object of ``family`` whose largest rest extent is ``size`` metres.

    Raises:
        ValueError: unknown family, or a non-positive size / thickness.
    """
    check_families([family])
    if not size > 0 or not min_thickness > 0:
        raise ValueError(f"object size ({size}) and min_thickness ({min_thickness}) must be > 0")
    vertices, faces = FAMILIES[family](rng, float(size), float(min(min_thickness, size)))
    vertices = np.asarray(vertices, dtype=np.float64)
    # Rescale so the largest extent is exactly `size` (the builders are close but not exact).
    vertices = _centre(vertices)
    vertices *= size / np.ptp(vertices, axis=0).max()
    return ObjectMesh(vertices, np.asarray(faces, dtype=np.int64), family)


@dataclass(frozen=True)
class UserMeshes:
    """The readable meshes of a user folder (rest frame, centred, original scale) and the files
    that could not be read (path, reason)."""

    meshes: tuple[ObjectMesh, ...]
    skipped: tuple[tuple[str, str], ...]


def files_in(folder: str | Path, suffixes: tuple[str, ...], key: str, what: str) -> list[Path]:
    """The files of ``folder`` whose suffix is one of ``suffixes``, sorted.

    Raises:
        FileNotFoundError: naming the config ``key``, if the folder is missing or holds no such
            file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{key}: folder {folder} not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise FileNotFoundError(f"{key}: no {what} ({', '.join(suffixes)}) in {folder}")
    return files


def load_user_meshes(folder: str | Path) -> UserMeshes:
    """Read every mesh file of ``folder`` (sorted by name, not recursive).

    Unreadable, empty or degenerate files are skipped and listed in ``skipped``.

    Raises:
        FileNotFoundError: the folder does not exist or holds no mesh file.
        ValueError: no file in the folder could be read.
    """
    files = files_in(folder, USER_MESH_SUFFIXES, "synth.user_mesh_dir", "mesh file")
    meshes, skipped = [], []
    for path in files:
        try:
            mesh = load_mesh(path)
            vertices = np.asarray(mesh.vertices, dtype=np.float64)
            if np.ptp(vertices, axis=0).max() <= 0:
                raise MeshError(f"{path}: degenerate mesh (zero extent)")
        except MeshError as err:
            skipped.append((str(path), str(err)))
            continue
        meshes.append(ObjectMesh(_centre(vertices), np.asarray(mesh.faces, dtype=np.int64),
                                 f"user:{path.name}"))
    if not meshes:
        raise ValueError(f"synth.user_mesh_dir: none of the {len(files)} files in {folder} could "
                         f"be read: {skipped[:3]}")
    return UserMeshes(tuple(meshes), tuple(skipped))


def scale_object(obj: ObjectMesh, size: float) -> ObjectMesh:
    """``obj`` rescaled so that its largest rest extent is ``size`` metres."""
    if not size > 0:
        raise ValueError(f"object size must be > 0, got {size}")
    return ObjectMesh(obj.vertices * (size / np.ptp(obj.vertices, axis=0).max()), obj.faces,
                      obj.family)


class MeshSDF:
    """Signed distance to a triangle mesh (negative inside).

    Closed meshes get the sign from libigl's pseudo-normals (fast); other meshes (user meshes that
    are not watertight) from the fast winding number, which stays right for open or overlapping
    parts.

    Args:
        vertices: (V, 3) float, metres.
        faces: (F, 3) int.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self.vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(faces, dtype=np.int64)
        self.watertight = trimesh.Trimesh(self.vertices, self.faces, process=False).is_watertight
        self._tree = igl.AABB()
        self._tree.init(self.vertices, self.faces)

    def __call__(self, points: np.ndarray, bound: float | None = None) -> np.ndarray:
        """Signed distances (N,) of ``points`` (N, 3), metres; negative inside.

        Args:
            points: (N, 3) query points, metres.
            bound: if given, only distances within ``[-bound, bound]`` are computed exactly
                (much faster); points farther from the surface get ``+inf`` whichever side
                they are on.
        """
        points = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points) == 0:
            return np.zeros(0)
        if self.watertight:
            if bound is None:
                return igl.signed_distance(points, self.vertices, self.faces)[0]
            d = igl.signed_distance(points, self.vertices, self.faces, lower_bound=-bound,
                                    upper_bound=bound)[0]
            return np.where(np.isfinite(d) & (np.abs(d) <= bound), d, np.inf)
        sq, _, _ = self._tree.squared_distance(self.vertices, self.faces, points)
        wn = igl.fast_winding_number(self.vertices, self.faces, points)
        dist = np.sqrt(np.maximum(sq, 0.0))
        d = np.where(wn > 0.5, -dist, dist)
        return d if bound is None else np.where(np.abs(d) <= bound, d, np.inf)
