"""The training loop: DDP, Adam with step decay, resumable checkpoints, preemption, NaN guard.

:func:`fit` trains a model that follows the contract of ``docs/architecture.md``
(``model(batch, epoch) -> dict of scalar loss terms with "loss"``) on a map-style dataset of
dict samples. It is the same code with one CPU process, several gloo processes or several GPUs
(nccl): the torchrun environment decides (:func:`gsdf.train.distributed.init_distributed`).

Resume semantics (what makes a Snakemake rerun continue a killed job; the resume identity
and the restore are :mod:`gsdf.train.resume`):

* ``checkpoint.last.pt`` beside the final checkpoint is written every ``checkpoint_every``
  epochs and, after SIGTERM/SIGUSR1, at the next step boundary (then :class:`Preempted` is
  raised so the process exits non-zero);
* a new run with the same experiment finds it and continues at the same step: same weights,
  optimizer, scheduler, per-rank RNG states, and the sample order skips the consumed batches;
  so a resumed run ends bit-identical to an uninterrupted one;
* ``checkpoint.pt`` (the rule's output) is written only when the last epoch is done;
  ``checkpoint.last.pt`` then holds the same final state (a hard link), so a job killed after
  training finished but before it exited resumes at the end; the training rule removes it once
  its command succeeded.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from gsdf import checkpoint as ckpt_io
from gsdf.config import to_dict
from gsdf.train.config import TrainConfig, TrainRuntime
from gsdf.train.distributed import (
    DistEnv,
    SeededDataset,
    any_rank,
    barrier,
    derive_seed,
    gather_objects,
    make_loader,
    make_sampler,
    mean_over_ranks,
    seed_everything,
    to_device,
)
from gsdf.train.guards import (  # noqa: F401  (re-exported)
    PREEMPTION_SIGNALS,
    NonFiniteLoss,
    Preempted,
    PreemptionFlag,
    non_finite,
)
from gsdf.train.history import plot_curves, write_log_csv
from gsdf.train.resume import (  # noqa: F401  (TrainOutputs re-exported)
    RunState,
    TrainOutputs,
    maybe_resume,
    resolved_model_args,
)
from gsdf.utils.io import write_yaml


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig,
                   device: torch.device) -> torch.optim.Adam:
    """Adam as the reference. The fused kernel (CPU and CUDA) is ~8x faster than the per-tensor
    loop for our models: on a CPU the optimizer step is otherwise ~40% of a training step."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=torch.device(device).type in ("cpu", "cuda"))


def set_precision(precision: str) -> None:
    """Float32 matrix products and convolutions in IEEE fp32 or TensorFloat-32 (``tf32``).

    Process-wide switches of PyTorch (they only matter on GPUs with TF32 units). ``fp32`` and
    ``bf16`` keep IEEE float32 for the operations autocast leaves in float32 (cuDNN's own
    default would be TF32 convolutions).
    """
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The forward pass's autocast context: bfloat16 for ``bf16``, else disabled."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _resolved(experiment: Mapping, dataset_info: Mapping, cfg: TrainConfig) -> dict:
    return {"experiment": dict(experiment), "dataset": dict(dataset_info), "train": to_dict(cfg)}


def fit(model: nn.Module, dataset: Dataset, cfg: TrainConfig, outputs: TrainOutputs, *,
        experiment: Mapping[str, Any], env: DistEnv, runtime: TrainRuntime | None = None,
        dataset_info: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None, progress: bool = True,
        handle_signals: bool = True) -> list[dict[str, float]]:
    """Train ``model`` on ``dataset`` for ``cfg.epochs`` epochs, resuming if possible.

    Args:
        model: built (and seeded) identically on every rank, on the CPU or ``env.device``;
            ``model(batch, epoch)`` returns scalar loss terms including ``"loss"``.
        dataset: map-style dataset of dict samples (collated by the default collate).
        cfg: the schedule (part of the resume identity).
        outputs: where rank 0 writes (see :class:`TrainOutputs`).
        experiment: resolved experiment (``model``, ``model_args``, ...), stored in the
            checkpoint and ``config.yaml``.
        env: from :func:`gsdf.train.distributed.init_distributed`.
        runtime: workers, checkpoint interval, SyncBN, compile (not part of the resume
            identity; default :class:`TrainRuntime()`).
        dataset_info: dataset settings (name, recon_scale) stored alongside.
        context: model build context stored in the checkpoint (e.g. ``pose_checkpoint``).
        progress: show the per-epoch progress bar (rank 0).
        handle_signals: turn SIGTERM/SIGUSR1 into checkpoint-and-exit.

    Returns:
        The per-epoch log rows (also in ``outputs.log_csv``).

    Raises:
        Preempted: after a signal, once ``checkpoint.last.pt`` is written.
        NonFiniteLoss: a loss term was NaN/inf (message: step, terms, sample ids).
        CheckpointError: the resumable checkpoint is corrupt.
        ConfigError: ``train.global_batch_size`` does not divide over the processes.
    """
    trainer = Trainer(model, dataset, cfg, runtime or TrainRuntime(), outputs,
                       experiment=experiment, env=env, dataset_info=dict(dataset_info or {}),
                       context=dict(context or {}), progress=progress)
    with PreemptionFlag(enabled=handle_signals) as flag:
        while trainer.state.epoch < cfg.epochs:
            trainer.run_epoch(flag)
    trainer.finish()
    return trainer.state.history


class Trainer:
    """One training run: model, optimizer, data and position; :func:`fit` drives it
    (``benchmarks/bench_gpu.py`` times its :meth:`step`)."""

    def __init__(self, model: nn.Module, dataset: Dataset, cfg: TrainConfig,
                 runtime: TrainRuntime, outputs: TrainOutputs, *, experiment: Mapping,
                 env: DistEnv, dataset_info: dict, context: dict, progress: bool):
        self.cfg, self.runtime, self.outputs, self.env = cfg, runtime, outputs, env
        self.experiment, self.dataset_info, self.context = dict(experiment), dataset_info, context
        self.progress = progress
        self.batch_size = cfg.per_process_batch(env.world_size)
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        self.num_workers = runtime.workers(local_world, env.device.type == "cuda")
        set_precision(cfg.precision)
        if env.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: autotuned convolutions
        self.model = self._prepare_model(model)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, cfg, env.device)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(cfg.lr_decay_epochs), gamma=cfg.lr_decay_factor)
        self.state = RunState()
        seed_everything(derive_seed(cfg.seed, env.rank, 1))
        maybe_resume(self.model, self.optimizer, self.scheduler, self.state, outputs,
                      self.experiment, dataset_info, cfg, env)
        self.net = self._wrap(self.model)
        self.net.train()
        self.seeded = SeededDataset(dataset, cfg.seed)
        self.sampler = make_sampler(self.seeded, env, cfg.seed, self.batch_size)
        self.steps_per_epoch = len(self.sampler) // self.batch_size

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        """On the device, channels-last if asked, SyncBatchNorm on several GPUs."""
        model.to(self.env.device)
        if self.runtime.channels_last:
            model.to(memory_format=torch.channels_last)
        several_gpus = self.env.world_size > 1 and self.env.device.type == "cuda"
        if several_gpus and self.runtime.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP over the processes (if several), then ``torch.compile`` (if asked)."""
        net: nn.Module = model
        if self.env.world_size > 1:
            device_ids = [self.env.device.index] if self.env.device.type == "cuda" else None
            net = DistributedDataParallel(model, device_ids=device_ids,
                                          find_unused_parameters=True)
        if self.runtime.compile:
            net = torch.compile(net)
        return net

    def save(self, path: Path, finished: bool) -> None:
        """Write a checkpoint (rank 0) with every rank's RNG state; a collective."""
        rng = gather_objects(self.env, ckpt_io.capture_rng())
        state, model_args = self.state, dict(self.experiment.get("model_args") or {})
        if self.env.is_main:
            ckpt_io.save_checkpoint(path, {
                "format_version": ckpt_io.FORMAT_VERSION, "kind": ckpt_io.KIND,
                "model": self.experiment["model"], "model_args": model_args,
                "resolved_model_args": resolved_model_args(self.model, model_args),
                "experiment": self.experiment, "dataset": self.dataset_info,
                "context": self.context, "train": to_dict(self.cfg),
                "state_dict": ckpt_io.strip_module_prefix(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch,
                "step": state.step, "finished": finished, "world_size": self.env.world_size,
                "rng": {"per_rank": rng}, "history": state.history,
                "accum": dict(state.accum)})
        barrier(self.env)

    def run_epoch(self, flag: PreemptionFlag) -> None:
        """Train the rest of the current epoch, log it, checkpoint every ``checkpoint_every``.

        Raises:
            Preempted, NonFiniteLoss: see :func:`fit`.
        """
        state, epoch = self.state, self.state.epoch
        loader = make_loader(self.seeded, self.sampler, self.env, epoch, self.batch_size,
                             self.num_workers, start_batch=state.batch_in_epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(total=self.steps_per_epoch, initial=state.batch_in_epoch,
                   desc=f"epoch {epoch + 1}/{self.cfg.epochs}", unit="step",
                   disable=not (self.progress and self.env.is_main), file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=True, leave=False)
        timer = _EpochTimer()
        iterator = iter(loader)
        try:
            while (batch := self._next_batch(iterator, flag, timer)) is not None:
                values, stop_sig = self.step(batch, epoch, flag)
                timer.steps += 1
                rate = timer.steps * self.batch_size * self.env.world_size / timer.elapsed()
                bar.set_postfix(loss=f"{values['loss']:.4g}", samples_s=f"{rate:.1f}",
                                refresh=False)
                bar.update(1)
                if stop_sig:
                    self._preempt(flag.signum or signal.SIGTERM)
        except BaseException:
            # No loader with live workers may outlive an error: they ignore SIGTERM (see
            # worker_init_fn), so one left to the interpreter's exit would hang it.
            _stop_workers(iterator)
            raise
        finally:
            bar.close()
        self._end_epoch(epoch, lr, timer)

    def _next_batch(self, iterator: Any, flag: PreemptionFlag, timer: _EpochTimer) -> Any:
        """The next batch (``None`` at the end of the epoch); the wait counts as data wait."""
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return None
        except RuntimeError:
            # A preemption signal sent to the whole process group can stop the loader's
            # workers before this step boundary: checkpoint the last completed step.
            if flag.signum is None:
                time.sleep(1.0)  # our own handler may run a moment after theirs
            if flag.signum is None:
                _stop_workers(iterator)
                raise
            self._preempt(flag.signum, from_loader=True)
        except Exception:
            # A sample failed in a worker: stop the other workers now, else the process
            # waits for them at exit instead of ending with the error.
            _stop_workers(iterator)
            raise
        timer.wait += time.perf_counter() - t0
        return batch

    def step(self, batch: Any, epoch: int, flag: PreemptionFlag
              ) -> tuple[dict[str, float], bool]:
        """Forward, NaN/signal agreement over the ranks, backward, Adam step.

        Returns:
            ``(loss terms as floats, stop because a rank received a signal)``.
        """
        state = self.state
        batch = to_device(batch, self.env.device, self.runtime.channels_last)
        with autocast(self.cfg.precision, self.env.device):
            terms = self.net(batch, epoch)
        names = list(terms)
        # One host synchronisation per step for all the terms.
        numbers = torch.stack([terms[k].detach().float() for k in names]).tolist()
        values = dict(zip(names, numbers, strict=True))
        bad = not all(math.isfinite(v) for v in numbers)
        # One collective per step: every rank stops (or not) at the same step.
        stop_nan, stop_sig = any_rank(self.env, bad, flag.signum is not None)
        if stop_nan:
            raise non_finite(values, bad, batch, epoch, state, self.env)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        state.step += 1
        state.batch_in_epoch += 1
        for k, v in values.items():
            state.accum[k] = state.accum.get(k, 0.0) + v
        state.accum["_steps"] = state.accum.get("_steps", 0.0) + 1
        return values, stop_sig

    def _preempt(self, signum: int, from_loader: bool = False) -> None:
        """Write ``checkpoint.last.pt`` at the last completed step and raise :class:`Preempted`."""
        self.save(self.outputs.last, finished=False)
        state = self.state
        error = Preempted(signum, self.outputs.last, state.epoch, state.batch_in_epoch,
                          state.step)
        if from_loader:
            raise error from None
        raise error

    def _end_epoch(self, epoch: int, lr: float, timer: _EpochTimer) -> None:
        """Scheduler step, the epoch's log row, and the periodic resumable checkpoint."""
        state, env = self.state, self.env
        elapsed = timer.elapsed()
        self.scheduler.step()
        n = max(state.accum.get("_steps", 0.0), 1.0)
        means = mean_over_ranks(env, {k: v / n for k, v in state.accum.items() if k != "_steps"})
        row = {"epoch": epoch, **means, "lr": lr,
               "samples_per_s": timer.steps * self.batch_size * env.world_size / elapsed,
               "data_wait_share": timer.wait / elapsed, "epoch_time_s": elapsed,
               "steps": int(state.accum.get("_steps", 0))}
        state.history.append(row)
        state.epoch += 1
        state.batch_in_epoch = 0
        state.accum = {}
        if env.is_main:
            write_log_csv(self.outputs.log_csv, state.history)
            print(f"epoch {epoch + 1}/{self.cfg.epochs}: loss {row.get('loss', float('nan')):.5g}"
                  f" lr {lr:.3g} {row['samples_per_s']:.1f} samples/s data wait "
                  f"{100 * row['data_wait_share']:.0f}%", file=sys.stderr, flush=True)
        if state.epoch < self.cfg.epochs and state.epoch % self.runtime.checkpoint_every == 0:
            self.save(self.outputs.last, finished=False)

    def finish(self) -> None:
        """Log, curves and ``config.yaml``, the final checkpoint, and the resumable one at the
        final state (:func:`gsdf.checkpoint.keep_final_as_last`). All of them again when a
        retry resumes a finished run (Snakemake deleted the failed job's outputs)."""
        env, outputs = self.env, self.outputs
        if env.is_main:
            write_log_csv(outputs.log_csv, self.state.history)
            name = self.experiment["model"]
            title = f"{self.experiment.get('name', name)} ({name})"
            plot_curves(outputs.curves, self.state.history, title=title)
            if outputs.config is not None:
                resolved = _resolved(self.experiment, self.dataset_info, self.cfg)
                write_yaml(outputs.config, dict(resolved, world_size=env.world_size))
        self.save(outputs.checkpoint, finished=True)
        if env.is_main:
            # the final state stays resumable until the rule's command has succeeded
            ckpt_io.keep_final_as_last(outputs.checkpoint)
        barrier(env)


@dataclasses.dataclass
class _EpochTimer:
    """Wall time, data wait and steps of the current session of an epoch."""

    start: float = dataclasses.field(default_factory=time.perf_counter)
    wait: float = 0.0
    steps: int = 0

    def elapsed(self) -> float:
        return max(time.perf_counter() - self.start, 1e-9)


def _stop_workers(iterator: Any) -> None:
    """Shut down a DataLoader iterator's worker processes (a no-op without workers)."""
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()
