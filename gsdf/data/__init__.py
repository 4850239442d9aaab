"""gsdf.data: packing (stage ``pack``), LMDB readers, torch Datasets, augmentation.

Modules: :mod:`gsdf.data.pack` (``annotations.json`` + LMDBs from the canonical layout and the SDF
shards), :mod:`gsdf.data.lmdb_io` (the packed format and its readers), :mod:`gsdf.data.augment`,
:mod:`gsdf.data.datasets`; the readers of the real datasets for stage ``prepare``:
:mod:`gsdf.data.obman`, :mod:`gsdf.data.dexycb` (raw download -> canonical records) and what
they share, :mod:`gsdf.data.raw`.

Use from the training / reconstruction stages::

    from torch.utils.data import DataLoader
    from gsdf.data import build_dataset, seed_worker

    ds = build_dataset(layout.packed_dir(dataset="synth", split="train"), kind="sdf",
                       train=True, image_size=128, num_points=1000, clamp=0.05, seed=cfg.seed)
    g = torch.Generator()
    g.manual_seed(cfg.seed + rank)
    loader = DataLoader(ds, batch_size=B, sampler=DistributedSampler(ds, seed=cfg.seed),
                        num_workers=2, worker_init_fn=seed_worker, generator=g,
                        drop_last=True)  # default collate; persistent_workers must stay False
    for epoch in range(start_epoch, epochs):
        loader.sampler.set_epoch(epoch)
        ds.set_epoch(epoch)            # per-item random streams seeded by (seed, epoch, index)
        for batch in loader: ...

``kind``: ``"pose"`` (image + joints, for ``train_pose``), ``"sdf"`` (+ ``points``, ``sdf_hand``,
``sdf_obj``, ``hand_part`` when ``train=True``), ``"video"`` (``frames`` = 3 or 5 consecutive
frames of a sequence, clamped at its ends; a time axis after the batch axis). With
``train=False`` there is no augmentation and no SDF points (reconstruction reads the packed test
split this way; ``hand_center_3d`` and ``cam_intr`` are then the ground-truth ones of the resized
image).

Determinism: every item draws its augmentation and points from
``np.random.default_rng([seed, epoch, index])``, so a batch does not depend on the worker that
loads it nor on the number of workers, and a resumed run sees the same data as an uninterrupted
one as long as it calls ``set_epoch``. ``seed_worker`` only seeds the global numpy/random
generators for other code. Workers open their own LMDB environments lazily (read-only, no lock).

Batch keys (docs/architecture.md "Training batch"): ``id`` (list of str), ``image`` (B,3,H,W),
``cam_intr`` (B,3,3), ``hand_joints_3d`` (B,21,3), ``hand_center_3d`` (B,3), ``hand_pose``
(B,48), ``hand_shape`` (B,10), ``obj_center_3d`` (B,3), ``obj_corners_3d`` (B,8,3),
``obj_rest_corners_3d`` (B,8,3), ``obj_transform`` (B,4,4) object->camera, ``recon_scale`` (B,),
and in training ``points`` (B,N,3) hand frame, ``sdf_hand`` / ``sdf_obj`` (B,N) clamped,
``hand_part`` (B,N) int64 with -1 = ignore (object-set points and hand-set points with
``|sdf_hand| >= clamp``, as the reference). The default ``torch.utils.data.default_collate`` is
enough; no custom collate is needed.
"""

from gsdf.data.augment import AugmentConfig
from gsdf.data.datasets import (
    PackedDataset,
    PoseDataset,
    SDFDataset,
    VideoDataset,
    build_dataset,
    seed_worker,
)

__all__ = ["AugmentConfig", "PackedDataset", "PoseDataset", "SDFDataset", "VideoDataset",
           "build_dataset", "seed_worker"]
