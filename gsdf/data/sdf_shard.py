"""The SDF shard file: what ``sample_sdf`` writes and ``pack`` reads (its one owner).

Format of ``results/{dataset}/sdf/{split}/shard_{k}.npz``, version 1:

``S`` samples, ``Nh`` / ``No`` points in all hand / object sets of the shard:

=====================  ============  ======================================================
key                    shape, dtype  meaning
=====================  ============  ======================================================
``format_version``     (), int64     1
``ids``                (S,), str     sample ids, in manifest order (skipped ones left out)
``recon_scale``        (), float64   the dataset's hand-frame scale (points scaled by half)
``wrist``              (S, 3) f64    origin of each sample's hand frame, camera metres
``hand_offsets``       (S+1,) int64  rows of sample ``i`` are ``hand_offsets[i]:[i+1]``
``hand_num_pos``       (S,) int64    the first ``num_pos`` rows of a sample are outside the
                                     hand (sdf_hand > 0), the rest inside (<= 0)
``hand_data``          (Nh, 5) f32   columns ``x, y, z, sdf_hand, sdf_obj`` (hand frame)
``hand_part``          (Nh,) uint8   part label of the nearest hand face (0 palm .. 5 pinky)
``obj_offsets`` ...    as above      the object set; ``obj_num_pos`` counts sdf_obj > 0
``config``             (), str       JSON of the resolved stage params
=====================  ============  ======================================================

Points and distances are in the **hand frame** (docs/architecture.md). Use :func:`load_shard` /
:class:`SDFShard` to read a shard, :func:`shard_counts` for its row counts only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gsdf.geometry.sdf import SETS, PairSamples, SetSamples
from gsdf.utils.io import save_npz

FORMAT_VERSION = 1


@dataclass
class SDFShard:
    """An SDF shard in memory (see the module docstring for the format)."""

    ids: list[str]
    recon_scale: float
    wrist: np.ndarray
    arrays: dict[str, np.ndarray]
    config: dict

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int, which: str) -> SetSamples:
        """Set ``which`` ("hand" | "obj") of sample ``i``."""
        off = self.arrays[f"{which}_offsets"]
        a, b = int(off[i]), int(off[i + 1])
        return SetSamples(self.arrays[f"{which}_data"][a:b], self.arrays[f"{which}_part"][a:b],
                          int(self.arrays[f"{which}_num_pos"][i]))

    def items(self) -> Iterator[tuple[str, SetSamples, SetSamples]]:
        for i, sid in enumerate(self.ids):
            yield sid, self.get(i, "hand"), self.get(i, "obj")


def save_shard(path: str | Path, ids: Sequence[str], samples: Sequence[PairSamples],
               recon_scale: float, config: dict, compressed: bool = False) -> None:
    """Atomically write an SDF shard (format in the module docstring)."""
    arrays: dict[str, Any] = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "ids": np.array(list(ids), dtype=str),
        "recon_scale": np.array(float(recon_scale)),
        "wrist": np.array([s.wrist for s in samples], dtype=np.float64).reshape(-1, 3),
        "config": np.array(json.dumps(config, sort_keys=True)),
    }
    for name in SETS:
        sets = [getattr(s, name) for s in samples]
        counts = [len(s.data) for s in sets]
        arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        arrays[f"{name}_num_pos"] = np.array([s.num_pos for s in sets], dtype=np.int64)
        arrays[f"{name}_data"] = (np.concatenate([s.data for s in sets]) if sets
                                  else np.zeros((0, 5), np.float32)).astype(np.float32)
        arrays[f"{name}_part"] = (np.concatenate([s.part for s in sets]) if sets
                                  else np.zeros(0, np.uint8)).astype(np.uint8)
    save_npz(path, compressed=compressed, **arrays)


def load_shard(path: str | Path, sets: Sequence[str] = SETS) -> SDFShard:
    """Read an SDF shard written by :func:`save_shard`.

    Args:
        path: the ``.npz`` file.
        sets: which sets' arrays to load (``("hand",)`` halves the memory of a big shard).
    Raises:
        ValueError: not a shard of a known format version.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        version = int(z["format_version"]) if "format_version" in z.files else -1
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: SDF shard format version {version}, expected "
                             f"{FORMAT_VERSION}; rerun sample_sdf")
        arrays = {k: z[k] for k in z.files if k.split("_")[0] in sets}
        return SDFShard(ids=[str(s) for s in z["ids"]], recon_scale=float(z["recon_scale"]),
                        wrist=z["wrist"], config=json.loads(str(z["config"])), arrays=arrays)


def shard_counts(path: str | Path) -> dict[str, tuple[int, int]]:
    """``id -> (hand rows, object rows)`` of a shard, reading only its small arrays."""
    out = {}
    with np.load(path, allow_pickle=False) as z:
        hoff, ooff = z["hand_offsets"], z["obj_offsets"]
        for i, sid in enumerate(z["ids"]):
            out[str(sid)] = (int(hoff[i + 1] - hoff[i]), int(ooff[i + 1] - ooff[i]))
    return out


__all__ = ["FORMAT_VERSION", "SDFShard", "load_shard", "save_shard", "shard_counts"]
