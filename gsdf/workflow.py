"""What the Snakemake rules need: targets, input lists and per-job params.

Keeping this logic in an importable module (rather than globals in a ``common.smk``) makes it
testable and keeps the rule files thin. Params are JSON strings holding exactly the science
config a job depends on, so Snakemake's params rerun trigger reruns exactly the affected jobs.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gsdf.config import resolve_experiment
from gsdf.hand_asset import check_hand_config
from gsdf.paths import Layout, last_checkpoint


def dumps(obj) -> str:
    """Canonical JSON (sorted keys) so equal configs give equal params strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


# Config sections each stage depends on (params of its jobs). Stages add their entry here.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "synth": ("synth", "hand"),
    "prepare": ("hand",),
    "sample_sdf": ("sample_sdf",),
    "pack": ("pack",),
    "train_pose": ("train",),
    "train_sdf": ("train", "hand"),
    "reconstruct": ("reconstruct", "hand"),
    "evaluate": ("evaluate",),
    "compare": ("evaluate",),
    "predict": ("reconstruct", "predict", "hand"),
}


# Keys of datasets.{obman,dexycb} a `prepare` job depends on (its params).
PREPARE_KEYS = ("root", "shapenet_root", "split_files", "split", "num_shards")


class Pipeline:
    """Targets and params of the workflow for one validated config."""

    def __init__(self, config: Mapping):
        self.config = config
        self.layout = Layout(config["results"])
        # a run that needs MANO (real data, hand.asset: mano) stops here without it
        check_hand_config(config)
        self.check_hand_frame()

    def check_hand_frame(self) -> None:
        """``reconstruct.hand_frame: predicted`` needs every experiment to have a pose network.

        Raises:
            ConfigError: naming the experiments without one.
        """
        from gsdf.config import ConfigError
        from gsdf.eval.predict import MODELS_WITH_POSE

        if (self.config.get("reconstruct") or {}).get("hand_frame") != "predicted":
            return
        bad = [exp for exp in self.config.get("experiments", [])
               if self.experiment(exp).get("model") not in MODELS_WITH_POSE]
        if bad:
            raise ConfigError(
                f"reconstruct.hand_frame: predicted places the hand from the model's pose "
                f"network; experiments {bad} have none (only {list(MODELS_WITH_POSE)} do). "
                f"Run those with hand_frame ground_truth, e.g. --config 'experiments=[gsdf]'")

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
        targets += self.predict_targets()
        if dataset == "synth":
            targets.append(self.path("contact_sheet", dataset=dataset))
        return targets

    def predict_targets(self) -> list[str]:
        """The ``predict`` manifests of every gsdf / gsdf_video experiment when
        ``predict.images`` is set, else none."""
        from gsdf.eval.predict import MODELS_WITH_POSE

        if not (self.config.get("predict") or {}).get("images"):
            return []
        dataset = self.config["dataset"]
        return [self.path("predict_manifest", exp=exp, dataset=dataset)
                for exp in self.config["experiments"]
                if self.experiment(exp).get("model") in MODELS_WITH_POSE]

    def predict_inputs(self, wildcards) -> dict[str, Any]:
        """The experiment's checkpoint and every photo of ``predict.images`` (a new photo
        reruns the job)."""
        from gsdf.eval.predict import images_in

        folder = (self.config.get("predict") or {}).get("images")
        if not folder:
            raise ValueError("rule predict needs config key predict.images (a folder of photos)")
        return {"checkpoint": self.path("checkpoint", exp=wildcards.exp,
                                        dataset=wildcards.dataset),
                "images": [str(p) for p in images_in(folder)]}

    def predict_folder(self, wildcards=None) -> str:
        return str((self.config.get("predict") or {}).get("images"))

    def predict_dir(self, wildcards) -> str:
        """``wildcards -> results/{exp}_{dataset}/predict``."""
        return self.path("predict_dir", exp=wildcards.exp, dataset=wildcards.dataset)

    def path(self, name: str, **fields) -> str:
        return str(self.layout.path(name, **fields))

    def pattern(self, name: str) -> str:
        return self.layout.pattern(name)

    def log(self, stage: str, name: str) -> str:
        """Log file pattern of a rule: ``{results}/logs/{stage}/{name}.log``."""
        return str(self.layout.root / "logs" / stage / f"{name}.log")

    # --- rule helpers: functions of a job's wildcards ----------------------------------------
    # Rules reference these (e.g. ``params: cfg=pipe.dataset_params("pack")``) instead of
    # defining functions or lambdas themselves.

    def dataset_params(self, stage: str) -> Callable[[Any], str]:
        """``wildcards -> stage_params(stage, wildcards.dataset)``."""
        return lambda wildcards: self.stage_params(stage, wildcards.dataset)

    def prepare_params(self, wildcards) -> str:
        """Params JSON of a ``prepare`` job: the dataset keys that change what it writes (the
        raw data's location, split files, DexYCB setup, shards; not ``recon_scale`` or ``aug``,
        so that changing those does not convert the dataset again) and ``hand.mano_root``."""
        ds = {k: v for k, v in self.dataset_config(wildcards.dataset).items()
              if k in PREPARE_KEYS}
        return dumps({"dataset": dict(ds, name=wildcards.dataset),
                      "hand": {"mano_root": self.config.get("hand", {}).get("mano_root")}})

    def prepare_check(self, wildcards) -> list[str]:
        """Input function of ``prepare``: checks the raw download and the MANO pickle while the
        DAG is built (once per dataset), so bad settings stop before any job with a message
        naming the config key. Returns no files (the raw data are not workflow files)."""
        _check_prepare(self.prepare_params(wildcards))
        return []

    def exp_params(self, stage: str, exp_wildcard: str = "exp") -> Callable[[Any], str]:
        """``wildcards -> experiment_params(wildcards.<exp_wildcard>, dataset, stage)``."""
        return lambda wildcards: self.experiment_params(
            getattr(wildcards, exp_wildcard), wildcards.dataset, stage)

    def split_dir(self, split: str | None = None, dataset: str | None = None
                  ) -> Callable[[Any], str]:
        """``wildcards -> canonical split folder`` (``split`` / ``dataset`` fixed, else the
        job's wildcards)."""
        return lambda wildcards: self.path(
            "split_dir", dataset=dataset or wildcards.dataset, split=split or wildcards.split)

    def packed_dir(self, split: str) -> Callable[[Any], str]:
        """``wildcards -> packed split folder``."""
        return lambda wildcards: self.path("packed_dir", dataset=wildcards.dataset, split=split)

    def exp_dir(self, name: str) -> Callable[[Any], str]:
        """``wildcards -> folder`` ``name`` (``meshes_dir`` / ``poses_dir``) of the job's
        experiment."""
        return lambda wildcards: self.path(name, exp=wildcards.exp, dataset=wildcards.dataset)

    def compare_params(self, wildcards) -> str:
        """Params JSON of ``compare``: the dataset's name (the table's title)."""
        return dumps({"dataset": {"name": wildcards.dataset}})

    def packed_inputs(self, dataset: str, split: str) -> dict[str, str]:
        """The packed split: annotations and the three LMDBs."""
        fields = {"dataset": dataset, "split": split}
        return {"annotations": self.path("annotations", **fields),
                "rgb": self.path("rgb_lmdb", **fields),
                "sdf_hand": self.path("sdf_hand_lmdb", **fields),
                "sdf_obj": self.path("sdf_obj_lmdb", **fields)}

    def pose_input(self, exp: str, dataset: str) -> dict[str, str]:
        """``{"pose": checkpoint}`` for experiments built on a pose network, else ``{}``."""
        pose_exp = self.experiment(exp).get("pose_experiment")
        if not pose_exp:
            return {}
        return {"pose": self.path("pose_checkpoint", dataset=dataset, pose_exp=pose_exp)}

    def pack_inputs(self, wildcards) -> dict[str, list[str]]:
        return {"manifests": self.shards("dataset_shard", wildcards.dataset, wildcards.split),
                "sdf": self.shards("sdf_shard", wildcards.dataset, wildcards.split)}

    def sdf_preview_inputs(self, wildcards) -> dict[str, str]:
        fields = {"dataset": wildcards.dataset, "split": "train", "shard": 0}
        return {"shard": self.path("sdf_shard", **fields),
                "manifest": self.path("dataset_shard", **fields)}

    def train_pose_inputs(self, wildcards) -> dict[str, str]:
        return self.packed_inputs(wildcards.dataset, "train")

    def init_input(self, exp: str, dataset: str) -> dict[str, str]:
        """``{"init": checkpoint}`` of the experiment named by ``init_experiment`` (gsdf_video
        starts from a trained image gsdf, as the reference), else ``{}``."""
        init_exp = self.experiment(exp).get("init_experiment")
        if not init_exp:
            return {}
        return {"init": self.path("checkpoint", exp=init_exp, dataset=dataset)}

    def train_sdf_inputs(self, wildcards) -> dict[str, str]:
        """Packed train split, plus the pose checkpoint of gsdf-style experiments and the
        checkpoint an experiment starts from (``init_experiment``)."""
        return {**self.packed_inputs(wildcards.dataset, "train"),
                **self.pose_input(wildcards.exp, wildcards.dataset),
                **self.init_input(wildcards.exp, wildcards.dataset)}

    @staticmethod
    def pose_checkpoint_arg(wildcards, input) -> str:
        """``--pose-checkpoint PATH`` when the job has a pose input (and ``--init-checkpoint
        PATH`` when it has an init input), else nothing."""
        args = []
        if "pose" in input.keys():
            args.append("--pose-checkpoint " + shlex.quote(str(input.pose)))
        if "init" in input.keys():
            args.append("--init-checkpoint " + shlex.quote(str(input.init)))
        return " ".join(args)

    @staticmethod
    def last_checkpoint(wildcards, output) -> str:
        """The job's ``checkpoint.last.pt``: the training rules remove it once their command
        has succeeded (until then it holds the final state, :mod:`gsdf.train.loop`)."""
        return str(last_checkpoint(output.checkpoint))

    def reconstruct_inputs(self, wildcards) -> dict[str, str]:
        """Checkpoint, packed test split and the test shard manifest (the ids), plus the pose
        checkpoint of gsdf-style experiments."""
        test = {"dataset": wildcards.dataset, "split": "test"}
        return {"checkpoint": self.path("checkpoint", exp=wildcards.exp,
                                        dataset=wildcards.dataset),
                "annotations": self.path("annotations", **test),
                "rgb": self.path("rgb_lmdb", **test),
                "manifest": self.path("dataset_shard", shard=wildcards.shard, **test),
                **self.pose_input(wildcards.exp, wildcards.dataset)}

    def evaluate_inputs(self, wildcards) -> dict[str, list[str] | str]:
        """Every reconstruct shard of the experiment, the test split's manifests and the packed
        training split's annotations (the mean-pose baseline)."""
        return {"recon": self.shards("recon_shard", wildcards.dataset, "test",
                                     exp=wildcards.exp),
                "gt": self.shards("dataset_shard", wildcards.dataset, "test"),
                "train_annotations": self.path("annotations", dataset=wildcards.dataset,
                                               split="train")}

    def render_pattern(self, which: str) -> str:
        """PNG ``which`` (best / median / worst sample, or the gallery) in an experiment's
        renders."""
        return str(Path(self.pattern("renders_dir")) / f"{which}.png")

    def compare_inputs(self, wildcards) -> dict[str, str]:
        return {exp: self.path("metrics", exp=exp, dataset=wildcards.dataset)
                for exp in self.config["experiments"]}

    def compare_pairs(self, wildcards, input) -> str:
        """``exp=path`` pairs, in the order of ``config["experiments"]``."""
        return " ".join(f"{exp}={input[exp]}" for exp in self.config["experiments"])


@functools.lru_cache(maxsize=8)
def _check_prepare(params: str) -> None:
    from gsdf.stages.prepare import check

    check(json.loads(params))
