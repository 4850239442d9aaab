"""Pictures for the report: input image | ground truth | prediction, from two viewpoints.

Meshes are rendered on the CPU by ray casting (trimesh, embree when installed) with a simple
Lambertian shading; hand in skin colour, object in blue. Viewpoint 1 is the dataset camera
(OpenCV: x right, y down, z forward), viewpoint 2 the same scene turned 90 degrees about the
vertical axis through its centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh
from PIL import Image, ImageDraw

from gsdf.eval.metrics import largest_component
from gsdf.geometry.mesh_io import MeshError, load_mesh
from gsdf.paths import PredictionLayout, SplitLayout
from gsdf.utils.io import atomic_path

HAND_RGB = np.array([224, 172, 140], dtype=np.float64)
OBJ_RGB = np.array([90, 140, 220], dtype=np.float64)
BACKGROUND = 255


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def render_meshes(meshes: Sequence[tuple[trimesh.Trimesh, np.ndarray]], size: int = 256,
                  yaw: float = 0.0, center: np.ndarray | None = None,
                  extent: float | None = None) -> np.ndarray:
    """Ray-cast coloured meshes seen by a pinhole camera looking along +z.

    Args:
        meshes: ``(mesh in metres, rgb (3,) 0..255)`` pairs.
        size: output width and height, pixels.
        yaw: rotation of the scene about the vertical (y) axis through ``center``, radians.
        center: (3,) point the camera looks at; default the centre of all vertices.
        extent: half-size of the visible square at ``center``, metres; default fits the scene.

    Returns:
        (size, size, 3) uint8 image.
    """
    image = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    meshes = [(m, c) for m, c in meshes if m is not None and len(m.faces)]
    if not meshes:
        return image
    verts = np.concatenate([m.vertices for m, _ in meshes])
    center = verts.mean(0) if center is None else np.asarray(center, np.float64)
    rot = _rotation_y(yaw)
    moved = [(trimesh.Trimesh((m.vertices - center) @ rot.T, m.faces, process=False), c)
             for m, c in meshes]
    if extent is None:
        extent = 1.15 * float(np.abs(np.concatenate([m.vertices for m, _ in moved])[:, :2]).max())
    extent = max(extent, 1e-3)
    distance = 6.0 * extent  # camera at (0, 0, -distance), field of view fitting 2 * extent
    focal = size / 2 * distance / extent
    u, v = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    dirs = np.stack([(u - size / 2) / focal, (v - size / 2) / focal, np.ones_like(u)], -1)
    dirs = (dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)).reshape(-1, 3)
    origin = np.array([0.0, 0.0, -distance])
    colours, ray_idx, _ = _cast(moved, origin, dirs)
    flat = image.reshape(-1, 3)
    flat[ray_idx] = colours
    return flat.reshape(size, size, 3)


def _cast(meshes: Sequence[tuple[trimesh.Trimesh, np.ndarray]], origin: np.ndarray,
          dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hits of rays from ``origin`` (3,) along ``dirs`` (R, 3) on coloured meshes.

    Returns:
        shaded colours (H, 3) uint8, the ray index (H,) and the mesh index (H,) of each hit.
    """
    scene = trimesh.util.concatenate([m for m, _ in meshes])
    colours = np.concatenate([np.tile(c, (len(m.faces), 1)) for m, c in meshes])
    owner = np.concatenate([np.full(len(m.faces), i) for i, (m, _) in enumerate(meshes)])
    _, ray_idx, tri_idx = scene.ray.intersects_location(
        np.tile(origin, (len(dirs), 1)), dirs, multiple_hits=False)
    normals = scene.face_normals[tri_idx]
    light = np.array([0.3, -0.5, -1.0])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.abs(normals @ light)
    shaded = np.clip(colours[tri_idx] * shade[:, None], 0, 255).astype(np.uint8)
    return shaded, ray_idx, owner[tri_idx]


def render_camera(meshes: Sequence[tuple[trimesh.Trimesh | None, np.ndarray]],
                  cam_intr: np.ndarray, width: int, height: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast camera-space meshes through the real camera ``cam_intr`` (3, 3) (OpenCV
    camera at the origin; pixel ``(u, v)`` covers ``[u, u+1) x [v, v+1)``).

    Args:
        meshes: ``(mesh in camera metres or None, rgb (3,))`` pairs.
        cam_intr: (3, 3) intrinsics of a ``width`` x ``height`` image.

    Returns:
        image (H, W, 3) uint8 (background 0) and labels (H, W) int: -1 background, else the
        index in ``meshes`` of the mesh seen in the pixel.
    """
    image = np.zeros((height, width, 3), dtype=np.uint8)
    labels = np.full(height * width, -1, dtype=np.int64)
    kept = [(i, m, c) for i, (m, c) in enumerate(meshes) if m is not None and len(m.faces)]
    if not kept:
        return image, labels.reshape(height, width)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    k = np.asarray(cam_intr, dtype=np.float64)
    dirs = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    dirs = (dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)).reshape(-1, 3)
    colours, ray_idx, owner = _cast([(m, c) for _, m, c in kept], np.zeros(3), dirs)
    flat = image.reshape(-1, 3)
    flat[ray_idx] = colours
    labels[ray_idx] = np.array([i for i, _, _ in kept])[owner]
    return flat.reshape(height, width, 3), labels.reshape(height, width)


def _load_or_none(path: Path, keep_largest: bool = False) -> trimesh.Trimesh | None:
    try:
        mesh = load_mesh(path)
    except MeshError:
        return None
    return largest_component(mesh) if keep_largest else mesh


def sample_panel(rgb_path: Path, gt: tuple[Path, Path], pred: tuple[Path, Path],
                 title: str, size: int = 256, keep_largest: bool = False) -> Image.Image:
    """One row: input | GT camera view | GT side view | prediction camera | prediction side.

    ``keep_largest``: draw only the largest connected component of each predicted mesh (what
    ``evaluate`` scores with its ``largest_component`` setting)."""
    gt_hand, gt_obj = (_load_or_none(p) for p in gt)
    pr_hand, pr_obj = (_load_or_none(p, keep_largest) for p in pred)
    gt_meshes = [(gt_hand, HAND_RGB), (gt_obj, OBJ_RGB)]
    pr_meshes = [(pr_hand, HAND_RGB), (pr_obj, OBJ_RGB)]
    # Same framing for GT and prediction: the GT scene's centre and size.
    known = [m for m in (gt_hand, gt_obj, pr_hand, pr_obj) if m is not None]
    center = np.concatenate([m.vertices for m in known]).mean(0) if known else None
    tiles = []
    if rgb_path.exists():
        tiles.append(np.asarray(Image.open(rgb_path).convert("RGB").resize((size, size))))
    else:
        tiles.append(np.full((size, size, 3), 200, np.uint8))
    extent = None
    if known:
        span = np.concatenate([m.vertices for m in known]) - center
        extent = 1.15 * float(np.linalg.norm(span, axis=1).max())
    for meshes in (gt_meshes, pr_meshes):
        for yaw in (0.0, np.pi / 2):
            tiles.append(render_meshes(meshes, size, yaw, center, extent))
    row = Image.fromarray(np.concatenate(tiles, axis=1))
    canvas = Image.new("RGB", (row.width, row.height + 20), "white")
    canvas.paste(row, (0, 20))
    ImageDraw.Draw(canvas).text(
        (4, 4), f"{title}    input | ground truth (camera, side) | prediction (camera, side)",
        fill="black")
    return canvas


def ranked_ids(per_sample: pd.DataFrame, column: str = "chamfer_hand_cm2") -> dict[str, str]:
    """Ids of the best, median and worst samples by ``column`` (lower is better)."""
    valid = per_sample[np.isfinite(pd.to_numeric(per_sample[column], errors="coerce"))]
    if valid.empty:
        return {}
    order = valid.sort_values(column, kind="stable")
    return {"best": order.iloc[0]["id"], "median": order.iloc[(len(order) - 1) // 2]["id"],
            "worst": order.iloc[-1]["id"]}


def _panel(gt: SplitLayout, pred: PredictionLayout, sid: str, title: str, size: int,
           keep_largest: bool) -> Image.Image:
    """:func:`sample_panel` of sample ``sid``: ground truth from ``gt``, prediction from
    ``pred``."""
    return sample_panel(gt.rgb(sid), (gt.mesh("hand", sid), gt.mesh("obj", sid)),
                        (pred.mesh("hand", sid), pred.mesh("obj", sid)), title, size,
                        keep_largest)


def render_ranked(per_sample: pd.DataFrame, gt: SplitLayout, pred: PredictionLayout,
                  label: str, outputs: Sequence[Path], size: int = 256,
                  keep_largest: bool = False) -> None:
    """Write the best / median / worst panels (by hand Chamfer) to ``outputs`` (3 PNGs).

    Args:
        gt: the ground-truth split; pred: the experiment's predictions.
        label: title prefix, e.g. ``"gsdf on synth"``.
        keep_largest: as :func:`sample_panel`.

    With no evaluated sample, each PNG says so instead.
    """
    if len(outputs) != 3:
        raise ValueError(f"expected 3 render outputs (best, median, worst), got {len(outputs)}")
    ranked = ranked_ids(per_sample)
    for which, out in zip(("best", "median", "worst"), outputs, strict=True):
        if which in ranked:
            sid = ranked[which]
            row = per_sample[per_sample["id"] == sid].iloc[0]
            title = f"{label}: {which} sample {sid}, CD hand " \
                    f"{row['chamfer_hand_cm2']:.3f} cm^2"
            panel = _panel(gt, pred, sid, title, size, keep_largest)
        else:
            panel = Image.new("RGB", (5 * size, size), "white")
            ImageDraw.Draw(panel).text((10, 10), f"{label}: no evaluated sample",
                                       fill="black")
        with atomic_path(out) as tmp:
            panel.save(tmp, format="PNG")


def gallery_ids(per_sample: pd.DataFrame, rows: int = 6,
                column: str = "chamfer_hand_cm2") -> list[tuple[float, str]]:
    """``rows`` evaluated samples spread evenly over the ranking by ``column``: the samples at
    the quantiles ``(i + 0.5) / rows`` (no extremes), as ``(quantile, id)``, best first."""
    valid = per_sample[np.isfinite(pd.to_numeric(per_sample[column], errors="coerce"))]
    if valid.empty or rows < 1:
        return []
    order = valid.sort_values(column, kind="stable")["id"].tolist()
    picked: list[tuple[float, str]] = []
    for i in range(min(rows, len(order))):
        q = (i + 0.5) / min(rows, len(order))
        sid = order[min(int(q * len(order)), len(order) - 1)]
        if sid not in [p[1] for p in picked]:
            picked.append((q, sid))
    return picked


def render_gallery(per_sample: pd.DataFrame, gt: SplitLayout, pred: PredictionLayout,
                   label: str, out: Path, rows: int = 6, size: int = 192,
                   keep_largest: bool = False) -> None:
    """Write ``rows`` panels (input | GT camera, side | prediction camera, side) of samples
    spread over the hand-Chamfer ranking (:func:`gallery_ids`), stacked, to ``out`` (PNG): what
    a typical reconstruction looks like, rather than one median sample."""
    panels = []
    for q, sid in gallery_ids(per_sample, rows):
        row = per_sample[per_sample["id"] == sid].iloc[0]
        title = (f"{label}: {sid} (hand-CD quantile {q:.2f}), CD hand "
                 f"{row['chamfer_hand_cm2']:.3f}, object {row['chamfer_obj_cm2']:.3f} cm^2")
        panels.append(_panel(gt, pred, sid, title, size, keep_largest))
    if panels:
        sheet = Image.new("RGB", (max(p.width for p in panels), sum(p.height for p in panels)),
                          "white")
        top = 0
        for panel in panels:
            sheet.paste(panel, (0, top))
            top += panel.height
    else:
        sheet = Image.new("RGB", (5 * size, size), "white")
        ImageDraw.Draw(sheet).text((10, 10), f"{label}: no evaluated sample",
                                   fill="black")
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
