"""The meshing part of ``bench_gpu.py``: ``reconstruct`` seconds per sample at 128^3 on the
real gsdf model, dense vs coarse-to-fine (its bookkeeping on the device and in numpy on the
CPU), on the same samples.

The real gsdf model (random weights, paper settings) is run for every decoder query, so the
query cost is the real one, while the field values come from an analytic hand-object scene
(``bench_reconstruct.hand_scene``'s, computed on the device) so that the zero level set is
realistic.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_train import RandomContractDataset, build

from gsdf.train.config import train_config
from gsdf.train.distributed import seed_everything
from gsdf.train.run import dataset_options


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _capsule(p: torch.Tensor, a: list, b: list, r: float) -> torch.Tensor:
    a_t, b_t = p.new_tensor(a), p.new_tensor(b)
    pa, ba = p - a_t, b_t - a_t
    t = ((pa @ ba) / (ba @ ba)).clamp(0, 1)
    return (pa - t[:, None] * ba).norm(dim=1) - r


def scene(p: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed distances (metres) of a hand-like shape and an object at points (K, 3), metres
    from the wrist (``bench_reconstruct.hand_scene``, on the device); ``k`` varies the scene."""
    q = (p - p.new_tensor([0.045, 0.0, 0.0])).abs() - p.new_tensor([0.045, 0.04, 0.012])
    hand = q.clamp(min=0).norm(dim=1) + q.max(1).values.clamp(max=0)
    for j, y in enumerate(np.linspace(-0.032, 0.032, 4)):
        tip = [0.16 + 0.01 * (j % 2), float(y), 0.02 + 0.005 * ((j + k) % 3)]
        radius = 0.008 + 0.001 * (j == 0)
        hand = torch.minimum(hand, _capsule(p, [0.09, float(y), 0.0], tip, radius))
    hand = torch.minimum(hand, _capsule(p, [0.03, 0.045, 0.0], [0.07, 0.09, 0.02], 0.0095))
    centre = p.new_tensor([0.11, 0.0, 0.06 + 0.002 * k])
    obj = (p - centre).norm(dim=1) - (0.035 + 0.002 * k)
    return hand, obj


class FieldProxy:
    """The real model's encoder and decoders (their cost), the analytic scene's values."""

    def __init__(self, model: Any, recon_scale: float = 7.0):
        self.model, self.scale = model, recon_scale / 2
        self.hand_decoder = getattr(model, "hand_decoder", True)
        self.obj_decoder = getattr(model, "obj_decoder", True)
        self.k = 0

    def encode(self, batch: dict) -> Any:
        self.k = sum(map(ord, str(batch["id"][0])))  # the scene of this sample, in every mode
        return self.model.encode(batch)

    def predict_pose(self, state: Any) -> dict:
        return self.model.predict_pose(state)

    def query(self, state: Any, points: torch.Tensor, branch: str) -> torch.Tensor:
        real = self.model.query(state, points, branch)  # the decoder's real cost
        hand, obj = scene(points[0].float() / self.scale, self.k % 4)
        sdf = (hand if branch == "hand" else obj) * self.scale
        return sdf.clamp(-0.05, 0.05)[None] + 0.0 * real.float()


def chamfer_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance of two vertex sets (metres in), mean of both directions, mm."""
    from scipy.spatial import cKDTree

    da = cKDTree(b).query(a)[0].mean()
    db = cKDTree(a).query(b)[0].mean()
    return float(500.0 * (da + db))


@dataclasses.dataclass(frozen=True)
class _BackendConfig:
    """A ``ReconstructConfig`` whose meshing bookkeeping runs in ``backend`` (``auto``: torch
    on the GPU, what ``reconstruct`` does; ``numpy``: the CPU bookkeeping of before)."""

    base: Any
    backend: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def meshing(self, point_batch_size: int = 65536) -> Any:
        return dataclasses.replace(self.base.meshing(point_batch_size), backend=self.backend)


# name -> (reconstruct mode, coarse-to-fine bookkeeping backend)
MESH_MODES = {"coarse_to_fine": ("coarse_to_fine", "auto"),
              "coarse_to_fine_numpy": ("coarse_to_fine", "numpy"),
              "dense": ("dense", "auto")}


class _Timers:
    """Patches ``decoder_field`` and ``marching_cubes`` (inside ``with``) to add their
    seconds to :attr:`query_s` / :attr:`marching_cubes_s` (queries synchronised)."""

    def __init__(self):
        self.query_s = self.marching_cubes_s = 0.0

    def reset(self) -> None:
        self.query_s = self.marching_cubes_s = 0.0

    def __enter__(self) -> _Timers:
        import gsdf.eval.reconstruct as rec
        import gsdf.geometry.meshing as meshing
        from gsdf.geometry.meshing import TorchField

        self._saved = field_fn, cubes = rec.decoder_field, meshing.marching_cubes

        def timed_field(*args: Any, **kw: Any) -> Any:
            field = field_fn(*args, **kw)

            def query(points: torch.Tensor) -> torch.Tensor:
                t0 = time.perf_counter()
                out = field.query(points)
                sync(field.device)
                self.query_s += time.perf_counter() - t0
                return out
            return TorchField(query, field.device)

        def timed_cubes(grid: Any) -> Any:
            t0 = time.perf_counter()
            out = cubes(grid)
            self.marching_cubes_s += time.perf_counter() - t0
            return out

        rec.decoder_field, meshing.marching_cubes = timed_field, timed_cubes
        return self

    def __exit__(self, *exc: Any) -> None:
        import gsdf.eval.reconstruct as rec
        import gsdf.geometry.meshing as meshing

        rec.decoder_field, meshing.marching_cubes = self._saved


def _layout(tmp: str, name: str) -> Any:
    from gsdf.paths import PredictionLayout

    return PredictionLayout(Path(tmp) / name / "meshes", Path(tmp) / name / "poses")


def _time_mode(proxy: Any, data: Any, ids: list, tmp: str, name: str, resolution: int,
               dev: torch.device, timers: _Timers) -> dict:
    """Seconds per sample of one of :data:`MESH_MODES` over ``ids[1:]`` (``ids[0]``: warm-up:
    kernels, allocator)."""
    import gsdf.eval.reconstruct as rec

    mode, backend = MESH_MODES[name]
    rcfg = _BackendConfig(rec.ReconstructConfig(mode=mode, resolution=resolution), backend)
    rec.reconstruct_samples(proxy, data, ids[:1], _layout(tmp, name), rcfg, dev,
                            point_batch_size=1 << 18)
    timers.reset()
    sync(dev)
    t0 = time.perf_counter()
    man = rec.reconstruct_samples(proxy, data, ids[1:], _layout(tmp, name), rcfg, dev,
                                  point_batch_size=1 << 18)
    seconds = time.perf_counter() - t0
    n = max(len(ids) - 1, 1)
    return {"seconds_per_sample": seconds / n,
            "query_s_per_sample": timers.query_s / n,
            "marching_cubes_s_per_sample": timers.marching_cubes_s / n,
            "rest_s_per_sample": (seconds - timers.query_s - timers.marching_cubes_s) / n,
            "queries_per_sample": man["total_queries"] / n,
            "no_surface": man["num_no_surface"]}


def _compare_meshes(tmp: str, ids: list) -> dict:
    """Chamfer of the coarse-to-fine and dense meshes; identical files of both bookkeepings."""
    from gsdf.geometry.mesh_io import load_mesh

    cds, same = [], []
    for sid in ids:
        for part in ("hand", "obj"):
            paths = {m: _layout(tmp, m).mesh(part, sid) for m in MESH_MODES}
            a, b = paths["coarse_to_fine"], paths["coarse_to_fine_numpy"]
            same.append(a.exists() == b.exists()
                        and (not a.exists() or a.read_bytes() == b.read_bytes()))
            a, b = (load_mesh(paths[m]) for m in ("coarse_to_fine", "dense"))
            cds.append(chamfer_mm(np.asarray(a.vertices), np.asarray(b.vertices)))
    return {"chamfer_mm_max": max(cds) if cds else float("nan"),
            "chamfer_mm_mean": float(np.mean(cds)) if cds else float("nan"),
            "identical_backends": all(same)}


def bench_meshing(test_data: Path | None, samples: int, dev: torch.device, resolution: int,
                  experiment: dict, defaults: dict) -> dict:
    """Seconds per sample of ``reconstruct_samples`` at ``resolution``^3, same samples, in
    every :data:`MESH_MODES` mode; ``rest_s`` = total - queries - marching cubes (mostly the
    coarse-to-fine bookkeeping; also encoding and writing the meshes).

    Args:
        experiment, defaults: the paper-settings gsdf experiment (``paper_experiment``).
    """
    cfg = train_config(experiment, defaults)
    seed_everything(0)
    model = build("gsdf", experiment).to(dev).eval()
    opts = dict(dataset_options(experiment, cfg), train=False, augment=False)
    if test_data is not None:
        from gsdf.data import build_dataset

        data = build_dataset(test_data, **opts)
    else:
        data = _ItemsWithIds(RandomContractDataset(samples + 1, opts["image_size"], 16))
    proxy = FieldProxy(model)
    ids = list(data.ids)[:samples + 1]
    out: dict = {"resolution": resolution, "samples": samples, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp, _Timers() as timers:
        for name in MESH_MODES:
            out["modes"][name] = _time_mode(proxy, data, ids, tmp, name, resolution, dev, timers)
        out.update(_compare_meshes(tmp, ids[1:]))
    return out


class _ItemsWithIds:
    """Random contract samples with ``ids`` (the reconstruct API's dataset)."""

    def __init__(self, dataset: RandomContractDataset):
        self.dataset = dataset
        self.ids = [f"{k:06d}_000" for k in range(len(dataset))]

    def __getitem__(self, index: int) -> dict:
        return self.dataset[index]
