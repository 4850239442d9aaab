"""CPU renderer: ray casting with Embree (through trimesh), supersampled, Lambert + ambient shading
with a small specular term. Produces an RGB image, a segmentation mask and a depth map.

No GPU or display is needed. One 256x256 image with 2x2 supersampling casts 262,144 rays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from gsdf.synth.camera import Camera

BACKGROUND, HAND, OBJECT = 0, 1, 2


@dataclass(frozen=True)
class RenderMesh:
    """One mesh to draw, in camera space.

    Attributes:
        vertices: (V, 3) metres, camera space.
        faces: (F, 3) int.
        color: (3,) albedo in [0, 1].
        label: mask label written where this mesh is visible (1 hand, 2 object).
        smooth_angle: split vertices at edges sharper than this (radians) before smoothing the
            normals (boxes, cylinder caps); ``None`` smooths across every edge (the hand).
        specular: strength of the Blinn-Phong highlight.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: np.ndarray
    label: int
    smooth_angle: float | None = None
    specular: float = 0.0


@dataclass(frozen=True)
class Lighting:
    """Directional lights plus ambient, in camera space.

    Attributes:
        ambient: (3,) ambient RGB intensity.
        directions: (L, 3) unit vectors from the surface towards each light.
        intensities: (L, 3) RGB intensity of each light.
    """

    ambient: np.ndarray
    directions: np.ndarray
    intensities: np.ndarray


@dataclass(frozen=True)
class Rendered:
    """Render outputs.

    Attributes:
        rgb: (H, W, 3) uint8.
        mask: (H, W) uint8, 0 background, 1 hand, 2 object (majority of the sub-samples).
        depth: (H, W) float32, camera z in metres of the visible surface, 0 on background.
    """

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


def _shading_mesh(mesh: RenderMesh) -> trimesh.Trimesh:
    tm = trimesh.Trimesh(np.asarray(mesh.vertices, dtype=np.float64),
                         np.asarray(mesh.faces, dtype=np.int64), process=False)
    if mesh.smooth_angle is not None:
        tm = trimesh.graph.smooth_shade(tm, angle=mesh.smooth_angle, facet_minarea=None)
    return tm


def render(meshes: list[RenderMesh], camera: Camera, lighting: Lighting,
           background: np.ndarray, supersample: int = 2) -> Rendered:
    """Render ``meshes`` seen from the camera at the origin.

    Args:
        meshes: the meshes, camera space, metres.
        camera: intrinsics and image size.
        lighting: lights in camera space.
        background: (H, W, 3) float RGB in [0, 1].
        supersample: ``s`` gives ``s x s`` rays per pixel (anti-aliasing).

    Returns:
        :class:`Rendered`.
    """
    h, w, s2 = camera.height, camera.width, int(supersample) ** 2
    if background.shape != (h, w, 3):
        raise ValueError(f"background must be ({h}, {w}, 3), got {background.shape}")
    dirs = camera.rays(supersample).reshape(-1, 3)  # (H*W*s2, 3)
    colors = np.repeat(np.asarray(background, dtype=np.float64).reshape(h * w, 1, 3), s2, axis=1)
    colors = colors.reshape(-1, 3)  # (H*W*s2, 3): background where no surface is hit
    labels = np.zeros(len(dirs), dtype=np.uint8)
    zbuf = np.zeros(len(dirs))
    parts = [_shading_mesh(m) for m in meshes]
    if parts:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
        verts = np.concatenate([p.vertices for p in parts])
        normals = np.concatenate([p.vertex_normals for p in parts])
        faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets[:-1], strict=True)])
        face_mesh = np.concatenate([np.full(len(p.faces), i) for i, p in enumerate(parts)])
        scene = trimesh.Trimesh(verts, faces, process=False)
        tri, ray, loc = RayMeshIntersector(scene).intersects_id(
            np.zeros_like(dirs), dirs, multiple_hits=False, return_locations=True)
        if len(tri):
            bary = trimesh.triangles.points_to_barycentric(verts[faces[tri]], loc)
            n = np.einsum("nk,nkd->nd", bary, normals[faces[tri]])
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            d = dirs[ray]
            n = np.where((np.einsum("nd,nd->n", n, d) > 0)[:, None], -n, n)  # face the camera
            which = face_mesh[tri]
            albedo = np.stack([np.asarray(m.color, dtype=np.float64) for m in meshes])[which]
            spec_k = np.array([m.specular for m in meshes])[which]
            light = np.broadcast_to(np.asarray(lighting.ambient, dtype=np.float64), n.shape).copy()
            spec = np.zeros_like(n)
            for ldir, lint in zip(lighting.directions, lighting.intensities, strict=True):
                ndl = np.clip(n @ ldir, 0.0, None)
                light += ndl[:, None] * lint
                half = ldir[None] - d
                half /= np.linalg.norm(half, axis=1, keepdims=True)
                spec += (spec_k * np.clip(np.einsum("nd,nd->n", n, half), 0.0, None) ** 24
                         * (ndl > 0))[:, None] * lint
            colors[ray] = albedo * light + spec
            labels[ray] = np.array([m.label for m in meshes], dtype=np.uint8)[which]
            zbuf[ray] = loc[:, 2]
    rgb = colors.reshape(h, w, s2, 3).mean(axis=2)
    rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    lab = labels.reshape(h, w, s2)
    counts = np.stack([(lab == k).sum(-1) for k in (OBJECT, HAND, BACKGROUND)], axis=-1)
    mask = np.array([OBJECT, HAND, BACKGROUND], dtype=np.uint8)[counts.argmax(-1)]  # ties: fg
    sel = lab == mask[..., None]
    z = zbuf.reshape(h, w, s2)
    depth = np.where(mask > 0, (z * sel).sum(-1) / np.maximum(sel.sum(-1), 1), 0.0)
    return Rendered(rgb, mask, depth.astype(np.float32))
