"""Stage ``evaluate``: the published protocol over every test sample of an experiment (the
metrics: :mod:`gsdf.eval.evaluate`): ``metrics_per_sample.csv``, ``metrics.csv`` (mean and
median of every metric, counts of evaluated / failed samples), the best / median / worst samples
by hand Chamfer rendered for the report, and a gallery of six samples spread over that ranking.
Besides the paper's metrics, the CSVs hold the pose network's joint error next to the mean-pose
baseline (``pose_err_*``, ``mean_pose_err_*``) and how far the surfaces are drawn out along the
camera rays (``depth_ratio_*``, ``lateral_ratio_*``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gsdf.data.pack import read_annotations
from gsdf.eval.evaluate import (
    EvaluationError,
    eval_config,
    evaluate_samples,
    metric_columns,
    sample_paths,
)
from gsdf.eval.pose_error import mean_offsets
from gsdf.eval.render import render_gallery, render_ranked
from gsdf.eval.summary import (
    add_reasons,
    reconstruct_notes,
    summary_of,
    test_ids,
    with_upstream,
    write_csv,
)
from gsdf.paths import PredictionLayout, SplitLayout

log = logging.getLogger("gsdf.evaluate")


@dataclass(frozen=True)
class Inputs:
    """Attributes:
        split_dir: the ground-truth test split (canonical layout).
        dataset_shards: the test split's shard manifests (the ids to evaluate).
        recon_shards: the ``reconstruct`` shard manifests (their ``no_surface`` ids are noted).
        meshes_dir, poses_dir: the experiment's reconstructions (``PredictionLayout``).
        train_annotations: the packed training split's ``annotations.json``: its mean
            wrist-relative joints are the mean-pose baseline of the ``mean_pose_err_*``
            columns (NaN without it).
    """

    split_dir: Path
    dataset_shards: tuple[Path, ...]
    recon_shards: tuple[Path, ...]
    meshes_dir: Path
    poses_dir: Path
    train_annotations: Path | None = None


@dataclass(frozen=True)
class Outputs:
    """Attributes:
        per_sample: ``metrics_per_sample.csv``; metrics: ``metrics.csv``.
        renders: PNGs of the best, median and worst samples (in this order), or none.
        gallery: PNG of six samples spread over the hand-Chamfer ranking, or None.
    """

    per_sample: Path
    metrics: Path
    renders: tuple[Path, ...] = ()
    gallery: Path | None = None


def run(inputs: Inputs, outputs: Outputs, params: dict, *, threads: int = 1) -> pd.DataFrame:
    """Evaluate every test id, write both CSVs and the renders.

    Args:
        params: ``{"experiment": {"name", ...}, "dataset": {"name", ...}, "evaluate": {...}}``;
            the names only title the renders.
        threads: worker processes (runtime).
    Returns:
        the one-row summary.
    """
    cfg = eval_config(params)
    label = (f"{(params.get('experiment') or {}).get('name', '?')} on "
             f"{(params.get('dataset') or {}).get('name', '?')}")
    ids = test_ids(inputs.dataset_shards)
    if not ids:
        raise EvaluationError(f"the test split {inputs.split_dir} is empty (shard manifests: "
                              f"{[str(p) for p in inputs.dataset_shards]}); rerun its "
                              "synth/prepare stage")
    gt, pred = SplitLayout(inputs.split_dir), PredictionLayout(inputs.meshes_dir,
                                                               inputs.poses_dir)
    notes = reconstruct_notes(inputs.recon_shards)
    # Samples an earlier stage skipped fail with its reason; a prediction file left for them by
    # an older run is never scored.
    scored = [i for i in ids if i not in notes.upstream]
    offsets = None
    if inputs.train_annotations is not None:
        offsets = mean_offsets(read_annotations(inputs.train_annotations)["annotations"])
    per_sample = evaluate_samples(sample_paths(gt, pred, scored), cfg, threads, offsets) \
        if scored else pd.DataFrame(columns=["id", "failed", "reason", *metric_columns(cfg)])
    if scored and per_sample["reason"].str.startswith("ground truth:").all():
        raise EvaluationError(
            f"no ground truth of any test sample of {inputs.split_dir} could be read (first: "
            f"{per_sample['reason'].iloc[0]}); rerun its synth/prepare stage")
    add_reasons(per_sample, notes)
    per_sample = with_upstream(per_sample, ids, notes.upstream)
    summary = summary_of(per_sample, ids, notes)
    write_csv(outputs.per_sample, per_sample)
    write_csv(outputs.metrics, summary)
    if outputs.renders:
        render_ranked(per_sample, gt, pred, label, [Path(p) for p in outputs.renders],
                      keep_largest=cfg.largest_component)
    if outputs.gallery:
        render_gallery(per_sample, gt, pred, label, Path(outputs.gallery),
                       keep_largest=cfg.largest_component)
    row = summary.iloc[0]
    log.info("%s: %d samples, %d evaluated, %d failed; median hand CD %.4f cm^2, median object "
             "CD %.4f cm^2", outputs.metrics, row["num_samples"], row["num_evaluated"],
             row["num_failed"], row["chamfer_hand_cm2_median"], row["chamfer_obj_cm2_median"])
    return summary
