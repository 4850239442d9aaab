"""`gsdf reconstruct | evaluate | compare | predict`: the evaluation stages' arguments
(parsing only; the work is in :mod:`gsdf.stages`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsdf.cli.base import command, params_of, paths_of


def _reconstruct_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="results/{exp}_{dataset}/checkpoint.pt")
    p.add_argument("--packed-dir", required=True, help="packed test split results/{dataset}/test")
    p.add_argument("--shard-manifest", required=True,
                   help="the dataset's test shard manifest (ids of this shard)")
    p.add_argument("--out", required=True, help="shard manifest to write, "
                   "results/{exp}_{dataset}/reconstruct/shard_{k}.json")
    p.add_argument("--meshes-dir", required=True, help="results/{exp}_{dataset}/meshes")
    p.add_argument("--poses-dir", required=True, help="results/{exp}_{dataset}/poses")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--point-batch-size", type=int, default=65536,
                   help="query points per decoder call (runtime: memory only)")


@command("reconstruct", "meshes and poses of one test shard from a trained model",
         _reconstruct_args)
def reconstruct(args: argparse.Namespace) -> int:
    import sys

    from gsdf.eval.hand_frame import HandFrameError
    from gsdf.stages import reconstruct as stage

    try:
        stage.run(stage.Inputs(Path(args.checkpoint), Path(args.packed_dir),
                               Path(args.shard_manifest)),
                  stage.Outputs(Path(args.out), Path(args.meshes_dir), Path(args.poses_dir)),
                  params_of(args), device=args.device, threads=args.threads,
                  point_batch_size=args.point_batch_size)
    except HandFrameError as err:
        print(f"gsdf reconstruct: {err}", file=sys.stderr)
        return 2
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split-dir", required=True,
                   help="the ground-truth test split, results/datasets/{dataset}/test")
    p.add_argument("--dataset-shards", nargs="+", required=True,
                   help="the test split's shard manifests (ids to evaluate)")
    p.add_argument("--recon-shards", nargs="+", required=True,
                   help="the reconstruct shard manifests")
    p.add_argument("--meshes-dir", required=True, help="results/{exp}_{dataset}/meshes")
    p.add_argument("--poses-dir", required=True, help="results/{exp}_{dataset}/poses")
    p.add_argument("--train-annotations", default=None,
                   help="packed training split's annotations.json "
                   "(results/{dataset}/train/annotations.json): the mean-pose baseline")
    p.add_argument("--per-sample", required=True, help="metrics_per_sample.csv to write")
    p.add_argument("--metrics", required=True, help="metrics.csv to write")
    p.add_argument("--renders", nargs=3, default=(), metavar=("BEST", "MEDIAN", "WORST"),
                   help="PNGs of the best, median and worst samples by hand Chamfer")
    p.add_argument("--gallery", default=None,
                   help="PNG of six samples spread over the hand-Chamfer ranking")
    p.add_argument("--threads", type=int, default=1, help="worker processes")


@command("evaluate", "metrics of an experiment's reconstructions (the published protocol)",
         _evaluate_args)
def evaluate(args: argparse.Namespace) -> int:
    from gsdf.stages import evaluate as stage

    stage.run(stage.Inputs(Path(args.split_dir), paths_of(args.dataset_shards),
                           paths_of(args.recon_shards), Path(args.meshes_dir),
                           Path(args.poses_dir),
                           Path(args.train_annotations) if args.train_annotations else None),
              stage.Outputs(Path(args.per_sample), Path(args.metrics), paths_of(args.renders),
                            Path(args.gallery) if args.gallery else None),
              params_of(args), threads=args.threads)
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", nargs="+", required=True, metavar="EXP=PATH",
                   help="experiment=metrics.csv pairs, in table order")
    p.add_argument("--csv", required=True, help="{dataset}_comparison.csv to write")
    p.add_argument("--md", required=True, help="{dataset}_comparison.md to write")
    p.add_argument("--plot", required=True, help="{dataset}_comparison.png to write")


@command("compare", "all experiments of a dataset side by side (paper table, bar chart)",
         _compare_args)
def compare(args: argparse.Namespace) -> int:
    from gsdf.stages import compare as stage

    pairs = {}
    for item in args.metrics:
        exp, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"gsdf compare: --metrics takes EXP=PATH pairs, got {item!r}")
        pairs[exp] = Path(path)
    stage.run(stage.Inputs(pairs), stage.Outputs(Path(args.csv), Path(args.md), Path(args.plot)),
              params_of(args))
    return 0


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="photos (JPEG, PNG, ...) or one folder of photos")
    p.add_argument("--checkpoint", required=True, metavar="EXP_DIR",
                   help="a gsdf / gsdf_video experiment folder (results/{exp}_{dataset}) or its "
                   "checkpoint.pt")
    p.add_argument("--bbox", nargs=4, type=float, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around the hand and the object, pixels (default: the whole photo)")
    p.add_argument("--focal", type=float, default=None, metavar="F",
                   help="focal length of the photo in pixels (default: from EXIF, else a "
                   "26 mm-equivalent phone camera; see docs/predict.md)")
    p.add_argument("--out", default="predictions", metavar="DIR",
                   help="output folder (default: ./predictions)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


@command("predict", "hand and object meshes from your own photos (gsdf / gsdf_video models)",
         _predict_args)
def predict(args: argparse.Namespace) -> int:
    import logging
    import sys

    from gsdf.config import ConfigError
    from gsdf.eval.predict import PredictInputError
    from gsdf.stages import predict as stage

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    params = params_of(args)
    if args.focal is not None:
        params = {**params, "predict": {**(params.get("predict") or {}), "focal": args.focal}}
    try:
        manifest = stage.run(
            stage.Inputs(Path(args.checkpoint), tuple(Path(p) for p in args.images)),
            stage.Outputs(Path(args.out)), params, bbox=args.bbox, device=args.device,
            threads=args.threads)
    except (PredictInputError, ConfigError) as err:
        print(f"gsdf predict: {err}", file=sys.stderr)
        return 2
    for item in manifest["skipped"]:
        print(f"gsdf predict: skipped {item['reason']}", file=sys.stderr)
    print(f"gsdf predict: {len(manifest['done'])} photo(s) reconstructed into {args.out}, "
          f"{len(manifest['skipped'])} skipped")
    return 0 if manifest["done"] else 2
