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
    "sdf_dir": "{dataset}/sdf/{split}",
    # --- pack
    "packed_dir": "{dataset}/{split}",
    "annotations": "{dataset}/{split}/annotations.json",
    "rgb_lmdb": "{dataset}/{split}/rgb.lmdb",
    "sdf_hand_lmdb": "{dataset}/{split}/sdf_hand.lmdb",
    "sdf_obj_lmdb": "{dataset}/{split}/sdf_obj.lmdb",
    "pack_skipped": "{dataset}/{split}/skipped.csv",
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
    # (per-sample files under meshes/ and poses/: `PredictionLayout`)
    "recon_shard": "{exp}_{dataset}/reconstruct/shard_{shard}.json",
    "meshes_dir": "{exp}_{dataset}/meshes",
    "poses_dir": "{exp}_{dataset}/poses",
    # --- evaluate
    "metrics_per_sample": "{exp}_{dataset}/metrics_per_sample.csv",
    "metrics": "{exp}_{dataset}/metrics.csv",
    "renders_dir": "{exp}_{dataset}/renders",
    # --- predict (your own photos; per-photo files {name}_hand.ply ... beside the manifest)
    "predict_dir": "{exp}_{dataset}/predict",
    "predict_manifest": "{exp}_{dataset}/predict/predict_manifest.json",
    # --- compare / report
    "comparison": "{dataset}_comparison.csv",
    "comparison_md": "{dataset}_comparison.md",
    "comparison_plot": "{dataset}_comparison.png",
}

# The splits every dataset provides.
SPLITS = ("train", "test")

# The per-sample files of a split in the canonical layout (docs/architecture.md): folder and
# suffix of each kind. `synth` and `prepare` write them, later stages read them.
SAMPLE_FILES: dict[str, tuple[str, str]] = {
    "rgb": ("rgb", ".jpg"),
    "mask": ("mask", ".png"),
    "depth": ("depth", ".png"),
    "meta": ("meta", ".json"),
    "mesh_hand": ("mesh_hand", ".ply"),
    "mesh_obj": ("mesh_obj", ".ply"),
}
MESH_PARTS = ("hand", "obj")


def last_checkpoint(final: str | Path) -> Path:
    """The resumable ``checkpoint.last.pt`` beside a training run's final ``checkpoint.pt``."""
    final = Path(final)
    return final.with_name(final.stem + ".last" + final.suffix)


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


class SplitLayout:
    """The canonical layout of one dataset split (``results/datasets/{dataset}/{split}/``).

    The only place that composes per-sample paths such as ``rgb/{id}.jpg``; every stage that
    reads or writes a sample's files asks this object.

    Args:
        root: the split folder, e.g. ``Layout(results).split_dir(dataset="synth", split="train")``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SplitLayout({str(self.root)!r})"

    def file(self, kind: str, sample_id: str) -> Path:
        """Path of a sample's file of ``kind`` (a key of ``SAMPLE_FILES``)."""
        try:
            folder, suffix = SAMPLE_FILES[kind]
        except KeyError as err:
            raise KeyError(f"unknown sample file kind {kind!r}; known: {sorted(SAMPLE_FILES)}"
                           ) from err
        return self.root / folder / f"{sample_id}{suffix}"

    def relative(self, kind: str, sample_id: str) -> str:
        """``file(kind, id)`` relative to the split folder, POSIX style (``rgb/{id}.jpg``)."""
        return self.file(kind, sample_id).relative_to(self.root).as_posix()

    def folder(self, kind: str) -> Path:
        """The folder holding every sample's file of ``kind``."""
        return self.root / SAMPLE_FILES[kind][0]

    def rgb(self, sample_id: str) -> Path:
        """``rgb/{id}.jpg``: the 256x256 RGB crop."""
        return self.file("rgb", sample_id)

    def mask(self, sample_id: str) -> Path:
        """``mask/{id}.png``: uint8 segmentation (0 background, 1 hand, 2 object)."""
        return self.file("mask", sample_id)

    def depth(self, sample_id: str) -> Path:
        """``depth/{id}.png``: uint16 depth in millimetres (synth only)."""
        return self.file("depth", sample_id)

    def meta(self, sample_id: str) -> Path:
        """``meta/{id}.json``: the annotation."""
        return self.file("meta", sample_id)

    def mesh(self, part: str, sample_id: str) -> Path:
        """``mesh_{part}/{id}.ply`` for ``part`` in ``("hand", "obj")``."""
        if part not in MESH_PARTS:
            raise ValueError(f"mesh part must be one of {MESH_PARTS}, got {part!r}")
        return self.file(f"mesh_{part}", sample_id)

    def shard_manifest(self, shard: int | str) -> Path:
        """``shards/shard_{k}.json``: the manifest of shard ``k`` (ids written, ids skipped)."""
        return self.root / "shards" / f"shard_{shard_name(shard)}.json"

    def ids(self) -> list[str]:
        """Sorted ids of the samples whose annotation exists."""
        return sorted(p.stem for p in self.folder("meta").glob("*.json"))


class PredictionLayout:
    """The per-sample outputs of ``reconstruct`` for one experiment and dataset.

    ``meshes/{id}_{part}.ply`` (camera space, metres) and ``poses/{id}.json``; the only place
    that composes these names. ``reconstruct`` writes them, ``evaluate`` reads them.

    Args:
        meshes_dir: ``Layout(results).meshes_dir(exp=..., dataset=...)``.
        poses_dir: ``Layout(results).poses_dir(exp=..., dataset=...)``.
    """

    def __init__(self, meshes_dir: str | Path, poses_dir: str | Path):
        self.meshes_dir = Path(meshes_dir)
        self.poses_dir = Path(poses_dir)

    def __repr__(self) -> str:
        return f"PredictionLayout({str(self.meshes_dir)!r}, {str(self.poses_dir)!r})"

    def mesh(self, part: str, sample_id: str) -> Path:
        """``meshes/{id}_{part}.ply`` for ``part`` in ``("hand", "obj")``."""
        if part not in MESH_PARTS:
            raise ValueError(f"mesh part must be one of {MESH_PARTS}, got {part!r}")
        return self.meshes_dir / f"{sample_id}_{part}.ply"

    def pose(self, sample_id: str) -> Path:
        """``poses/{id}.json``: predicted joints, object centre and corners."""
        return self.poses_dir / f"{sample_id}.json"
