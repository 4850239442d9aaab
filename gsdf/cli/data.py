"""`gsdf synth | prepare | sample_sdf | pack`: the data stages' arguments (parsing only; the
work is in :mod:`gsdf.stages`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsdf.cli.base import command, params_of, paths_of


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
                                params_of(args), num=args.num)
        return 0
    missing = [f"--{k.replace('_', '-')}" for k in ("split", "shard", "split_dir", "manifest")
               if getattr(args, k) is None]
    if missing:
        raise SystemExit(f"gsdf synth: missing {' '.join(missing)} (or give --contact-sheet)")
    record = stage.run(stage.Inputs(args.split, args.shard),
                       stage.Outputs(Path(args.split_dir), Path(args.manifest)),
                       params_of(args), progress=not args.no_progress)
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
                          stage.PreviewOutputs(Path(args.preview)), params_of(args))
        return 0
    if not (args.manifest and args.out and args.skipped):
        raise SystemExit("gsdf sample_sdf: give --manifest, --out and --skipped "
                         "(or --preview with --from-shard)")
    stage.run(stage.Inputs(Path(args.split_dir), Path(args.manifest)),
              stage.Outputs(Path(args.out), Path(args.skipped)), params_of(args),
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

    stage.run(stage.Inputs(Path(args.split_dir), paths_of(args.manifests),
                           paths_of(args.sdf_shards)),
              stage.Outputs(Path(args.annotations), Path(args.rgb_lmdb),
                            Path(args.sdf_hand_lmdb), Path(args.sdf_obj_lmdb),
                            Path(args.skipped)),
              params_of(args), batch=args.batch)
    return 0


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
    from gsdf.data.raw import RawDataError
    from gsdf.stages import prepare as stage

    split_dir = Path(args.split_dir)
    try:
        record = stage.run(stage.Inputs(args.split, args.shard),
                           stage.Outputs(Path(args.manifest), split_dir),
                           params_of(args), progress=not args.no_progress)
    except RawDataError as err:
        raise SystemExit(f"gsdf prepare: {err}") from None
    stats = record["stats"]
    print(f"prepare {args.split} shard {args.shard}: {stats['num_samples']} samples "
          f"({stats['num_reused']} reused), {stats['num_skipped']} skipped, "
          f"{stats['num_excluded']} excluded by the selection rules, {stats['seconds']} s")
    return 0
