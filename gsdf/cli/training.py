"""`gsdf train_pose | train_sdf`: the training stages' arguments (science config in
``--params``, runtime settings as flags; :class:`gsdf.train.TrainRuntime`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gsdf.cli.base import command, params_of


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
        stage.run(inputs, outputs, params_of(args), device=args.device,
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

