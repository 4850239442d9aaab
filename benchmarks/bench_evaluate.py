"""Evaluation speed: seconds per sample of the published protocol on one core.

A hand-like ground truth (palm + five fingers) and an object are meshed from analytic SDFs;
the "prediction" is the same scene with other finger poses, scaled by 1.05 and shifted by 5 mm,
with a floating blob, so every step runs (largest component, ICP, metrics, contact).

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_evaluate --samples 5   # from the repo root
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from benchmarks.bench_reconstruct import hand_scene
from gsdf.eval.evaluate import EvalConfig, SamplePaths, evaluate_sample
from gsdf.geometry.mesh_io import save_mesh
from gsdf.geometry.meshing import GridSpec, marching_cubes, sample_dense
from gsdf.utils.io import write_json


def scene_meshes(seed: int, wrist: np.ndarray, res: int = 96) -> tuple[trimesh.Trimesh, ...]:
    """(hand, object) meshes in camera metres of :func:`hand_scene` with ``seed``."""
    out = []
    for which in (0, 1):
        spec = GridSpec((-0.05, -0.1, -0.08), 0.25 / (res - 1), res)  # metres around the wrist

        def field(p, which=which):
            return hand_scene(p + wrist, wrist, seed)[which]

        verts, faces = marching_cubes(sample_dense(field, spec))
        out.append(trimesh.Trimesh(verts + wrist, faces, process=False))
    return tuple(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--no-contact", action="store_true", help="skip the contact metrics")
    args = parser.parse_args()
    wrist = np.array([0.01, -0.02, 0.5])
    cfg = EvalConfig(contact=not args.no_contact)
    times, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for k in range(args.samples):
            gt_hand, gt_obj = scene_meshes(k, wrist)
            pr_hand, pr_obj = scene_meshes(k + 100, wrist)
            blob = trimesh.creation.icosphere(2, 0.004)
            blob.apply_translation(wrist + [0.0, 0.1, 0.0])
            pr_hand = trimesh.util.concatenate([pr_hand, blob])
            sid = f"{k:06d}_000"
            paths = SamplePaths(sid, root / f"{sid}_ph.ply", root / f"{sid}_po.ply",
                                root / f"{sid}_pose.json", root / f"{sid}_gh.ply",
                                root / f"{sid}_go.ply", root / f"{sid}_meta.json")
            for mesh, path in ((pr_hand, paths.pred_hand), (pr_obj, paths.pred_obj),
                               (gt_hand, paths.gt_hand), (gt_obj, paths.gt_obj)):
                v = mesh.vertices
                if path in (paths.pred_hand, paths.pred_obj):
                    v = (v - wrist) * 1.05 + wrist + 0.005
                save_mesh(path, v, mesh.faces)
            joints = np.tile(wrist, (21, 1))
            write_json(paths.gt_meta, {"hand_joints_3d": joints, "obj_center_3d": wrist,
                                       "obj_corners_3d": np.tile(wrist, (8, 1))})
            write_json(paths.pred_pose, {"joints": joints + 0.01, "obj_center": wrist,
                                         "obj_corners": None})
            start = time.perf_counter()
            rows.append(evaluate_sample(paths, cfg))
            times.append(time.perf_counter() - start)
    result = {"samples": args.samples, "contact": cfg.contact,
              "seconds_per_sample_mean": round(float(np.mean(times)), 3),
              "seconds_per_sample_max": round(float(np.max(times)), 3),
              "chamfer_hand_cm2": [round(r["chamfer_hand_cm2"], 4) for r in rows],
              "icp_scale": [round(r["icp_scale"], 4) for r in rows]}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
