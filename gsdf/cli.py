"""`gsdf <stage> ...`: one subcommand per workflow stage, named as the stage.

This module only parses arguments into a stage's ``Inputs`` / ``Outputs`` and calls
``gsdf.stages.<stage>.run`` (the stage contract: :mod:`gsdf.stages`). Every subcommand takes
``--params``: the resolved science config of that job as a JSON object (or ``@file``), which the
Snakemake rule passes so that a config change reruns exactly the affected jobs; runtime settings
(threads, batch sizes, device, progress bars) are separate flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

# (name, one-line help, add_arguments(parser), run(args)) per stage, in pipeline order.
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int | None]]
COMMANDS: list[Command] = []
# `gsdf --help` lists the stages in pipeline order.
PIPELINE_ORDER = ("synth", "prepare", "sample_sdf", "pack", "train_pose", "train_sdf",
                  "reconstruct", "evaluate", "compare", "predict")


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated ``run(args)`` as subcommand ``name`` with arguments declared by
    ``add_arguments(parser)``. Example::

        def _synth_args(p):
            p.add_argument("--split", required=True)

        @command("synth", "generate the synthetic dataset", _synth_args)
        def synth(args):
            from gsdf.stages import synth
            synth.run(synth.Inputs(...), synth.Outputs(...), _params_of(args))
    """

    def wrap(run):
        COMMANDS.append((name, help, add_arguments, run))
        return run

    return wrap


def _params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="{}",
                        help="resolved config of this job: JSON object or @file.yaml")


def build_parser() -> argparse.ArgumentParser:
    from gsdf import __version__

    parser = argparse.ArgumentParser(
        prog="gsdf", description="gSDF / AlignSDF / Grasping Field pipeline stages. "
        "Normally called by Snakemake (see README); each stage can also be run by hand.")
    parser.add_argument("--version", action="version", version=f"gsdf {__version__}")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    for name, help_text, add, run in sorted(COMMANDS, key=lambda c: order.get(c[0], 99)):
        p = sub.add_parser(name, help=help_text, description=help_text)
        _params(p)
        add(p)
        p.set_defaults(_run=run)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input, config or files (the message says what to do), not a bug:
    the CLI prints them as one paragraph, without a traceback."""
    from gsdf.config import ConfigError
    from gsdf.data.lmdb_io import PackError
    from gsdf.utils.io import DiskFullError

    errors: list[type[BaseException]] = [ConfigError, FileNotFoundError, PackError,
                                         DiskFullError]
    for module, name in (("gsdf.checkpoint", "CheckpointError"),
                         ("gsdf.eval.evaluate", "EvaluationError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


# Path arguments that name a whole tree a stage reads (results root, a dataset split), not its
# own outputs: their temporaries are not looked for (a walk of 100k samples at every job
# start). A split folder synth writes is cleaned by the synth stage itself.
_TREE_ARGS = frozenset({"results", "data", "packed_dir", "split_dir", "dataset_dir",
                        "meshes_dir", "poses_dir"})


def _remove_stale_temporaries(args: argparse.Namespace) -> None:
    """At a stage's start, remove the temporaries that killed writers left beside the files the
    job names (only those whose writer process is gone, see
    :func:`gsdf.utils.io.remove_stale_temporaries`)."""
    import logging

    from gsdf.utils.io import remove_stale_temporaries

    paths: list[str] = []
    for dest, value in vars(args).items():
        if dest.startswith("_") or dest in _TREE_ARGS or dest == "params":
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str) and ("/" in item or "." in item):
                paths.append(item)
    removed = remove_stale_temporaries(paths)
    if removed:
        logging.getLogger("gsdf").warning("removed %d stale temporaries of killed jobs: %s",
                                          len(removed), ", ".join(map(str, removed[:5])))


def main(argv: list[str] | None = None) -> int:
    import logging
    import os
    import sys

    from gsdf.utils.proc import exit_with_launcher

    exit_with_launcher()  # a torchrun worker dies with its launcher, even one killed early
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        _remove_stale_temporaries(args)
        code = args._run(args)
    except Exception as err:
        if os.environ.get("GSDF_DEBUG") or not isinstance(err, _user_errors()):
            raise
        text = " ".join(str(err).split())  # one paragraph, however the library wrapped it
        print(f"gsdf {args.stage}: {text} (GSDF_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return int(code or 0)


def _params_of(args: argparse.Namespace) -> dict:
    from gsdf.config import parse_params

    return parse_params(args.params)


def _paths(values) -> tuple[Path, ...]:
    return tuple(Path(v) for v in values)



# ---------------------------------------------------------------------------------------------
# Stages, in pipeline order. Each block: declare the arguments, build the stage's Inputs /
# Outputs, call its run(). `prepare` is added by its own issue.
# ---------------------------------------------------------------------------------------------


def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=["train", "test"], help="split to generate")
    p.add_argument("--shard", type=int, help="shard number, 0 <= K < datasets.synth.num_shards")
    p.add_argument("--split-dir", help="the split folder to write "
                   "(results/datasets/synth/{split})")
    p.add_argument("--manifest", help="shard manifest to write last "
                   "({split-dir}/shards/shard_{K:03d}.json)")
    p.add_argument("--contact-sheet", metavar="PNG",
                   help="instead of generating: a contact sheet of the samples of --split-dir")
    p.add_argument("--num", type=int, default=16, help="samples on the contact sheet")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("synth", "generate the embedded synthetic dataset (one shard), or its contact sheet",
         _synth_args)
def synth(args: argparse.Namespace) -> int:
    from gsdf.stages import synth as stage

    if args.contact_sheet:
        if not args.split_dir:
            raise SystemExit("gsdf synth: --contact-sheet needs --split-dir")
        stage.run_contact_sheet(stage.ContactSheetInputs(Path(args.split_dir)),
                                stage.ContactSheetOutputs(Path(args.contact_sheet)),
                                _params_of(args), num=args.num)
        return 0
    missing = [f"--{k.replace('_', '-')}" for k in ("split", "shard", "split_dir", "manifest")
               if getattr(args, k) is None]
    if missing:
        raise SystemExit(f"gsdf synth: missing {' '.join(missing)} (or give --contact-sheet)")
    record = stage.run(stage.Inputs(args.split, args.shard),
                       stage.Outputs(Path(args.split_dir), Path(args.manifest)),
                       _params_of(args), progress=not args.no_progress)
    stats = record["stats"]
    print(f"synth {args.split} shard {args.shard}: {stats['num_samples']} samples from "
          f"{stats['num_sequences']} sequences, contact within 2 mm: "
          f"{stats['frac_contact_2mm']}, max penetration {stats['max_penetration_m']} m, "
          f"{len(record['skipped_meshes'])} unreadable user meshes skipped")
    return 0


def _sample_sdf_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split-dir", required=True,
                   help="results/datasets/{dataset}/{split} (canonical layout)")
    p.add_argument("--manifest", help="dataset shard manifest shards/shard_{k}.json")
    p.add_argument("--out", help="SDF shard to write, results/{dataset}/sdf/{split}/shard_{k}.npz")
    p.add_argument("--skipped", help="CSV of skipped samples (id, reason) to write")
    p.add_argument("--preview", help="PNG to write: one sample of --from-shard with its points "
                   "coloured by hand/object sign, next to its image (no sampling)")
    p.add_argument("--from-shard", help="existing SDF shard to preview")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("sample_sdf", "sample SDF points of hand and object for one dataset shard",
         _sample_sdf_args)
def sample_sdf(args: argparse.Namespace) -> int:
    from gsdf.stages import sample_sdf as stage

    if args.preview:
        if not args.from_shard:
            raise SystemExit("gsdf sample_sdf: --preview needs --from-shard")
        stage.run_preview(stage.PreviewInputs(Path(args.split_dir), Path(args.from_shard)),
                          stage.PreviewOutputs(Path(args.preview)), _params_of(args))
        return 0
    if not (args.manifest and args.out and args.skipped):
        raise SystemExit("gsdf sample_sdf: give --manifest, --out and --skipped "
                         "(or --preview with --from-shard)")
    stage.run(stage.Inputs(Path(args.split_dir), Path(args.manifest)),
              stage.Outputs(Path(args.out), Path(args.skipped)), _params_of(args),
              progress=not args.no_progress)
    return 0


def _pack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split-dir", required=True,
                   help="results/datasets/{dataset}/{split} (canonical layout)")
    p.add_argument("--manifests", nargs="+", required=True, help="the split's shard manifests")
    p.add_argument("--sdf-shards", nargs="+", required=True, help="the split's SDF shards")
    p.add_argument("--annotations", required=True, help="annotations.json to write")
    p.add_argument("--rgb-lmdb", required=True, help="rgb.lmdb folder to write")
    p.add_argument("--sdf-hand-lmdb", required=True, help="sdf_hand.lmdb folder to write")
    p.add_argument("--sdf-obj-lmdb", required=True, help="sdf_obj.lmdb folder to write")
    p.add_argument("--skipped", required=True, help="skipped.csv (id, reason) to write")
    p.add_argument("--batch", type=int, default=256,
                   help="values per LMDB write transaction (runtime: memory and speed only)")


@command("pack", "pack a split into annotations.json and LMDB databases", _pack_args)
def pack(args: argparse.Namespace) -> int:
    from gsdf.stages import pack as stage

    stage.run(stage.Inputs(Path(args.split_dir), _paths(args.manifests),
                           _paths(args.sdf_shards)),
              stage.Outputs(Path(args.annotations), Path(args.rgb_lmdb),
                            Path(args.sdf_hand_lmdb), Path(args.sdf_obj_lmdb),
                            Path(args.skipped)),
              _params_of(args), batch=args.batch)
    return 0


def _train_args(p: argparse.ArgumentParser, pose_input: bool) -> None:
    p.add_argument("--data", required=True, help="packed train split, results/{dataset}/train")
    p.add_argument("--checkpoint", required=True,
                   help="final checkpoint.pt to write (checkpoint.last.pt beside it resumes)")
    p.add_argument("--log-csv", required=True, help="train_log.csv to write")
    p.add_argument("--curves", required=True, help="learning_curves.png to write")
    p.add_argument("--config-out", default=None, help="resolved config.yaml to write")
    if pose_input:
        p.add_argument("--pose-checkpoint", default=None, help="frozen pose network "
                       "(gsdf-style models), results/{dataset}/pose_{pose_exp}/checkpoint.pt")
        p.add_argument("--init-checkpoint", default=None,
                       help="trained model whose weights start this one (gsdf_video from gsdf: "
                       "the experiment's init_experiment)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"],
                   help="default: cuda if available, else cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the job, shared by the processes on this machine")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Runtime settings (gsdf.train.TrainRuntime): not part of the params, so changing them
    # neither reruns the rule nor discards checkpoint.last.pt.
    p.add_argument("--num-workers", type=int, default=None,
                   help="DataLoader workers per process (default: from the job's CPUs)")
    p.add_argument("--checkpoint-every", type=int, default=1,
                   help="epochs between resumable checkpoints (also written on SIGTERM)")
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="SyncBatchNorm across GPUs when training on several")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true",
                   help="channels-last images and convolutions")


def _train(stage, inputs, args: argparse.Namespace) -> int:
    import sys

    from gsdf.checkpoint import CheckpointError
    from gsdf.config import ConfigError
    from gsdf.train import NonFiniteLoss, Preempted, TrainRuntime

    if args.params in (None, "", "{}"):
        raise ConfigError("--params is missing: give the job's science config as JSON or "
                          "@file.yaml, {\"experiment\": resolved experiment (model, model_args, "
                          "train), \"dataset\": {name, recon_scale}, \"train\": defaults}; the "
                          "train_pose / train_sdf rules pass it (snakemake -p prints it)")
    outputs = stage.Outputs(Path(args.checkpoint), Path(args.log_csv), Path(args.curves),
                            Path(args.config_out) if args.config_out else None)
    name = stage.__name__.rsplit(".", 1)[-1]
    try:
        runtime = TrainRuntime(num_workers=args.num_workers,
                               checkpoint_every=args.checkpoint_every, sync_bn=args.sync_bn,
                               compile=args.compile, channels_last=args.channels_last,
                               cpus=args.threads)
        stage.run(inputs, outputs, _params_of(args), device=args.device,
                  progress=not args.no_progress, threads=args.threads, runtime=runtime)
    except Preempted as err:
        print(f"gsdf {name}: {err}", file=sys.stderr)
        return 128 + int(err.signum)
    except (NonFiniteLoss, CheckpointError, ConfigError) as err:
        print(f"gsdf {name}: {err}", file=sys.stderr)
        return 2
    return 0


@command("train_pose", "train the hand pose network; run under torchrun for DDP",
         lambda p: _train_args(p, pose_input=False))
def train_pose(args: argparse.Namespace) -> int:
    from gsdf.stages import train_pose as stage

    return _train(stage, stage.Inputs(Path(args.data)), args)


@command("train_sdf", "train an SDF model (gf, alignsdf, gsdf ...); run under torchrun for DDP",
         lambda p: _train_args(p, pose_input=True))
def train_sdf(args: argparse.Namespace) -> int:
    from gsdf.stages import train_sdf as stage

    pose = Path(args.pose_checkpoint) if args.pose_checkpoint else None
    init = Path(args.init_checkpoint) if args.init_checkpoint else None
    return _train(stage, stage.Inputs(Path(args.data), pose, init), args)


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
                  _params_of(args), device=args.device, threads=args.threads,
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

    stage.run(stage.Inputs(Path(args.split_dir), _paths(args.dataset_shards),
                           _paths(args.recon_shards), Path(args.meshes_dir),
                           Path(args.poses_dir)),
              stage.Outputs(Path(args.per_sample), Path(args.metrics), _paths(args.renders),
                            Path(args.gallery) if args.gallery else None),
              _params_of(args), threads=args.threads)
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
              _params_of(args))
    return 0


# --- predict (issue 26) ----------------------------------------------------------------------


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
    from pathlib import Path

    from gsdf.config import ConfigError, parse_params
    from gsdf.eval.predict import PredictInputError
    from gsdf.stages import predict as stage

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    params = parse_params(args.params)
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

# --- prepare (issue 20): ObMan / DexYCB -> the canonical layout ------------------------------


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", required=True, choices=["train", "test"], help="split to convert")
    p.add_argument("--shard", required=True, type=int,
                   help="shard number, 0 <= K < datasets.{dataset}.num_shards")
    p.add_argument("--manifest", required=True,
                   help="shard manifest to write last (results/datasets/{dataset}/{split}/"
                   "shards/shard_{K:03d}.json)")
    p.add_argument("--split-dir", required=True,
                   help="the split folder, results/datasets/{dataset}/{split}")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("prepare", "convert one shard of ObMan / DexYCB into the canonical layout",
         _prepare_args)
def prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gsdf.config import parse_params
    from gsdf.data.raw import RawDataError
    from gsdf.stages import prepare as stage

    split_dir = Path(args.split_dir)
    try:
        record = stage.run(stage.Inputs(args.split, args.shard),
                           stage.Outputs(Path(args.manifest), split_dir),
                           parse_params(args.params), progress=not args.no_progress)
    except RawDataError as err:
        raise SystemExit(f"gsdf prepare: {err}") from None
    stats = record["stats"]
    print(f"prepare {args.split} shard {args.shard}: {stats['num_samples']} samples "
          f"({stats['num_reused']} reused), {stats['num_skipped']} skipped, "
          f"{stats['num_excluded']} excluded by the selection rules, {stats['seconds']} s")
    return 0
