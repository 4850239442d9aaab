"""The checkpoint format of ``train_pose`` / ``train_sdf``: its one author (write, read,
check, load a trained model). Below both ``gsdf.train`` (which writes it) and ``gsdf.eval`` /
the stages (which load it), so that evaluation never imports the training package.

A checkpoint is one ``torch.save`` dict, loadable with ``weights_only=True``:

====================  ========================================================================
key                   value
====================  ========================================================================
``format_version``    :data:`FORMAT_VERSION` (int)
``kind``              ``"gsdf.train"``
``model``             registry name of the model (``gsdf.models.build_model``)
``model_args``        the experiment's ``model_args`` (what compatibility is checked against)
``resolved_model_args`` the model's complete settings (``model.args``), used to rebuild it
``experiment``        the full resolved experiment dict the run trained
``dataset``           the dataset settings (``name``, ``recon_scale``, ...)
``context``           build context of the run (e.g. ``{"pose_checkpoint": path}``)
``train``             the :class:`gsdf.train.TrainConfig` of the run, as a dict
``state_dict``        model weights, without DDP's ``module.`` prefix
``optimizer``         ``torch.optim.Adam`` state dict
``scheduler``         ``MultiStepLR`` state dict
``epoch``             epoch in progress (== ``train.epochs`` once finished)
``batch_in_epoch``    batches of ``epoch`` already trained (0 at an epoch boundary)
``step``              optimizer steps done in total
``finished``          True only in the final ``checkpoint.pt``
``world_size``        processes of the run that wrote it
``rng``               ``{"per_rank": [{"python", "numpy", "torch", "cuda"}, ...]}``
``history``           per-epoch log rows so far (list of dicts of floats)
``accum``             running sums of the epoch in progress (resume of the log)
====================  ========================================================================

A run writes ``checkpoint.last.pt`` (resumable, every ``checkpoint_every`` epochs and on
preemption) next to its final ``checkpoint.pt``, which exists only once training finished.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gsdf import paths
from gsdf.utils.io import atomic_path

FORMAT_VERSION = 1
KIND = "gsdf.train"
REQUIRED_KEYS = ("format_version", "kind", "model", "model_args", "experiment", "state_dict",
                 "optimizer", "scheduler", "epoch", "batch_in_epoch", "step", "rng", "finished")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, of another format, or belongs to another model/config."""


def last_checkpoint_path(final: str | Path) -> Path:
    """Where the resumable checkpoint of a run whose final checkpoint is ``final`` lives."""
    return paths.last_checkpoint(final)


def keep_final_as_last(final: str | Path) -> Path:
    """Make the resumable checkpoint of a finished run hold its final state.

    ``checkpoint.last.pt`` becomes a hard link to ``final`` (no extra disk; a copy where the
    file system has no hard links), so a job that fails after training finished (a signal in
    the seconds before it exits: Snakemake then deletes ``checkpoint.pt``) is resumed by its
    retry at the end, without training again. The training rule removes it once its command
    has succeeded (``docs/cluster.md``).
    """
    final = Path(final)
    last = last_checkpoint_path(final)
    with atomic_path(last) as tmp:
        try:
            tmp.unlink()  # the link takes the temporary name
            os.link(final, tmp)
        except OSError:
            shutil.copyfile(final, tmp)
    return last


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP's (and ``torch.compile``'s) wrapper prefixes from parameter names."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or compile) wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


# ----------------------------------------------------------------------------------------------
# RNG states (stored as tensors / builtins so that ``weights_only=True`` loading works)
# ----------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """This process's RNG states: python ``random``, numpy global, torch CPU (+ CUDA)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


# ----------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, ckpt: Mapping[str, Any]) -> None:
    """Atomically write ``ckpt`` (temporary file beside ``path``, then rename)."""
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint dict misses {missing}")
    with atomic_path(path) as tmp:
        torch.save(dict(ckpt), tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU and check its format (not yet its model).

    Raises:
        FileNotFoundError: no file.
        CheckpointError: unreadable (truncated, not a torch file), not a gsdf training
            checkpoint, or of another ``format_version``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found; run its training rule first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({err}); "
                              f"delete it and rerun the training rule") from err
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a gsdf training checkpoint (no kind={KIND!r}); "
                              f"was it written by another program?")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format_version "
                              f"{ckpt.get('format_version')!r}; this gsdf reads version "
                              f"{FORMAT_VERSION}; retrain (delete it and rerun the rule)")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path} misses keys {missing}; it is incomplete, delete it")
    return ckpt


def check_compatible(ckpt: Mapping[str, Any], model: str, model_args: Mapping[str, Any],
                     path: str | Path = "checkpoint") -> None:
    """Refuse a checkpoint of another model or other model arguments.

    Raises:
        CheckpointError: naming the model names or the differing ``model_args`` keys.
    """
    if ckpt["model"] != model:
        raise CheckpointError(f"{path} holds a {ckpt['model']!r} model, expected {model!r}")
    saved, wanted = dict(ckpt["model_args"]), dict(model_args)
    if saved != wanted:
        keys = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
        diff = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs config {wanted.get(k)!r}"
                         for k in keys)
        raise CheckpointError(f"{path} was trained with other model_args ({diff}); retrain "
                              f"or restore the config it was trained with")


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                 path: str | Path = "checkpoint") -> None:
    """Load ``state_dict`` into ``model`` completely or not at all.

    Keys and shapes are compared before anything is copied, so a mismatch leaves the model
    untouched.

    Raises:
        CheckpointError: listing missing, unexpected and mis-shaped parameters.
    """
    from gsdf.models.heads import upgrade_neck_keys

    state_dict = upgrade_neck_keys(strip_module_prefix(state_dict))
    own = unwrap(model).state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in own.items()
                    if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape))
    if missing or unexpected or shapes:
        def head(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        parts = []
        if missing:
            parts.append(f"missing {head(missing)}")
        if unexpected:
            parts.append(f"unexpected {head(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch {head(shapes)}")
        raise CheckpointError(f"{path} does not fit the model: " + "; ".join(parts))
    unwrap(model).load_state_dict(state_dict, strict=True)


def _recorded_hand_asset(ckpt: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """``{"hand_asset": ...}`` for a model trained with a hand layer when the caller gave none:
    the procedural hand of the recorded seed; a MANO-trained model needs the caller's MANO."""
    from gsdf.models.hand_model import load_hand_asset
    from gsdf.models.registry import uses_hand_asset

    hand = (ckpt.get("experiment") or {}).get("hand")
    if not hand or not uses_hand_asset(ckpt["model"]):
        return {}
    if hand.get("asset") == "mano":
        raise CheckpointError(f"{path} was trained with the MANO hand: pass hand_asset= "
                              f"(gsdf.models.hand_model.load_hand_asset with the config's "
                              f"hand.mano_root)")
    return {"hand_asset": load_hand_asset({"asset": "procedural", "seed": hand.get("seed", 0)},
                                          None)}


@dataclass
class Trained:
    """A finished training run, loaded.

    Attributes:
        model: the model, ``eval()``, on the requested device.
        experiment: the resolved experiment it was trained with (``experiment["dataset"]``
            holds the dataset settings).
        train: the run's ``TrainConfig`` as a dict (schedule, points, seed ... it trained with;
            the image size and clip length are in ``experiment["model_args"]``).
        dataset: the dataset settings of the run (``name``, ``recon_scale`` ...).
    """

    model: nn.Module
    experiment: dict
    train: dict
    dataset: dict


def load_trained(path: str | Path, device: str | torch.device = "cpu",
                 expect: Mapping[str, Any] | None = None, **context: Any) -> Trained:
    """Build the model a finished training run saved, in eval mode, with its weights.

    Args:
        path: a final ``checkpoint.pt`` (``checkpoint.last.pt`` of an unfinished run is refused).
        device: where to put the model.
        expect: optionally the experiment the caller was configured with; a checkpoint of
            another ``model`` or other ``model_args`` is refused.
        **context: extra build context of ``gsdf.models.build_model`` (e.g. ``hand_asset``).
            A model trained with a pose checkpoint is rebuilt with ``restore=True`` from its
            resolved settings: its state dict already holds the frozen pose network.

    Raises:
        FileNotFoundError, CheckpointError.
    """
    from gsdf.models import build_model

    ckpt = read_checkpoint(path)
    if not ckpt["finished"]:
        raise CheckpointError(f"{path} is the checkpoint of an unfinished run (epoch "
                              f"{ckpt['epoch']}); finish training first")
    if expect is not None:
        check_compatible(ckpt, expect["model"], expect.get("model_args") or {}, path)
    from gsdf.models.backbones import without_pretrained

    # the trained weights are loaded below: never read (or download) ImageNet weights
    model_args = without_pretrained(dict(ckpt.get("resolved_model_args") or ckpt["model_args"]))
    build_context = dict(ckpt.get("context") or {})
    if "pose_checkpoint" in build_context:
        build_context = {"restore": True}
    build_context.update(context)
    if "hand_asset" not in build_context:
        build_context.update(_recorded_hand_asset(ckpt, path))
    model = build_model(ckpt["model"], model_args, **build_context)
    load_weights(model, ckpt["state_dict"], path)
    model.to(device).eval()
    experiment = dict(ckpt["experiment"])
    dataset = dict(ckpt.get("dataset") or {})
    experiment.setdefault("dataset", dataset)
    return Trained(model, experiment, dict(ckpt.get("train") or {}), dataset)


def load_trained_model(path: str | Path, device: str | torch.device = "cpu",
                       expect: Mapping[str, Any] | None = None,
                       **context: Any) -> tuple[nn.Module, dict]:
    """``(model, experiment)`` of :func:`load_trained` (same arguments and errors)."""
    trained = load_trained(path, device, expect, **context)
    return trained.model, trained.experiment
