"""A contact sheet of dataset samples, so a person can see the data.

Each sample gets three tiles: the RGB image; the segmentation mask (hand green, object red)
blended over it; and the annotations drawn over it (hand mesh vertices, the 21-joint skeleton,
the object's 3D bounding box and the 2D ``bbox``). Works on any dataset in the canonical layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from gsdf.geometry.mesh_io import load_mesh
from gsdf.hand import PARENTS_21
from gsdf.paths import SplitLayout
from gsdf.utils.io import write_bytes

# BGR colours
MASK_COLORS = np.array([[0, 0, 0], [60, 200, 60], [60, 60, 230]], dtype=np.uint8)
FINGER_COLORS = [(0, 0, 255), (0, 160, 255), (0, 220, 0), (255, 160, 0), (255, 0, 200)]
# the 12 edges of a box whose corner i has bit a set iff it is at the max along axis a
BOX_EDGES = [(i, i | (1 << a)) for i in range(8) for a in range(3) if not i & (1 << a)]


def _project(points: np.ndarray, intr: np.ndarray) -> np.ndarray:
    uvw = points @ intr.T
    return uvw[:, :2] / uvw[:, 2:3]


def sample_tiles(layout: SplitLayout, sid: str, size: int = 256) -> np.ndarray:
    """(size, 3*size, 3) BGR tiles of one sample: image | mask overlay | annotation overlay."""
    rgb = cv2.imread(str(layout.rgb(sid)), cv2.IMREAD_COLOR)
    if rgb is None:
        raise FileNotFoundError(f"{layout.rgb(sid)}: missing or unreadable")
    h, w = rgb.shape[:2]
    mask_path = layout.mask(sid)
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
    mask_tile = rgb.copy()
    fg = mask > 0
    mask_tile[fg] = (0.35 * rgb[fg] + 0.65 * MASK_COLORS[np.clip(mask[fg], 0, 2)]).astype(np.uint8)
    meta = json.loads(layout.meta(sid).read_text())
    intr = np.asarray(meta["cam_intr"], dtype=np.float64)
    ann = (0.6 * rgb).astype(np.uint8)
    hand = load_mesh(layout.mesh("hand", sid))
    uv = _project(np.asarray(hand.vertices), intr)
    for x, y in np.round(uv[:: max(1, len(uv) // 1500)]).astype(int):
        if 0 <= x < w and 0 <= y < h:
            ann[y, x] = (150, 200, 240)
    corners = _project(np.asarray(meta["obj_corners_3d"]), intr)
    for a, b in BOX_EDGES:
        cv2.line(ann, tuple(np.round(corners[a]).astype(int)),
                 tuple(np.round(corners[b]).astype(int)), (60, 60, 255), 1, cv2.LINE_AA)
    joints = _project(np.asarray(meta["hand_joints_3d"]), intr)
    for j in range(1, 21):
        p = tuple(np.round(joints[PARENTS_21[j]]).astype(int))
        q = tuple(np.round(joints[j]).astype(int))
        cv2.line(ann, p, q, FINGER_COLORS[(j - 1) // 4], 2, cv2.LINE_AA)
    cv2.circle(ann, tuple(np.round(joints[0]).astype(int)), 3, (255, 255, 255), -1)
    x, y, bw, bh = meta["bbox"]
    cv2.rectangle(ann, (int(x), int(y)), (int(x + bw), int(y + bh)), (255, 255, 0), 1)
    tiles = np.concatenate([rgb, mask_tile, ann], axis=1)
    if size != h:
        tiles = cv2.resize(tiles, (3 * size, size), interpolation=cv2.INTER_AREA)
    cv2.putText(tiles, sid, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tiles


def make_contact_sheet(split_dir: str | Path, out_png: str | Path, num: int = 16,
                       columns: int = 4, tile: int = 192) -> list[str]:
    """Write a PNG grid of ``num`` samples of a split spread evenly over its ids.

    Args:
        split_dir: the canonical split (``results/datasets/synth/train``).
        out_png: the PNG to write.
        num: number of samples; columns: samples per row; tile: pixel size of each tile.

    Returns:
        The sample ids shown.

    Raises:
        FileNotFoundError: the split has no samples.
    """
    layout = SplitLayout(split_dir)
    ids = layout.ids()
    if not ids:
        raise FileNotFoundError(f"no samples under {layout.folder('meta')}; run the synth stage "
                                "first")
    pick = np.unique(np.linspace(0, len(ids) - 1, min(num, len(ids))).round().astype(int))
    chosen = [ids[i] for i in pick]
    rows = []
    blank = np.zeros((tile, 3 * tile, 3), np.uint8)
    for r in range(0, len(chosen), columns):
        row = [sample_tiles(layout, sid, tile) for sid in chosen[r:r + columns]]
        row += [blank] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("OpenCV could not encode the contact sheet")
    write_bytes(out_png, buf.tobytes())
    return chosen
