"""Hand joint error of a trained model on the packed splits, next to the mean-pose baseline.

Works with a ``pose`` checkpoint (``results/{dataset}/pose_{exp}/checkpoint.pt``) and with any SDF
model that estimates joints (``alignsdf``, ``gsdf``: its frozen pose network). Errors are over
the 20 non-wrist joints (the wrist is given), in cm, with their image (pixels of the 256x256
crop) and depth parts. Run from the folder holding ``results/``::

    python scripts/pose_error.py --checkpoint results/synth/pose_pose/checkpoint.pt \
        --packed results/synth
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from gsdf.checkpoint import load_trained
from gsdf.data import build_dataset
from gsdf.data.pack import load_annotations
from gsdf.eval.pose_error import evaluate_split, mean_offsets
from gsdf.train.config import train_config
from gsdf.train.run import dataset_options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a finished checkpoint.pt")
    p.add_argument("--packed", required=True, help="results/{dataset} holding train/ and test/")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--max-samples", type=int, default=256, help="evenly spaced samples per split")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    trained = load_trained(a.checkpoint, "cpu")
    model, experiment = trained.model, trained.experiment
    cfg = train_config(experiment, trained.train)
    options = dataset_options(experiment, cfg)
    options.update(kind="pose", train=False, augment=False)

    def predict(batch: dict) -> torch.Tensor:
        joints = model.encode(batch)["joints"]
        if joints is None:
            raise SystemExit(f"{a.checkpoint}: model {experiment['model']!r} estimates no joints")
        return joints

    offsets = mean_offsets(load_annotations(Path(a.packed) / "train")["annotations"])
    print(f"{a.checkpoint} ({experiment['model']}, {options['image_size']} px)")
    print(f"{'split':6} {'n':>5} {'joint cm':>9} {'image px':>9} {'depth cm':>9}   "
          f"mean pose: {'joint cm':>9} {'image px':>9} {'depth cm':>9}")
    for split in a.splits:
        data = build_dataset(Path(a.packed) / split, **options)
        r = evaluate_split(predict, data, options["image_size"], offsets, a.max_samples)
        print(f"{split:6} {int(r['samples']):5d} {r['joint_cm']:9.2f} {r['image_px']:9.1f} "
              f"{r['depth_cm']:9.2f}   {'':10} {r['mean_pose_joint_cm']:9.2f} "
              f"{r['mean_pose_image_px']:9.1f} {r['mean_pose_depth_cm']:9.2f}")


if __name__ == "__main__":
    main()
