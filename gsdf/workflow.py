"""What the Snakemake rules need: targets, input lists and per-job params.

Keeping this logic in an importable module (rather than globals in a ``common.smk``) makes it
testable and keeps the rule files thin. Params are JSON strings holding exactly the science
config a job depends on, so Snakemake's params rerun trigger reruns exactly the affected jobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from gsdf.config import resolve_experiment
from gsdf.paths import Layout


def dumps(obj) -> str:
    """Canonical JSON (sorted keys) so equal configs give equal params strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# Config sections each stage depends on (params of its jobs). Stages add their entry here.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "synth": ("synth", "hand"),
    "prepare": ("prepare", "hand"),
    "sample_sdf": ("sample_sdf",),
    "pack": ("pack",),
    "train_pose": ("train",),
    "train_sdf": ("train",),
    "reconstruct": ("reconstruct",),
    "evaluate": ("evaluate",),
    "compare": ("evaluate",),
}


class Pipeline:
    """Targets and params of the workflow for one validated config."""

    def __init__(self, config: Mapping):
        self.config = config
        self.layout = Layout(config["results"])

    # --- datasets -------------------------------------------------------------------------

    def dataset_config(self, dataset: str) -> dict:
        return dict(self.config["datasets"][dataset])

    def num_shards(self, dataset: str) -> int:
        return int(self.config["datasets"][dataset]["num_shards"])

    def shards(self, name: str, dataset: str, split: str, **fields) -> list[str]:
        """All shard paths of sharded artifact ``name`` for one dataset split."""
        return [str(p) for p in self.layout.shard_paths(
            name, self.num_shards(dataset), dataset=dataset, split=split, **fields)]

    def stage_params(self, stage: str, dataset: str | None = None) -> str:
        """Params JSON of a dataset stage: its config section(s) plus the dataset's settings.

        Args:
            stage: a key of ``STAGE_SECTIONS`` (``synth``, ``sample_sdf``, ``pack`` ...).
            dataset: dataset name, whose ``datasets.{dataset}`` entry is included as ``dataset``.
        """
        sections = STAGE_SECTIONS[stage]
        params = {key: self.config.get(key, {}) for key in sections}
        if dataset is not None:
            params["dataset"] = dict(self.dataset_config(dataset), name=dataset)
        return dumps(params)

    # --- experiments ----------------------------------------------------------------------

    def experiment(self, exp: str) -> dict:
        return resolve_experiment(self.config, exp)

    def experiment_params(self, exp: str, dataset: str, stage: str | None = None) -> str:
        """Params JSON of an experiment stage: the resolved experiment, the dataset settings and,
        if ``stage`` is given, that stage's config sections (e.g. ``reconstruct``)."""
        params = {"experiment": self.experiment(exp),
                  "dataset": dict(self.dataset_config(dataset), name=dataset)}
        for key in STAGE_SECTIONS.get(stage or "", ()):
            params[key] = self.config.get(key, {})
        return dumps(params)

    # --- targets --------------------------------------------------------------------------

    def all_targets(self) -> list[str]:
        """What `rule all` builds for ``config["dataset"]``: every experiment's ``metrics.csv``,
        the comparison (CSV, markdown, plot), the SDF preview and, for the synthetic dataset,
        the contact sheet. Everything upstream follows from the rules' inputs."""
        dataset = self.config["dataset"]
        targets = [self.path("metrics", exp=exp, dataset=dataset)
                   for exp in self.config["experiments"]]
        targets += [self.path(name, dataset=dataset)
                    for name in ("comparison", "comparison_md", "comparison_plot")]
        targets.append(self.path("sdf_preview", dataset=dataset))
        if dataset == "synth":
            targets.append(self.path("contact_sheet", dataset=dataset))
        return targets

    def path(self, name: str, **fields) -> str:
        return str(self.layout.path(name, **fields))

    def pattern(self, name: str) -> str:
        return self.layout.pattern(name)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
