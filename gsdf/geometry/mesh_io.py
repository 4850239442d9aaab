"""Mesh I/O for the canonical layout: PLY files in metres, hand meshes carry a vertex ``part``.

Readers raise :class:`MeshError` (a ``ValueError``) naming the file and what is wrong, so that batch
stages can report and skip a bad sample instead of failing deep inside numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from gsdf.utils.io import atomic_path


class MeshError(ValueError):
    """A mesh file is missing, unreadable, empty or degenerate."""


def save_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray,
              vertex_parts: np.ndarray | None = None,
              vertex_colors: np.ndarray | None = None) -> None:
    """Atomically write a binary PLY.

    Args:
        path: output ``.ply`` path.
        vertices: (V, 3) float, metres.
        faces: (F, 3) int vertex indices.
        vertex_parts: optional (V,) hand part labels (0 palm, 1 thumb .. 5 pinky), stored as the
            uint8 vertex property ``part``.
        vertex_colors: optional (V, 3|4) uint8 colours.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if vertex_colors is not None:
        mesh.visual.vertex_colors = np.asarray(vertex_colors, dtype=np.uint8)
    if vertex_parts is not None:
        parts = np.asarray(vertex_parts)
        if parts.shape != (len(vertices),):
            raise ValueError(f"vertex_parts has shape {parts.shape}, expected ({len(vertices)},)")
        mesh.vertex_attributes["part"] = parts.astype(np.uint8)
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type="ply", encoding="binary")


def load_mesh(path: str | Path, require_faces: bool = True) -> trimesh.Trimesh:
    """Read a mesh (no processing: vertex order is preserved) and check it is usable.

    Raises:
        MeshError: missing file, unreadable file, no vertices or faces, non-finite vertices.
    """
    path = Path(path)
    if not path.exists():
        raise MeshError(f"{path}: file not found")
    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as err:  # trimesh raises many types for corrupt files
        raise MeshError(f"{path}: unreadable mesh ({type(err).__name__}: {err})") from err
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.vertices) == 0:
        raise MeshError(f"{path}: empty mesh (no vertices)")
    if require_faces and len(mesh.faces) == 0:
        raise MeshError(f"{path}: mesh has no faces")
    if not np.isfinite(mesh.vertices).all():
        raise MeshError(f"{path}: mesh has NaN or infinite vertex coordinates")
    return mesh


def load_vertex_parts(mesh: trimesh.Trimesh, path: str | Path = "<mesh>") -> np.ndarray:
    """The ``part`` vertex property of a hand PLY read by :func:`load_mesh`: (V,) int64.

    Raises:
        MeshError: if the PLY has no ``part`` property.
    """
    raw = mesh.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if raw is not None and raw.dtype.names and "part" in raw.dtype.names:
        return np.asarray(raw["part"]).astype(np.int64).reshape(-1)
    if "part" in getattr(mesh, "vertex_attributes", {}):
        return np.asarray(mesh.vertex_attributes["part"]).astype(np.int64).reshape(-1)
    raise MeshError(f"{path}: hand mesh has no per-vertex 'part' property")
