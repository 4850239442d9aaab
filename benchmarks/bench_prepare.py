"""Seconds per sample of `prepare` and `sample_sdf` (default settings) on the raw-format fixtures
of the tests (gsdf/testing/raw_datasets.py), and the disk they write per sample.

These are fixture measurements: the fixture objects have 10-12 faces (ShapeNet and YCB models
have many more) and the fixture hand 6,252 (MANO's closed mesh 1,552). ``--object-faces N``
also times, per sample, reading an OBJ model of about N faces (what `prepare` parses) and
`sample_sdf` with every object mesh replaced by a sphere of about N faces, for realistic object
sizes. docs/real_datasets.md extrapolates them to the full datasets.

Usage::

    python benchmarks/bench_prepare.py --obman-samples 40 --object-faces 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from gsdf.config import load_config
from gsdf.stages import prepare
from gsdf.stages import sample_sdf as sample_sdf_stage
from gsdf.testing.raw_datasets import make_dexycb, make_mano, make_obman


def run_shard(split_dir: Path, manifest: Path, out: Path, skipped: Path, params: dict) -> dict:
    """The sample_sdf stage on one shard."""
    return sample_sdf_stage.run(sample_sdf_stage.Inputs(split_dir, manifest),
                                sample_sdf_stage.Outputs(out, skipped), params, progress=False)


def sphere(faces: int) -> trimesh.Trimesh:
    """An icosphere (radius 5 cm) with about ``faces`` faces (20 * 4**k)."""
    k = max(0, round(float(np.log(max(faces, 20) / 20) / np.log(4))))
    return trimesh.creation.icosphere(subdivisions=k, radius=0.05)


def big_objects(name: str, out: Path, base: Path, faces: int, sample_sdf: dict) -> str:
    """OBJ parse time of a ``faces``-face model and sample_sdf time with such objects."""
    from gsdf.data.raw import load_object_mesh
    from gsdf.geometry.mesh_io import save_mesh

    ball = sphere(faces)
    obj = base / "big.obj"
    ball.export(obj)
    t = time.perf_counter()
    for _ in range(5):
        load_object_mesh(obj)
    t_parse = (time.perf_counter() - t) / 5
    ids = sorted(p.stem for p in (out / "mesh_obj").glob("*.ply"))
    for sid in ids:
        centre = trimesh.load(out / "mesh_obj" / f"{sid}.ply").vertices.mean(0)
        save_mesh(out / "mesh_obj" / f"{sid}.ply", ball.vertices + centre, ball.faces)
    shard = base / f"{name}_big.npz"
    t = time.perf_counter()
    run_shard(out, out / "shards" / "shard_000.json", shard, base / f"{name}_big.csv",
              {"sample_sdf": sample_sdf, "dataset": {"recon_scale": 7.0}})
    t_sdf = (time.perf_counter() - t) / len(ids)
    return (f"{name} with {len(ball.faces)}-face objects: OBJ parse {t_parse:.3f} s/model, "
            f"sample_sdf {t_sdf:.3f} s/sample")


def measure(name: str, dataset: dict, mano: Path, base: Path, sample_sdf: dict,
            object_faces: int = 0) -> str:
    params = {"dataset": dict(dataset, name=name, num_shards=1),
              "hand": {"mano_root": str(mano)}}
    out = base / "out" / name / "train"
    manifest = out / "shards" / "shard_000.json"
    io = (prepare.Inputs("train", 0), prepare.Outputs(manifest, out))
    t = time.perf_counter()
    rec = prepare.run(*io, params, progress=False)
    t_prepare = time.perf_counter() - t
    t = time.perf_counter()
    prepare.run(*io, params, progress=False)
    t_rerun = time.perf_counter() - t
    n = len(rec["ids"])
    shard = base / f"{name}_sdf.npz"
    t = time.perf_counter()
    run_shard(out, manifest, shard, base / f"{name}_skipped.csv",
              {"sample_sdf": sample_sdf, "dataset": {"recon_scale": 7.0}})
    t_sdf = time.perf_counter() - t
    sid = rec["ids"][0]
    faces = [len(trimesh.load(out / f"mesh_{p}" / f"{sid}.ply").faces) for p in ("hand", "obj")]
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and "shards" not in
               f.parts)
    line = (f"{name}: prepare {n} samples {t_prepare / n:.3f} s/sample (including start-up), "
            f"rerun with every sample reused {t_rerun:.2f} s; sample_sdf {t_sdf / n:.3f} "
            f"s/sample; hand / object faces {faces}; canonical files {disk / n / 1024:.0f} "
            f"KiB/sample, SDF shard {shard.stat().st_size / n / 1024:.0f} KiB/sample")
    if object_faces:
        line += "\n" + big_objects(name, out, base, object_faces, sample_sdf)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obman-samples", type=int, default=40,
                        help="extra ObMan train samples in the fixture")
    parser.add_argument("--object-faces", type=int, default=0,
                        help="also time OBJ parsing and sample_sdf with objects of ~N faces")
    args = parser.parse_args()
    sample_sdf = load_config()["sample_sdf"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        mano = make_mano(base / "mano")
        make_obman(base / "obman", base / "shapenet", mano, extra_train=args.obman_samples)
        make_dexycb(base / "dexycb", mano)
        print(measure("obman", {"root": str(base / "obman"),
                                "shapenet_root": str(base / "shapenet")}, mano, base, sample_sdf,
                      args.object_faces))
        print(measure("dexycb", {"root": str(base / "dexycb"), "split": "s0"}, mano, base,
                      sample_sdf, args.object_faces))


if __name__ == "__main__":
    main()
