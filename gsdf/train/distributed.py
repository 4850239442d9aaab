"""Process-group setup from the torchrun environment, seeding, and the deterministic data loader.

One code path: under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the process joins
a process group (nccl on GPU, gloo on CPU); without those variables it runs as a single process
and every collective below is a no-op.

Determinism and step-granular resume rest on three things:

* the sample order is a pure function of ``(seed, epoch)`` (``DistributedSampler``) and a
  resumed epoch skips the consumed indices *before* loading them (:class:`OffsetSampler`);
* the randomness of a sample (augmentation, point subsampling) is a pure function of
  ``(seed, epoch, index)`` (:class:`SeededDataset` reseeds around every ``__getitem__``);
* the DataLoader gets its own generator, so building a loader mid-run does not draw from the
  global torch RNG that dropout uses.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import signal
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 writes every file).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        distributed: whether a process group is initialised (``world_size > 1``, or any
            run under torchrun).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None,
                     environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read the torchrun environment and join the process group if there is one.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (GPU if available, else CPU). On GPU each
            process takes ``cuda:{LOCAL_RANK}``.
        environ: environment to read (default ``os.environ``).

    Returns:
        The :class:`DistEnv`; call :func:`cleanup_distributed` when done.

    Raises:
        ConfigError: ``device="cuda"`` without a usable GPU, or more training processes on
            this machine than GPUs visible to them (``resources.nproc`` > ``resources.gpu``).
    """
    env = os.environ if environ is None else environ
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        check_gpus(int(env.get("LOCAL_WORLD_SIZE", "1")), local_rank, rank, env)
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    # Under torchrun the process joins a process group even when alone (one GPU): the
    # collectives then run on the job's real backend (nccl on GPUs).
    distributed = world_size > 1 or "TORCHELASTIC_RUN_ID" in env
    if distributed and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                                device_id=dev if dev.type == "cuda" else None)
        if rank == 0:
            print(f"process group: {dist.get_backend()}, {world_size} process(es), rank 0 on "
                  f"{dev}", file=sys.stderr, flush=True)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev,
                   distributed=distributed)


def check_gpus(local_world_size: int, local_rank: int, rank: int,
               environ: Mapping[str, str]) -> None:
    """One training process per visible GPU: refuse more processes than GPUs, warn if fewer.

    Raises:
        ConfigError: no CUDA GPU, or ``local_world_size`` > visible GPUs.
    """
    from gsdf.config import ConfigError

    visible = environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"--device cuda but PyTorch sees no CUDA GPU (CUDA_VISIBLE_DEVICES="
                          f"{visible}, torch {torch.__version__}); give the job a GPU or "
                          f"train with --device cpu")
    if local_world_size > count or local_rank >= count:
        raise ConfigError(
            f"{local_world_size} training processes on this machine but {count} GPU(s) "
            f"visible (CUDA_VISIBLE_DEVICES={visible}): training runs one process per GPU, so "
            f"set resources nproc equal to resources gpu (torchrun --nproc_per_node = GPUs)")
    if local_world_size < count and rank == 0:
        print(f"warning: {count} GPUs visible but only {local_world_size} training "
              f"process(es) on this machine; {count - local_world_size} GPU(s) stay idle "
              f"(set resources nproc = gpu)", file=sys.stderr, flush=True)


def cleanup_distributed(env: DistEnv) -> None:
    """Leave the process group (if this process joined one)."""
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def any_rank(env: DistEnv, *flags: bool) -> tuple[bool, ...]:
    """For each flag: true on every rank if it is true on at least one rank (one collective)."""
    if not env.distributed:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.tolist())


def mean_over_ranks(env: DistEnv, values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over the ranks (same keys, in sorted order, on every rank)."""
    if not env.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= env.world_size
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def gather_objects(env: DistEnv, obj: Any) -> list[Any]:
    """All ranks' ``obj`` in rank order (a collective; every rank gets the list)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


# ----------------------------------------------------------------------------------------------
# Seeding
# ----------------------------------------------------------------------------------------------


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that is a pure function of ``parts`` (well mixed, unlike ``sum``)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker init: numpy and ``random`` from the worker's torch seed.

    Torch already gives each worker ``base_seed + worker_id``, with ``base_seed`` drawn from the
    loader's own generator (seeded by ``(seed, epoch, rank)``); numpy and ``random`` would
    otherwise be copies of the parent's state in every worker.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    # Workers share the trainer's process group, so a preemption signal sent to the group
    # (torchrun, SLURM) reaches them too; they ignore it and leave the checkpoint-and-exit to
    # the trainer (they still stop when the trainer shuts the loader down or dies).
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


class SeededDataset(Dataset):
    """Wrap a map-style dataset so that sample ``i`` of epoch ``e`` always draws the same
    random numbers: global RNGs are reseeded from ``(seed, epoch, i)`` around ``__getitem__``
    and restored afterwards (so the caller's dropout stream is untouched when
    ``num_workers == 0``).

    Datasets that keep their own ``numpy.random.Generator`` should derive it per index too;
    this wrapper cannot reach a private generator.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        seed = derive_seed(self.seed, self.epoch, int(index))
        py_state = random.getstate()
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            seed_everything(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class OffsetSampler(Sampler[int]):
    """The indices of ``sampler`` after the first ``start`` (resume inside an epoch)."""

    def __init__(self, sampler: Sampler[int], start: int = 0):
        self.sampler = sampler
        self.start = int(start)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)  # type: ignore[arg-type]


def make_sampler(dataset: Dataset, env: DistEnv, seed: int, batch_size: int
                 ) -> DistributedSampler:
    """Shuffled, rank-sharded sampler; always a ``DistributedSampler`` (1 replica if alone).

    With ``world_size`` ranks, rank ``r`` gets positions ``r, r + world, ...`` of one permutation,
    so batch ``k`` of all ranks together is positions ``k*b*world .. (k+1)*b*world - 1``: the same
    samples one process sees with batch ``b*world``.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n < batch_size * env.world_size:
        raise ValueError(f"the training split has {n} samples, fewer than one global batch "
                         f"({batch_size} per process x {env.world_size} processes); lower "
                         f"train.batch_size or add samples")
    return DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                              shuffle=True, seed=seed, drop_last=True)


def make_loader(dataset: SeededDataset, sampler: DistributedSampler, env: DistEnv, epoch: int,
                batch_size: int, num_workers: int, start_batch: int = 0) -> DataLoader:
    """The loader of one epoch, starting after ``start_batch`` consumed batches.

    Args:
        dataset: the seeded wrapper (its epoch is set here).
        sampler: from :func:`make_sampler` (its epoch is set here).
        start_batch: batches of this epoch already trained (resume).
    """
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(derive_seed(dataset.seed, epoch, env.rank, start_batch))
    return DataLoader(
        dataset, batch_size=batch_size, sampler=OffsetSampler(sampler, start_batch * batch_size),
        num_workers=num_workers, drop_last=True, worker_init_fn=worker_init_fn,
        generator=generator, pin_memory=env.device.type == "cuda",
        persistent_workers=False)


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a (nested) batch to ``device``; strings and lists of strings stay.

    Copies are non-blocking: from the loader's pinned memory they overlap with the GPU's work
    (a CPU target makes them plain copies). With ``channels_last`` every 4-D floating tensor
    (the images, (B, 3, H, W)) is laid out channels-last.
    """
    if isinstance(batch, torch.Tensor):
        out = batch.to(device, non_blocking=True)
        if channels_last and out.dim() == 4 and out.is_floating_point():
            out = out.contiguous(memory_format=torch.channels_last)
        return out
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch
