"""Reconstruction speed: coarse-to-fine vs dense meshing on the same model, side by side.

Two setups:

* default (no trained model needed): a real ``gsdf.models`` DeepSDF decoder (5 layers of 512,
  random weights) is evaluated on every query point, so the cost per query is the real one,
  while the field values come from an analytic hand-object scene (palm, five 1.5-2 cm fingers,
  an object) clamped at 0.05 like the networks' target, so the zero level set is realistic;
* ``--checkpoint results/{exp}_{dataset}/checkpoint.pt --packed-dir results/{dataset}/test``: a
  trained model; with ``--split-dir results/datasets/{dataset}/test`` the hand and object
  Chamfer distances to the ground truth (the evaluate protocol) of both modes are compared.

``--refine lipschitz sign`` runs both coarse-to-fine refinement rules; every ratio compares the
samples meshed in dense mode (the first ``--dense-samples``) with the same samples in
coarse-to-fine mode.

``--backends`` instead compares where the coarse-to-fine bookkeeping runs (numpy vs torch on
the CPU, alternating in one process; :func:`compare_backends`).

Usage::

    python benchmarks/bench_reconstruct.py --samples 2 --dense-samples 1 --threads 1
    python benchmarks/bench_reconstruct.py --backends --samples 3 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gsdf.eval.reconstruct import ReconstructConfig, reconstruct_samples
from gsdf.paths import PredictionLayout, SplitLayout

RECON_SCALE = 7.0


def _capsule(p, a, b, r):
    pa, ba = p - a, b - a
    t = np.clip(pa @ ba / (ba @ ba), 0, 1)
    return np.linalg.norm(pa - t[:, None] * ba, axis=1) - r


def _box(p, c, h):
    q = np.abs(p - c) - h
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def hand_scene(p_cam: np.ndarray, wrist: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (metres) of a hand-like shape and an object at camera points (K, 3)."""
    rng = np.random.default_rng(seed)
    p = p_cam - wrist
    hand = _box(p, np.array([0.045, 0.0, 0.0]), np.array([0.045, 0.04, 0.012]))
    for k, y in enumerate(np.linspace(-0.032, 0.032, 4)):
        base = np.array([0.09, y, 0.0])
        tip = base + [0.07 + 0.01 * (k % 2), 0.0, 0.03 * rng.uniform(0.5, 1.5)]
        hand = np.minimum(hand, _capsule(p, base, tip, 0.008 + 0.001 * (k == 0)))
    thumb = _capsule(p, np.array([0.03, 0.045, 0.0]), np.array([0.07, 0.09, 0.02]), 0.0095)
    hand = np.minimum(hand, thumb)
    centre = np.array([0.11, 0.0, 0.06 + 0.01 * rng.uniform()])
    obj = np.linalg.norm(p - centre, axis=1) - (0.035 + 0.01 * rng.uniform())
    return hand, obj


class DecoderProxy:
    """A model whose query cost is a real DeepSDF decoder and whose field is :func:`hand_scene`.

    Implements the model API used by :func:`gsdf.eval.reconstruct.reconstruct_sample`.
    """

    hand_decoder = True
    obj_decoder = True

    def __init__(self, feat_dim: int = 256, point_dim: int = 51):
        from gsdf.models import DecoderArgs
        from gsdf.models.decoder import SDFDecoder

        torch.manual_seed(0)
        self.decoders = {b: SDFDecoder(feat_dim, point_dim, DecoderArgs()).eval()
                         for b in ("hand", "obj")}
        self.feat = torch.randn(1, feat_dim)
        self.point_dim = point_dim
        self.queries = 0

    def encode(self, batch):
        return {"wrist": batch["hand_center_3d"], "scale": batch["recon_scale"] / 2,
                "seed": int(batch["seed"][0])}

    def query(self, state, points, branch):
        n = points.shape[1]
        self.queries += n
        x = torch.cat([self.feat.expand(n, -1), points[0].repeat(1, self.point_dim // 3 + 1)
                       [:, :self.point_dim]], dim=1)
        self.decoders[branch](x)  # the real cost; its values are not used
        scale = float(state["scale"][0])
        wrist = state["wrist"][0].double().numpy()
        hand, obj = hand_scene(points[0].double().numpy() / scale + wrist, wrist, state["seed"])
        sdf = (hand if branch == "hand" else obj) * scale
        return torch.as_tensor(np.clip(sdf, -0.05, 0.05), dtype=torch.float32)[None]

    def predict_pose(self, state):
        return {"joints": None, "obj_center": None, "obj_corners": None}


class ProxyDataset:
    def __init__(self, n: int):
        self.ids = [f"{k:06d}_000" for k in range(n)]

    def __getitem__(self, index):
        return {"id": self.ids[index], "seed": torch.tensor(index),
                "hand_center_3d": torch.tensor([0.01, -0.02, 0.5]),
                "recon_scale": torch.tensor(RECON_SCALE)}


def _pred(root: str | Path) -> PredictionLayout:
    return PredictionLayout(Path(root) / "meshes", Path(root) / "poses")


def _chamfer_to_gt(gt: SplitLayout, pred: PredictionLayout, ids: list[str]) -> dict:
    """(hand, object) Chamfer (cm^2) to the ground truth of each id (the evaluate protocol)."""
    from gsdf.eval.evaluate import EvalConfig, evaluate_sample, sample_paths

    rows = [evaluate_sample(p, EvalConfig(contact=False)) for p in sample_paths(gt, pred, ids)]
    return {r["id"]: (r["chamfer_hand_cm2"], r["chamfer_obj_cm2"]) for r in rows}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        from gsdf.checkpoint import load_trained
        from gsdf.data import build_dataset
        from gsdf.train.config import recorded_train, train_config
        from gsdf.train.run import dataset_options

        trained = load_trained(args.checkpoint, "cpu")
        model, experiment = trained.model, trained.experiment
        opts = dataset_options(experiment,
                               train_config(experiment, recorded_train(trained.train)))
        opts.update(train=False, augment=False)
        data = build_dataset(args.packed_dir, **opts)
        what = f"trained model {args.checkpoint}"
    else:
        model, data = DecoderProxy(), ProxyDataset(args.samples)
        what = "real 5x512 decoder (random weights), analytic hand-object field"
    ids = list(data.ids)[:args.samples]
    lipschitz = args.lipschitz or ReconstructConfig().lipschitz
    out: dict = {"model": what, "threads": args.threads, "modes": {}, "lipschitz": lipschitz}
    # Every mode meshes the same samples: the coarse-to-fine rules all `--samples`, dense the
    # first `--dense-samples`; ratios and Chamfer comparisons use those common samples.
    runs = [(f"coarse_to_fine/{r}", dataclasses.replace(
        ReconstructConfig(), mode="coarse_to_fine", lipschitz=lipschitz, refine=r), len(ids))
        for r in args.refine]
    runs.append(("dense", dataclasses.replace(ReconstructConfig(), mode="dense"),
                 args.dense_samples))
    common = ids[:args.dense_samples]
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg, n in runs:
            root = Path(tmp) / name.replace("/", "_")
            start = time.perf_counter()
            man = reconstruct_samples(model, data, ids[:n], _pred(root), cfg)
            seconds = (time.perf_counter() - start) / max(n, 1)
            per_field: dict = {}
            for stat in man["stats"].values():
                for field, q in stat["queries"].items():
                    per_field[field] = per_field.get(field, 0) + q
            row = {"samples": n, "seconds_per_sample": round(seconds, 2),
                   "queries_per_sample": man["total_queries"] // max(n, 1),
                   "queries_per_sample_by_field": {k: v // max(n, 1) for k, v in
                                                   per_field.items()},
                   "common_seconds": round(float(sum(man["stats"][i]["seconds"]
                                                     for i in common)), 3),
                   "common_queries": int(sum(sum(man["stats"][i]["queries"].values())
                                             for i in common)),
                   "no_surface": man["num_no_surface"]}
            if args.split_dir:
                cd = _chamfer_to_gt(SplitLayout(args.split_dir), _pred(root), ids[:n])
                row["chamfer_cm2"] = cd
                row["mean_chamfer_common"] = [round(float(np.nanmean(
                    [cd[i][k] for i in common])), 4) for k in (0, 1)] if common else None
            row["root"] = str(root)
            out["modes"][name] = row
            print(json.dumps({name: {k: v for k, v in row.items() if k != "root"}},
                             default=str), flush=True)
        if not args.split_dir and common:
            from gsdf.geometry.mesh_io import load_mesh

            for name, _, _ in runs[:-1]:
                same = []
                for sid in common:
                    for part in ("hand", "obj"):
                        a = load_mesh(_pred(out["modes"][name]["root"]).mesh(part, sid))
                        b = load_mesh(_pred(out["modes"]["dense"]["root"]).mesh(part, sid))
                        same.append(a.vertices.shape == b.vertices.shape and float(
                            np.abs(a.vertices - b.vertices).max()) < 1e-6)
                out["modes"][name]["identical_meshes"] = all(same)
    dense = out["modes"]["dense"]
    if common:
        for name, _, _ in runs[:-1]:
            row = out["modes"][name]
            row["query_ratio"] = round(dense["common_queries"] / row["common_queries"], 1)
            row["time_ratio"] = round(dense["common_seconds"] / row["common_seconds"], 1)
    return out


def scene_fields(seed: int) -> dict:
    """The hand and object fields of :func:`hand_scene` as numpy fields of the hand frame,
    clamped at 0.05 like the networks' target (the wrist at the origin)."""
    scale = RECON_SCALE / 2
    wrist = np.zeros(3)

    def field(part: int):
        def fn(p: np.ndarray) -> np.ndarray:
            return np.clip(hand_scene(p / scale, wrist, seed)[part] * scale, -0.05, 0.05)
        return fn
    return {"hand": field(0), "obj": field(1)}


class _Timed:
    """A numpy field that adds its seconds to ``seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, points: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.fn(points)
        self.seconds += time.perf_counter() - t0
        return out


def _mesh_once(backend: str, seed: int, resolution: int) -> tuple[dict, object]:
    """One sample meshed by ``mesh_fields`` with the bookkeeping in ``backend``: its seconds
    (total, field queries, marching cubes, bookkeeping = the rest) and its result."""
    import gsdf.geometry.meshing as meshing

    fields = {k: _Timed(f) for k, f in scene_fields(seed).items()}
    cubes, cube_s = meshing.marching_cubes, [0.0]

    def timed_cubes(grid):
        t0 = time.perf_counter()
        out = cubes(grid)
        cube_s[0] += time.perf_counter() - t0
        return out

    config = meshing.MeshingConfig(resolution=resolution, lipschitz=ReconstructConfig().lipschitz,
                                   batch_size=1 << 22, backend=backend)
    meshing.marching_cubes = timed_cubes
    try:
        t0 = time.perf_counter()
        result = meshing.mesh_fields(fields, config)
        total = time.perf_counter() - t0
    finally:
        meshing.marching_cubes = cubes
    query = sum(f.seconds for f in fields.values())
    return {"total": total, "query": query, "marching_cubes": cube_s[0],
            "bookkeeping": total - query - cube_s[0]}, result


def _same_meshes(a, b) -> bool:
    """Byte-identical meshes and query counts of two ``MeshingResult``."""
    if a.spec != b.spec or a.num_queries != b.num_queries:
        return False
    for name, mesh in a.meshes.items():
        other = b.meshes[name]
        if (mesh is None) != (other is None):
            return False
        if mesh is not None and any(x.tobytes() != y.tobytes()
                                    for x, y in zip(mesh, other, strict=True)):
            return False
    return True


def compare_backends(samples: int, repeats: int, resolution: int) -> dict:
    """Seconds per sample of ``mesh_fields`` (coarse-to-fine, two analytic fields) with the
    bookkeeping in numpy vs torch on the CPU, the two alternating ``repeats`` times in one
    process (the machine may be shared: alternation spreads its load over both), and whether
    every sample's meshes are identical."""
    import os

    _mesh_once("torch", 0, 16)  # warm-up: torch's first calls
    times: dict = {b: [] for b in ("numpy", "torch")}
    identical = True
    for _ in range(repeats):
        for seed in range(samples):
            results = {}
            for backend in ("numpy", "torch"):
                secs, results[backend] = _mesh_once(backend, seed, resolution)
                times[backend].append(secs)
            identical &= _same_meshes(results["numpy"], results["torch"])
    rows = {b: {k: round(float(np.mean([t[k] for t in ts])), 3) for k in ts[0]}
            for b, ts in times.items()}
    return {"resolution": resolution, "samples": samples, "repeats": repeats,
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
            "seconds_per_sample": rows, "identical_meshes": identical,
            "bookkeeping_ratio_torch_over_numpy": round(
                rows["torch"]["bookkeeping"] / rows["numpy"]["bookkeeping"], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="trained checkpoint.pt (default: decoder proxy)")
    parser.add_argument("--packed-dir", help="packed test split, with --checkpoint")
    parser.add_argument("--split-dir", help="canonical test split, for Chamfer to ground truth")
    parser.add_argument("--samples", type=int, default=2, help="samples in coarse-to-fine mode")
    parser.add_argument("--dense-samples", type=int, default=1, help="samples in dense mode")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--lipschitz", type=float, default=None,
                        help="reconstruct.lipschitz of the coarse-to-fine mode (default: "
                             f"{ReconstructConfig().lipschitz}); below 1 trusts the learned "
                             "field more than a distance, so compare the Chamfer columns")
    parser.add_argument("--refine", nargs="+", default=["lipschitz"],
                        choices=["lipschitz", "sign"],
                        help="coarse-to-fine refinement rule(s), each run side by side with "
                             "dense on the same samples")
    parser.add_argument("--backends", action="store_true",
                        help="compare the coarse-to-fine bookkeeping in numpy and torch (CPU) "
                             "on two analytic fields instead")
    parser.add_argument("--repeats", type=int, default=3, help="--backends: alternations")
    parser.add_argument("--resolution", type=int, default=128, help="--backends: grid nodes")
    args = parser.parse_args()
    if args.backends:
        torch.set_num_threads(args.threads)
        print(json.dumps(compare_backends(args.samples, args.repeats, args.resolution),
                         indent=1))
        return
    result = run(args)
    result["modes"] = {k: {kk: vv for kk, vv in v.items() if kk != "root"}
                       for k, v in result["modes"].items()}
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
