"""Stage ``reconstruct``: per test shard, the trained model's hand and object meshes (camera
space) and predicted poses of the shard's samples (the work: :mod:`gsdf.eval.reconstruct`).

The shard manifest lists the ids done and the ids whose field had no zero crossing; the meshes
and poses go into the experiment's ``meshes/`` and ``poses/`` folders
(:class:`gsdf.paths.PredictionLayout`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gsdf.checkpoint import load_trained
from gsdf.config import ConfigError, from_dict
from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
from gsdf.paths import PredictionLayout
from gsdf.utils.io import read_json, write_json

log = logging.getLogger("gsdf.reconstruct")


@dataclass(frozen=True)
class Inputs:
    """Attributes:
        checkpoint: the experiment's final ``checkpoint.pt``.
        packed_dir: the packed test split, ``results/{dataset}/test``.
        manifest: the dataset's test shard manifest (the ids of this shard).
    """

    checkpoint: Path
    packed_dir: Path
    manifest: Path


@dataclass(frozen=True)
class Outputs:
    """Attributes:
        manifest: ``results/{exp}_{dataset}/reconstruct/shard_{k}.json``.
        meshes_dir: ``results/{exp}_{dataset}/meshes`` (``{id}_hand.ply``, ``{id}_obj.ply``).
        poses_dir: ``results/{exp}_{dataset}/poses`` (``{id}.json``).
    """

    manifest: Path
    meshes_dir: Path
    poses_dir: Path


def _dataset_name(params: Mapping[str, Any]) -> str:
    name = (params.get("dataset") or {}).get("name")
    if not name:
        raise ConfigError("reconstruct: --params has no dataset.name")
    return str(name)


def _hand_asset(params: Mapping[str, Any]):
    """The hand asset of the config's ``hand`` section (MANO on real datasets)."""
    from gsdf.models.hand_model import load_hand_asset

    return load_hand_asset(params.get("hand"), _dataset_name(params))


def _check_hand(checkpoint: Path, experiment: Mapping[str, Any],
                params: Mapping[str, Any]) -> None:
    """Refuse a checkpoint trained with another hand asset than the config's."""
    from gsdf.models.hand_model import hand_asset_kind

    trained_hand = (experiment.get("hand") or {}).get("asset")
    wanted = hand_asset_kind(params.get("hand"), _dataset_name(params))
    if trained_hand and trained_hand != wanted:
        raise ConfigError(f"{checkpoint} was trained with the {trained_hand} hand, but the "
                          f"config's hand section gives the {wanted} one; retrain or restore "
                          f"the hand settings it was trained with")


def run(inputs: Inputs, outputs: Outputs, params: Mapping[str, Any], *,
        device: str | None = None, threads: int | None = None,
        point_batch_size: int = 65536) -> dict[str, Any]:
    """Load the trained model, reconstruct the shard's ids, write the manifest.

    Args:
        params: ``{"experiment", "dataset", "reconstruct", "hand"}``
            (``Pipeline.experiment_params``); models with a hand layer get the asset of
            ``hand`` (a checkpoint trained with another hand asset is refused).
        device: ``cpu`` / ``cuda`` / ``None`` (GPU if available). Runtime, like:
        threads: torch intra-op threads.
        point_batch_size: query points per decoder call (memory only, never the result).
    """
    from gsdf.data import build_dataset
    from gsdf.data.pack import load_annotations
    from gsdf.models.registry import uses_hand_asset
    from gsdf.train.config import recorded_train, train_config
    from gsdf.train.run import dataset_options

    if point_batch_size < 1:
        raise ValueError(f"gsdf reconstruct: --point-batch-size must be >= 1, got "
                         f"{point_batch_size}")
    cfg = from_dict(ReconstructConfig, params.get("reconstruct"), "reconstruct")
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ids = [str(i) for i in read_json(inputs.manifest).get("ids", [])]
    context = {}
    model_name = (params.get("experiment") or {}).get("model")
    if model_name is not None and uses_hand_asset(model_name):
        context["hand_asset"] = _hand_asset(params)
    # Refuse a checkpoint of another model or other model_args than this experiment's (e.g.
    # gf's checkpoint copied over gsdf's would be meshed and scored as gsdf).
    trained = load_trained(inputs.checkpoint, device, expect=params.get("experiment"),
                           **context)
    if context:
        _check_hand(inputs.checkpoint, trained.experiment, params)
    # The settings the run trained with (the checkpoint keeps its resolved train config; the
    # image size and clip length are its experiment's model_args).
    options = dataset_options(trained.experiment,
                              train_config(trained.experiment, recorded_train(trained.train)))
    options.update(train=False, augment=False)
    data = build_dataset(inputs.packed_dir, **options)
    upstream = {str(item.get("id")): str(item.get("reason"))
                for item in load_annotations(inputs.packed_dir)["info"].get("skipped", [])}
    out = PredictionLayout(outputs.meshes_dir, outputs.poses_dir)
    manifest = reconstruct_samples(trained.model, data, ids, out, cfg, device, upstream,
                                   point_batch_size=point_batch_size)
    manifest["config"] = {"reconstruct": dataclasses.asdict(cfg),
                          "checkpoint": str(inputs.checkpoint)}
    write_json(outputs.manifest, manifest)
    log.info("%s: %d samples, %d meshed, %d without zero crossing, %.1f s, %d decoder queries",
             outputs.manifest, len(ids), len(manifest["done"]), manifest["num_no_surface"],
             manifest["total_seconds"], manifest["total_queries"])
    return manifest
