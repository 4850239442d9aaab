"""How far an experiment's meshes are drawn out along the camera rays: per test sample, the
depth extent (along the camera ray through the true mesh's centre) and the lateral extent
(across it) of the predicted hand and object surfaces, divided by the ground truth's
(``gsdf.eval.metrics.view_extents``, 95% of 5,000 surface samples); the medians are printed.
A streak along the rays has a depth ratio well above 1 at a lateral ratio near 1. Run from the
folder holding ``results/``::

    python scripts/view_extent.py --exp gsdf --dataset synth
"""

from __future__ import annotations

import argparse

import numpy as np

from gsdf.eval.metrics import sample_surface, view_extents
from gsdf.geometry.mesh_io import MeshError, load_mesh
from gsdf.paths import Layout, PredictionLayout, SplitLayout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exp", required=True, help="experiment name, e.g. gsdf")
    p.add_argument("--dataset", default="synth")
    p.add_argument("--results", default="results", help="results root")
    p.add_argument("--split", default="test")
    p.add_argument("--samples", type=int, default=5000, help="surface samples per mesh")
    a = p.parse_args()
    layout = Layout(a.results)
    gt = SplitLayout(layout.split_dir(dataset=a.dataset, split=a.split))
    mesh_dir = layout.meshes_dir(exp=a.exp, dataset=a.dataset)
    pred = PredictionLayout(mesh_dir, layout.poses_dir(exp=a.exp, dataset=a.dataset))
    ids = [sid for sid in gt.ids() if pred.mesh("obj", sid).exists()]
    if not ids:
        raise SystemExit(f"no meshes in {mesh_dir}; run `snakemake --cores all "
                         f"results/{a.exp}_{a.dataset}/metrics.csv` first")
    ratios: dict[str, list[tuple[float, float]]] = {"hand": [], "obj": []}
    skipped = 0
    for sid in ids:
        for part in ("hand", "obj"):
            try:
                pred_mesh = load_mesh(pred.mesh(part, sid))
                gt_mesh = load_mesh(gt.mesh(part, sid))
            except (MeshError, OSError) as err:
                print(f"skipped {sid} {part}: {err}")
                skipped += 1
                continue
            gt_pts = sample_surface(gt_mesh, a.samples)
            ray = gt_pts.mean(axis=0)
            d_gt, l_gt = view_extents(gt_pts, ray)
            d_pr, l_pr = view_extents(sample_surface(pred_mesh, a.samples), ray)
            ratios[part].append((d_pr / d_gt, l_pr / l_gt))
    print(f"{a.exp} on {a.dataset} ({a.split}): predicted / true extent, median over samples"
          f" ({skipped} meshes skipped)")
    for part, rows in ratios.items():
        if rows:
            r = np.median(np.asarray(rows), axis=0)
            print(f"  {part:4s} n={len(rows):4d}  depth {r[0]:.2f}  lateral {r[1]:.2f}")


if __name__ == "__main__":
    main()
