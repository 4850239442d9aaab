"""Writing one sample in the canonical layout (docs/architecture.md), for `synth` and `prepare`.

Paths come from :class:`gsdf.paths.SplitLayout`; every file is written atomically, the
annotation last, so a sample whose ``meta/{id}.json`` exists is complete.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from gsdf.geometry.mesh_io import save_mesh
from gsdf.paths import SplitLayout
from gsdf.utils.io import write_bytes, write_text

# Decimals kept in meta JSON (1e-9 m): the same floats always print the same way.
JSON_DECIMALS = 9


def round_floats(obj: Any) -> Any:
    """Numpy arrays and floats -> nested lists of floats rounded to ``JSON_DECIMALS``."""
    if isinstance(obj, np.ndarray):
        if np.issubdtype(obj.dtype, np.floating):
            return round_floats(obj.tolist())
        return obj.tolist()
    if isinstance(obj, list | tuple):
        return [round_floats(v) for v in obj]
    if isinstance(obj, float | np.floating):
        value = round(float(obj), JSON_DECIMALS)
        return 0.0 if value == 0 else value  # no "-0.0"
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def meta_json(meta: Mapping[str, Any]) -> str:
    """Deterministic JSON text of an annotation (fixed decimals, keys in insertion order)."""
    return json.dumps({k: round_floats(v) for k, v in meta.items()}, indent=1) + "\n"


def encode_image(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    """``cv2.imencode`` that raises instead of returning ``False``. ``image`` is BGR / gray."""
    ok, buf = cv2.imencode(ext, image, params or [])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image of shape {image.shape}")
    return buf.tobytes()


def write_sample(layout: SplitLayout, sample_id: str, *, rgb: np.ndarray,
                 hand_vertices: np.ndarray, hand_faces: np.ndarray,
                 hand_parts: np.ndarray | None, obj_vertices: np.ndarray,
                 obj_faces: np.ndarray, meta: Mapping[str, Any],
                 mask: np.ndarray | None = None, depth: np.ndarray | None = None,
                 jpeg_quality: int = 95) -> None:
    """Write one sample's files under ``layout``.

    Args:
        layout: the split folder.
        sample_id: filename-safe id, unique in the dataset.
        rgb: (256, 256, 3) uint8 RGB crop.
        hand_vertices, hand_faces: (V, 3) metres in camera space, (F, 3) watertight.
        hand_parts: (V,) uint8 part label of every hand vertex, or None.
        obj_vertices, obj_faces: the object mesh, camera space, metres.
        meta: the annotation (keys of docs/architecture.md), written last.
        mask: (256, 256) uint8 segmentation (0 background, 1 hand, 2 object), optional.
        depth: (256, 256) float depth in metres (0 = background), optional.
        jpeg_quality: JPEG quality of ``rgb``.
    """
    write_bytes(layout.rgb(sample_id),
                encode_image(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                             [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]))
    if mask is not None:
        write_bytes(layout.mask(sample_id), encode_image(".png", mask))
    if depth is not None:
        depth_mm = np.clip(np.round(depth.astype(np.float64) * 1000.0), 0, 65535)
        write_bytes(layout.depth(sample_id), encode_image(".png", depth_mm.astype(np.uint16)))
    save_mesh(layout.mesh("hand", sample_id), hand_vertices, hand_faces, vertex_parts=hand_parts)
    save_mesh(layout.mesh("obj", sample_id), obj_vertices, obj_faces)
    write_text(layout.meta(sample_id), meta_json(meta))
