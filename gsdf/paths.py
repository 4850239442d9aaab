"""The one owner of the ``results/`` layout (DESIGN.md section 2).

Every artifact path in the project is composed here, so that the Snakemake rules (which need
patterns with ``{wildcards}``) and the library (which needs concrete paths) cannot disagree.

Two ways to use it:

* ``Layout(root).pattern("sdf_shard")`` returns the pattern with Snakemake wildcards, e.g.
  ``results/{dataset}/sdf/{split}/shard_{shard}.npz``;
* ``Layout(root).sdf_shard(dataset="synth", split="train", shard=3)`` returns the concrete path
  (shard numbers are zero-padded to three digits).
"""

from __future__ import annotations

import string
from pathlib import Path

# Templates relative to the results root. Keep names equal to stage names where a stage owns them.
TEMPLATES: dict[str, str] = {
    # --- datasets in the canonical layout (DESIGN.md section 3), written by `synth` / `prepare`
    "dataset_dir": "datasets/{dataset}",
    "split_dir": "datasets/{dataset}/{split}",
    # One manifest per shard: JSON list of the sample ids the shard wrote (+ skipped ones).
    "dataset_shard": "datasets/{dataset}/{split}/shards/shard_{shard}.json",
    "contact_sheet": "datasets/{dataset}/contact_sheet.png",
    # --- sample_sdf
    "sdf_shard": "{dataset}/sdf/{split}/shard_{shard}.npz",
    "sdf_skipped": "{dataset}/sdf/{split}/skipped_{shard}.csv",
    "sdf_preview": "{dataset}/sdf/preview.png",
    # --- pack
    "packed_dir": "{dataset}/{split}",
    "annotations": "{dataset}/{split}/annotations.json",
    "rgb_lmdb": "{dataset}/{split}/rgb.lmdb",
    "sdf_hand_lmdb": "{dataset}/{split}/sdf_hand.lmdb",
    "sdf_obj_lmdb": "{dataset}/{split}/sdf_obj.lmdb",
    # --- train_pose
    "pose_dir": "{dataset}/pose_{pose_exp}",
    "pose_checkpoint": "{dataset}/pose_{pose_exp}/checkpoint.pt",
    "pose_train_log": "{dataset}/pose_{pose_exp}/train_log.csv",
    "pose_curves": "{dataset}/pose_{pose_exp}/learning_curves.png",
    "pose_config": "{dataset}/pose_{pose_exp}/config.yaml",
    # --- train_sdf
    "exp_dir": "{exp}_{dataset}",
    "checkpoint": "{exp}_{dataset}/checkpoint.pt",
    "train_log": "{exp}_{dataset}/train_log.csv",
    "learning_curves": "{exp}_{dataset}/learning_curves.png",
    "exp_config": "{exp}_{dataset}/config.yaml",
    # --- reconstruct (one manifest per test shard; meshes and poses are keyed by sample id)
    "recon_shard": "{exp}_{dataset}/reconstruct/shard_{shard}.json",
    "mesh_hand": "{exp}_{dataset}/meshes/{id}_hand.ply",
    "mesh_obj": "{exp}_{dataset}/meshes/{id}_obj.ply",
    "pose_pred": "{exp}_{dataset}/poses/{id}.json",
    # --- evaluate
    "metrics_per_sample": "{exp}_{dataset}/metrics_per_sample.csv",
    "metrics": "{exp}_{dataset}/metrics.csv",
    "renders_dir": "{exp}_{dataset}/renders",
    # --- compare / report
    "comparison": "{dataset}_comparison.csv",
    "comparison_md": "{dataset}_comparison.md",
    "comparison_plot": "{dataset}_comparison.png",
}

# The splits every dataset provides.
SPLITS = ("train", "test")


def shard_name(shard: int | str) -> str:
    """Zero-padded shard number: ``3 -> "003"``; strings (wildcards) pass through."""
    if isinstance(shard, str):
        return shard
    if shard < 0:
        raise ValueError(f"shard must be >= 0, got {shard}")
    return f"{shard:03d}"


class Layout:
    """The results tree under ``root``.

    Args:
        root: the results directory (``results`` by default, from config key ``results``).
    """

    def __init__(self, root: str | Path = "results"):
        self.root = Path(root)

    def pattern(self, name: str) -> str:
        """Snakemake pattern (with ``{wildcards}``) of artifact ``name``."""
        try:
            template = TEMPLATES[name]
        except KeyError as err:
            raise KeyError(f"unknown artifact {name!r}; known: {sorted(TEMPLATES)}") from err
        return str(self.root / template)

    def path(self, name: str, **fields) -> Path:
        """Concrete path of artifact ``name`` with every field of its template filled."""
        template = self.pattern(name)
        needed = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        missing = needed - set(fields)
        if missing:
            raise ValueError(f"artifact {name!r} needs {sorted(missing)}")
        if "shard" in fields:
            fields = dict(fields, shard=shard_name(fields["shard"]))
        return Path(template.format(**{k: v for k, v in fields.items() if k in needed}))

    def __getattr__(self, name: str):
        # layout.sdf_shard(dataset=..., split=..., shard=...) == layout.path("sdf_shard", ...)
        if name in TEMPLATES:
            return lambda **fields: self.path(name, **fields)
        raise AttributeError(name)

    def shard_paths(self, name: str, num_shards: int, **fields) -> list[Path]:
        """All shard paths ``0 .. num_shards-1`` of a sharded artifact."""
        return [self.path(name, shard=k, **fields) for k in range(num_shards)]
