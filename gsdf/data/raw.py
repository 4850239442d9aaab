"""What the readers of the real datasets (:mod:`gsdf.data.obman`, :mod:`gsdf.data.dexycb`) share:
the record they return, the two kinds of bad input, and small geometry helpers (crops, boxes,
object meshes).

Bad input comes in two kinds (docs/real_datasets.md, section "Bad input"):

* :class:`RawDataError` -- the download is missing or laid out differently (root, ShapeNet model,
  calibration, MANO pickle): the stage stops at its start, the message names the config key, the
  layout expected and the README section;
* :class:`SampleError` -- one sample's files are unreadable or its annotation is broken: the
  sample is skipped, its reason goes to the shard manifest, the run goes on.

A sample the reference's selection rules leave out (DexYCB: no hand annotation, no contact in a
test frame) is not an error: the reader raises :class:`Excluded` and the stage counts it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import trimesh

CROP_SIZE = 256
"""Side of the canonical RGB crop (docs/architecture.md, ``rgb/{id}.jpg``)."""

README_SECTION = "README.md section 'Real datasets' (docs/real_datasets.md)"


class RawDataError(RuntimeError):
    """The raw download is missing or not laid out as expected; stops the stage at its start."""


class SampleError(ValueError):
    """One sample is unreadable or its annotation is broken; the sample is skipped."""


class Excluded(Exception):  # noqa: N818 - a selection outcome, not an error
    """The dataset's selection rules leave this sample out (counted, not an error)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def layout_error(key: str, value: Any, problem: str, layout: str) -> RawDataError:
    """A :class:`RawDataError` naming the config key, the problem and the expected layout."""
    return RawDataError(
        f"config key '{key}' = {value!r}: {problem}.\nExpected layout:\n{layout}\n"
        f"See {README_SECTION}.")


@dataclass
class Record:
    """One sample of a real dataset converted to the canonical layout.

    Attributes:
        id: filename-safe sample id.
        rgb: (256, 256, 3) uint8 RGB crop.
        mask: (256, 256) uint8 (0 background, 1 hand, 2 object) or None.
        hand_vertices: (V, 3) camera space, metres. hand_faces: (F, 3) watertight (closed wrist).
        hand_parts: (V,) uint8 part label per vertex.
        obj_vertices: (W, 3) camera space, metres. obj_faces: (G, 3).
        meta: the annotation, every key of docs/architecture.md.
    """

    id: str
    rgb: np.ndarray
    mask: np.ndarray | None
    hand_vertices: np.ndarray
    hand_faces: np.ndarray
    hand_parts: np.ndarray
    obj_vertices: np.ndarray
    obj_faces: np.ndarray
    meta: dict = field(default_factory=dict)


def load_object_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and faces (F, 3) of an OBJ model, every material group concatenated.

    ShapeNet models load as a scene of several geometries (one per material) and are not
    watertight; ``force="mesh"`` concatenates them; copies of a vertex (texture seams, material
    borders) are joined. Raises :class:`SampleError` if unreadable or empty.
    """
    try:
        mesh = trimesh.load(path, process=False, force="mesh", skip_materials=True)
    except Exception as err:  # trimesh raises many kinds of errors for broken files
        raise SampleError(f"{path}: unreadable model ({type(err).__name__}: {err})") from err
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise SampleError(f"{path}: model has no triangles")
    # OBJ loaders split vertices at texture seams; join the copies (same position) again so that
    # the surface is connected where the model is (watertight YCB scans stay watertight).
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.remove_unreferenced_vertices()
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    if not np.isfinite(verts).all():
        raise SampleError(f"{path}: model has NaN or infinite vertices")
    return verts, np.asarray(mesh.faces, dtype=np.int64)


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(8, 3) corners of the axis-aligned box [lo, hi], in ``trimesh.bounds.corners`` order."""
    return np.asarray(trimesh.bounds.corners(np.stack([lo, hi])), dtype=np.float64)


def transform_points(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(N, 3) points mapped by a 4x4 (or 3x4) affine transform."""
    T = np.asarray(T, dtype=np.float64)
    return p @ T[:3, :3].T + T[:3, 3]


def project(K: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(N, 2) pixel coordinates of camera-space points (N, 3) with intrinsics K (3x3)."""
    uvw = p @ np.asarray(K, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def square_box(tl: np.ndarray, br: np.ndarray, pad: float = 10.0,
               scale: float = 1.25) -> np.ndarray:
    """The reference's crop box [x, y, w, h] around the pixel box [tl, br].

    zerchen/gSDF preprocess/cocoify_dexycb.py lines 112-116 (``bbox = [tl - 10, size + 20]``)
    then common/utils/img_utils.py ``process_bbox`` (lines 102-117): squared to the longer side
    about the centre, then both sides times 1.25.
    """
    tl = np.asarray(tl, dtype=np.float64) - pad
    size = np.asarray(br, dtype=np.float64) - np.asarray(tl, dtype=np.float64) + pad
    centre = tl + size / 2.0
    side = float(max(size[0], size[1])) * scale
    return np.array([centre[0] - side / 2.0, centre[1] - side / 2.0, side, side])


def crop_affine(box: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """2x3 affine map from source pixels to the ``size`` x ``size`` crop of ``box`` [x, y, w, h].

    The same map as the reference's ``generate_patch_image`` with scale 1 and no rotation
    (common/utils/img_utils.py lines 12-89): the box centre goes to the crop centre and the box
    sides to the crop sides, ``u' = (u - x) * size / w``.
    """
    x, y, w, h = (float(v) for v in box)
    return np.array([[size / w, 0.0, -x * size / w], [0.0, size / h, -y * size / h]])


def crop_intrinsics(K: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Intrinsics of the crop: ``[A; 0 0 1] @ K`` so that projecting with them lands on the crop."""
    A = np.vstack([affine, [0.0, 0.0, 1.0]])
    return A @ np.asarray(K, dtype=np.float64)


def warp(image: np.ndarray, affine: np.ndarray, size: int = CROP_SIZE,
         nearest: bool = False) -> np.ndarray:
    """Crop ``image`` with the 2x3 ``affine`` (black outside), bilinear or nearest."""
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, affine, (size, size), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def pixel_box(K: np.ndarray, points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """[x, y, w, h] of the projected points, clipped to the ``size`` x ``size`` image (the
    ``bbox`` meta key, as synth writes it)."""
    uv = project(K, points)
    lo = np.clip(uv.min(0), 0, size)
    hi = np.clip(uv.max(0), 0, size)
    return np.concatenate([lo, hi - lo])


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB. Raises :class:`SampleError` if missing or not decodable."""
    if not path.is_file():
        raise SampleError(f"{path}: image not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SampleError(f"{path}: not a decodable image")
    return np.ascontiguousarray(bgr[..., ::-1])


def check_finite(name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as a float64 array; :class:`SampleError` if the shape is wrong or not finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise SampleError(f"annotation {name!r} is not numeric: {err}") from err
    if shape is not None and arr.shape != shape:
        raise SampleError(f"annotation {name!r} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise SampleError(f"annotation {name!r} has NaN or infinite values")
    return arr
