"""Evaluation (stage ``evaluate``, run by :mod:`gsdf.stages.evaluate`): per-sample metrics of
the published protocol and their summary.

For every test sample (DESIGN.md section 11, the reference's ``tools/eval.py`` and
``tools/eval_contact.py``):

1. load the predicted hand and object meshes (camera space, metres) and keep the largest
   connected component of each;
2. sample 30,000 points on each predicted and ground-truth surface, in cm;
3. align the predicted hand points to the ground-truth hand points by ICP over scale and
   translation, and apply the same similarity to the predicted object;
4. Chamfer (cm^2) and F-scores (hand at 1 and 5 mm, object at 5 and 10 mm), hand joint error and
   object centre / corner errors (cm, without alignment, as the reference), and contact metrics
   of the aligned predicted pair.

Beyond the paper's metrics, two diagnostics per sample (extra columns, after the paper's):

* the pose network's joints (``joints`` of the pose file) over the 20 non-wrist joints: 3D,
  image (pixels of the stored crop) and depth error, next to the mean-pose baseline (the
  training split's mean wrist-relative joints placed at the annotated wrist;
  :mod:`gsdf.eval.pose_error`);
* the view extents: the predicted surface's extent along the camera ray through the true
  surface's centre and across it, divided by the true one's, before any alignment
  (:func:`extent_ratios`); a reconstruction drawn out along the rays has a depth ratio above 1
  at a lateral ratio near 1.

``evaluate.protocol`` chooses between two readings of the protocol where they differ
(docs/paper.md "Evaluation protocol"):

* ``gsdf``: largest component of all; one set of 30,000 samples per surface, used by the ICP and
  by the metrics (the similarity is applied to the samples); the hand joint error of the
  network's joints.
* ``reference`` (zerchen/gSDF ``playground/*/recon.py`` + ``datasets/*/_evaluate``): largest
  *watertight* component, the whole mesh when there are fewer than two; the ICP samples its own
  30,000 points per hand surface, the aligned meshes are then sampled afresh for the metrics;
  the hand joint error of the IK-refit joints (``ik_joints`` of the pose file) when the model
  has them (gSDF).

A missing or corrupt prediction makes the sample *failed* (with its reason) and its metrics empty;
it never stops the stage. ``metrics.csv`` is one row: counts, then mean and median of every
metric over the samples where it could be computed.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh
from scipy.spatial import cKDTree

from gsdf.config import ConfigError, from_dict
from gsdf.eval.align import Similarity, icp_on_meshes, icp_scale_translation
from gsdf.eval.contact import contact_metrics
from gsdf.eval.metrics import (
    M_TO_CM,
    center_error_cm,
    joint_error_cm,
    largest_component,
    sample_surface,
    surface_metrics,
    view_extents,
)
from gsdf.eval.pose_error import mean_pose, pose_errors
from gsdf.eval.summary import (  # noqa: F401  (re-exported: the stage's bookkeeping)
    ReconstructNotes,
    add_reasons,
    reconstruct_notes,
    summarize,
    summary_of,
    test_ids,
    with_upstream,
    write_csv,
)
from gsdf.geometry.mesh_io import MeshError, load_mesh
from gsdf.paths import PredictionLayout, SplitLayout
from gsdf.utils.io import read_json

# Per-sample metric columns (units in the names), in the order of the paper's tables.
METRICS: tuple[str, ...] = (
    "chamfer_hand_cm2", "fscore_hand_1mm", "fscore_hand_5mm",
    "chamfer_obj_cm2", "fscore_obj_5mm", "fscore_obj_10mm",
    "hand_joint_err_cm", "obj_center_err_cm", "obj_corner_err_cm",
    "penetration_depth_cm", "intersection_volume_cm3", "contact",
    "icp_scale", "root_err_cm",
    # the pose network's joints over the 20 non-wrist joints, and the mean-pose baseline's
    "pose_err_cm", "pose_err_px", "pose_err_depth_cm",
    "mean_pose_err_cm", "mean_pose_err_px", "mean_pose_err_depth_cm",
    # predicted / true surface extent along the camera ray and across it
    "depth_ratio_hand", "lateral_ratio_hand", "depth_ratio_obj", "lateral_ratio_obj",
)
POSE_COLUMNS = ("pose_err_cm", "pose_err_px", "pose_err_depth_cm")
MEAN_POSE_COLUMNS = ("mean_pose_err_cm", "mean_pose_err_px", "mean_pose_err_depth_cm")


PROTOCOLS = ("gsdf", "reference")


class EvaluationError(RuntimeError):
    """The stage cannot run (e.g. an empty test split)."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Config section ``evaluate``.

    Attributes:
        num_points: surface samples per mesh (the protocol: 30000).
        icp: align the predicted hand to the ground truth over scale + translation.
        icp_max_iter: ICP iterations (the reference: 100).
        largest_component: keep only the largest connected component of each predicted mesh.
        hand_thresholds_mm: F-score thresholds of the hand, mm.
        obj_thresholds_mm: F-score thresholds of the object, mm.
        contact: compute the contact metrics (libigl signed distances).
        contact_step: grid step of the intersection volume, metres.
        seed: seed of the surface sampling (combined with the sample id).
        protocol: ``gsdf`` | ``reference`` (see the module docstring).
    """

    num_points: int = 30000
    icp: bool = True
    icp_max_iter: int = 100
    largest_component: bool = True
    hand_thresholds_mm: tuple[float, ...] = (1.0, 5.0)
    obj_thresholds_mm: tuple[float, ...] = (5.0, 10.0)
    contact: bool = True
    contact_step: float = 0.005
    seed: int = 0
    protocol: str = "gsdf"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"config key 'evaluate.protocol' = {self.protocol!r}; allowed "
                              f"values: {list(PROTOCOLS)}")


@dataclasses.dataclass(frozen=True)
class SamplePaths:
    """Everything one sample's evaluation reads."""

    id: str
    pred_hand: Path
    pred_obj: Path
    pred_pose: Path
    gt_hand: Path
    gt_obj: Path
    gt_meta: Path


def metric_columns(cfg: EvalConfig) -> list[str]:
    """Per-sample metric columns for ``cfg``'s thresholds (:data:`METRICS` for the defaults)."""
    cols = ["chamfer_hand_cm2", *(_mm_name("fscore_hand", t) for t in cfg.hand_thresholds_mm),
            "chamfer_obj_cm2", *(_mm_name("fscore_obj", t) for t in cfg.obj_thresholds_mm)]
    return cols + [m for m in METRICS if not m.startswith(("chamfer", "fscore"))]


def _seed(sample_id: str, seed: int, which: str) -> int:
    return (zlib.crc32(f"{sample_id}/{which}".encode()) + seed) % (2 ** 32)


def _load_pred(path: Path, keep_largest: bool, protocol: str = "gsdf") -> trimesh.Trimesh:
    mesh = load_mesh(path)
    if not keep_largest:
        return mesh
    return largest_component(mesh, watertight_only=protocol == "reference")


def _moved(mesh: trimesh.Trimesh, similarity: Similarity) -> trimesh.Trimesh:
    """``mesh`` (metres) under ``similarity`` (cm)."""
    to_metres = Similarity(similarity.scale, similarity.translation / M_TO_CM)
    return trimesh.Trimesh(to_metres.apply(mesh.vertices), mesh.faces, process=False)


def _mm_name(prefix: str, t: float) -> str:
    return f"{prefix}_{t:g}mm"


def evaluate_sample(paths: SamplePaths, cfg: EvalConfig,
                    mean_offsets: np.ndarray | None = None) -> dict:
    """Metrics of one sample: a dict with ``id``, ``failed`` (bool), ``reason`` (str) and the
    :func:`metric_columns` (NaN where not computable).

    Args:
        mean_offsets: (21, 3) mean wrist-relative joints of the training split, metres
            (:func:`gsdf.eval.pose_error.mean_offsets`); fills the ``mean_pose_err_*`` columns.
    """
    row: dict = {"id": paths.id, "failed": False, "reason": ""}
    row.update({name: np.nan for name in metric_columns(cfg)})
    try:
        meta = read_json(paths.gt_meta)
        gt_hand = load_mesh(paths.gt_hand)
        gt_obj = load_mesh(paths.gt_obj)
    except (OSError, ValueError) as err:  # MeshError is a ValueError
        row.update(failed=True, reason=f"ground truth: {err}")
        return row
    hand, obj, reasons = _predictions(paths, cfg)
    similarity = Similarity(1.0, np.zeros(3))  # in cm
    if hand is not None:
        similarity = _hand_metrics(row, hand, gt_hand, paths.id, cfg)
    if obj is not None:
        _obj_metrics(row, obj, gt_obj, similarity, paths.id, cfg)
    if hand is not None and obj is not None and cfg.contact:
        c = contact_metrics(_moved(hand, similarity), _moved(obj, similarity), cfg.contact_step)
        row["penetration_depth_cm"] = c["penetration_depth"]
        row["intersection_volume_cm3"] = c["intersection_volume"]
        row["contact"] = c["contact"]
    reasons += _pose_metrics(row, paths.pred_pose, meta, cfg, mean_offsets)
    if reasons:
        row.update(failed=True, reason="; ".join(reasons))
    return row


def _predictions(paths: SamplePaths, cfg: EvalConfig
                 ) -> tuple[trimesh.Trimesh | None, trimesh.Trimesh | None, list[str]]:
    """The predicted hand and object meshes as evaluated (``None`` where unreadable), and the
    reasons of the unreadable ones."""
    meshes: list[trimesh.Trimesh | None] = []
    reasons: list[str] = []
    for path, what in ((paths.pred_hand, "hand mesh"), (paths.pred_obj, "object mesh")):
        try:
            meshes.append(_load_pred(path, cfg.largest_component, cfg.protocol))
        except MeshError as err:
            meshes.append(None)
            reasons.append(f"{what}: {err}")
    return meshes[0], meshes[1], reasons


def _samples(mesh: trimesh.Trimesh, sample_id: str, cfg: EvalConfig, which: str) -> np.ndarray:
    """(num_points, 3) surface samples of ``mesh`` in cm, seeded by sample and ``which``."""
    return sample_surface(mesh, cfg.num_points, _seed(sample_id, cfg.seed, which)) * M_TO_CM


def _hand_metrics(row: dict, hand: trimesh.Trimesh, gt_hand: trimesh.Trimesh, sample_id: str,
                  cfg: EvalConfig) -> Similarity:
    """Hand Chamfer, F-scores, ICP scale and view extents into ``row``; returns the similarity
    (cm) that aligns the predicted hand to the true one (identity without ICP)."""
    pred = _samples(hand, sample_id, cfg, "ph")
    gt = _samples(gt_hand, sample_id, cfg, "gh")
    row.update(extent_ratios("hand", pred, gt))
    thresholds = tuple(t / 10.0 for t in cfg.hand_thresholds_mm)
    similarity = Similarity(1.0, np.zeros(3))
    if cfg.protocol == "reference" and cfg.icp:
        # the reference's icp_ts: its own samples of both meshes, then the aligned mesh is
        # sampled afresh for the metrics (recon.py exports it, _evaluate samples it)
        similarity = icp_on_meshes(hand, gt_hand, cfg.num_points, cfg.icp_max_iter,
                                   _seed(sample_id, cfg.seed, "icp"))
        pred = _samples(_moved(hand, similarity), sample_id, cfg, "ph")
        m = surface_metrics(pred, gt, thresholds)
    else:
        trees = (cKDTree(pred), cKDTree(gt))  # shared by the ICP and the metrics
        if cfg.icp:
            similarity = icp_scale_translation(pred, gt, max_iter=cfg.icp_max_iter, trees=trees)
        m = surface_metrics(pred, gt, thresholds, tree_pred=trees[0], tree_gt=trees[1],
                            scale=similarity.scale, translation=similarity.translation)
    row["chamfer_hand_cm2"] = m["chamfer"]
    for t in cfg.hand_thresholds_mm:
        row[_mm_name("fscore_hand", t)] = m[f"fscore@{t / 10.0:g}"]
    row["icp_scale"] = similarity.scale
    return similarity


def _obj_metrics(row: dict, obj: trimesh.Trimesh, gt_obj: trimesh.Trimesh,
                 similarity: Similarity, sample_id: str, cfg: EvalConfig) -> None:
    """Object Chamfer and F-scores (after the hand's similarity) and view extents into ``row``."""
    gt = _samples(gt_obj, sample_id, cfg, "go")
    raw = _samples(obj, sample_id, cfg, "po")
    row.update(extent_ratios("obj", raw, gt))
    if cfg.protocol == "reference":
        pred = _samples(_moved(obj, similarity), sample_id, cfg, "po")
    else:
        pred = similarity.apply(raw)
    m = surface_metrics(pred, gt, tuple(t / 10.0 for t in cfg.obj_thresholds_mm))
    row["chamfer_obj_cm2"] = m["chamfer"]
    for t in cfg.obj_thresholds_mm:
        row[_mm_name("fscore_obj", t)] = m[f"fscore@{t / 10.0:g}"]


def extent_ratios(part: str, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """``depth_ratio_{part}`` and ``lateral_ratio_{part}``: the predicted surface's extent along
    the camera ray through the true surface's centre, and across it, divided by the true
    surface's (:func:`gsdf.eval.metrics.view_extents`; before any alignment, so a prediction
    drawn out along the rays has a depth ratio above 1 at a lateral ratio near 1).

    Args:
        pred, gt: (N, 3) and (M, 3) surface samples, camera space (the camera at the origin).

    Returns:
        the two ratios; NaN where the true extent is zero.
    """
    ray = gt.mean(axis=0)
    out = {}
    for name, p, g in zip(("depth", "lateral"), view_extents(pred, ray), view_extents(gt, ray),
                          strict=True):
        out[f"{name}_ratio_{part}"] = p / g if g > 0 else np.nan
    return out


def _pose_metrics(row: dict, path: Path, meta: dict, cfg: EvalConfig,
                  offsets: np.ndarray | None) -> list[str]:
    """Joint, object centre / corner and root errors from the pose file into ``row``; the
    reasons it could not be read (empty when it could)."""
    try:
        pose = read_json(path)
        if not isinstance(pose, dict):
            raise ValueError(f"{path}: expected a JSON object")
        joints = pose.get("joints")
        if cfg.protocol == "reference" and pose.get("ik_joints") is not None:
            joints = pose["ik_joints"]  # the reference scores the IK-refit MANO joints
        if joints is not None:
            row["hand_joint_err_cm"] = joint_error_cm(joints, meta["hand_joints_3d"])
        if pose.get("obj_center") is not None:
            row["obj_center_err_cm"] = center_error_cm(pose["obj_center"], meta["obj_center_3d"])
        if pose.get("obj_corners") is not None:
            row["obj_corner_err_cm"] = joint_error_cm(pose["obj_corners"], meta["obj_corners_3d"])
        if pose.get("root") is not None:  # reconstruct.hand_frame: predicted
            row["root_err_cm"] = center_error_cm(pose["root"], meta["hand_joints_3d"][0])
        if pose.get("joints") is not None:  # the network's own estimate, wrist given
            row.update(pose_network_errors(pose["joints"], meta, offsets))
    except FileNotFoundError:
        return [f"pose: {path}: file not found"]
    except (ValueError, KeyError, TypeError) as err:
        return [f"pose: {err}"]
    return []


def pose_network_errors(joints: Sequence, meta: dict, offsets: np.ndarray | None
                        ) -> dict[str, float]:
    """``pose_err_cm``, ``pose_err_px``, ``pose_err_depth_cm`` of the estimated joints (21, 3)
    over the 20 non-wrist joints (:func:`gsdf.eval.pose_error.pose_errors`, pixels of the
    stored crop of ``meta["cam_intr"]``), and the same of the mean-pose baseline
    (``mean_pose_err_*``) when the training split's ``offsets`` are given."""
    gt, k = meta["hand_joints_3d"], meta["cam_intr"]
    out = dict(zip(POSE_COLUMNS, pose_errors(joints, gt, k), strict=True))
    if offsets is not None:
        out.update(zip(MEAN_POSE_COLUMNS, pose_errors(mean_pose(gt, offsets), gt, k),
                       strict=True))
    return out


def _evaluate_star(args: tuple[SamplePaths, EvalConfig, np.ndarray | None]) -> dict:
    return evaluate_sample(*args)


def evaluate_samples(samples: Sequence[SamplePaths], cfg: EvalConfig, threads: int = 1,
                     mean_offsets: np.ndarray | None = None) -> pd.DataFrame:
    """Per-sample metrics of ``samples`` (in the given order), ``threads`` processes;
    ``mean_offsets``: see :func:`evaluate_sample`."""
    if not samples:
        raise EvaluationError("the test split is empty: no samples to evaluate")
    jobs = [(s, cfg, mean_offsets) for s in samples]
    if threads > 1 and len(samples) > 1:
        with multiprocessing.get_context("fork").Pool(min(threads, len(samples))) as pool:
            rows = pool.map(_evaluate_star, jobs, chunksize=1)
    else:
        rows = [_evaluate_star(j) for j in jobs]
    return pd.DataFrame(rows, columns=["id", "failed", "reason", *metric_columns(cfg)])


def sample_paths(gt: SplitLayout, pred: PredictionLayout, ids: Sequence[str]
                 ) -> list[SamplePaths]:
    """Prediction and ground-truth paths of ``ids``.

    Args:
        gt: the ground-truth split (canonical layout, docs/architecture.md).
        pred: the experiment's reconstructions.
    """
    return [SamplePaths(id=i, pred_hand=pred.mesh("hand", i), pred_obj=pred.mesh("obj", i),
                        pred_pose=pred.pose(i), gt_hand=gt.mesh("hand", i),
                        gt_obj=gt.mesh("obj", i), gt_meta=gt.meta(i)) for i in ids]


def eval_config(params: dict) -> EvalConfig:
    """:class:`EvalConfig` from a job's params (section ``evaluate``)."""
    section = dict(params.get("evaluate", {}))
    for key in ("hand_thresholds_mm", "obj_thresholds_mm"):
        if key in section:
            section[key] = tuple(section[key])
    return from_dict(EvalConfig, section, "evaluate")
