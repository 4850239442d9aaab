"""Torch Datasets over a packed split (what ``train_pose``, ``train_sdf`` and ``reconstruct`` read).

Every item is a dict with the keys of docs/architecture.md "Training batch"; the default
``torch.utils.data.default_collate`` batches them (strings become a list). Randomness (which
SDF points, which augmentation) comes from a generator seeded by ``(seed, epoch, index)``, so an
item does not depend on which worker loads it, nor on the number of workers: call
:meth:`PackedDataset.set_epoch` before each epoch (with ``persistent_workers=False``, the default,
workers get the updated copy).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gsdf.config import from_dict
from gsdf.data.augment import (
    Augmentation,
    AugmentConfig,
    geometry,
    rotate_axis_angle,
    rotation_z,
    sample_augmentation,
    warp_image,
)
from gsdf.data.lmdb_io import RGB_LMDB, SDF_HAND_LMDB, SDF_OBJ_LMDB, RGBReader, SDFReader
from gsdf.data.pack import check_database, load_annotations

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class PackedDataset(Dataset):
    """Base: one packed split, images and annotations (the pose Dataset).

    Args:
        packed_dir: ``results/{dataset}/{split}`` written by ``pack``.
        train: training mode (augmentation if ``augment``; SDF points for the SDF Datasets).
        image_size: side of the square network input, pixels (images are stored at 256).
        augment: augment in training mode (never at test time).
        aug: augmentation settings (:class:`AugmentConfig` or a dict of its fields).
        seed: base seed of the per-item generators.
    Raises:
        FileNotFoundError: the split is not packed. ``PackError``: its databases disagree with
        its annotations.
    """

    needs_sdf = False

    def __init__(self, packed_dir: str | Path, train: bool = True, image_size: int = 128,
                 augment: bool = True, aug: AugmentConfig | Mapping | None = None,
                 seed: int = 0):
        self.packed_dir = Path(packed_dir)
        self.coco = load_annotations(self.packed_dir)
        self.anns: list[dict] = self.coco["annotations"]
        self.ids = [a["sample_id"] for a in self.anns]
        self.recon_scale = float(self.coco["info"]["recon_scale"])
        check_database(self.packed_dir, RGB_LMDB, self.coco)
        self.rgb = RGBReader(self.packed_dir / RGB_LMDB)
        self.sdf: dict[str, SDFReader] = {}
        if self.needs_sdf and train:
            for which, name in (("hand", SDF_HAND_LMDB), ("obj", SDF_OBJ_LMDB)):
                check_database(self.packed_dir, name, self.coco)
                self.sdf[which] = SDFReader(self.packed_dir / name)
        self.train = train
        self.image_size = int(image_size)
        self.augment = bool(augment and train)
        # from_dict: unknown keys are refused, and numbers given as strings (Snakemake's nested
        # --config values) become numbers.
        self.aug_cfg = aug if isinstance(aug, AugmentConfig) else from_dict(AugmentConfig, aug,
                                                                            "train.aug")
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.anns)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch`` (call before iterating each epoch)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def draw_augmentation(self, rng: np.random.Generator) -> Augmentation:
        return sample_augmentation(self.aug_cfg, rng) if self.augment else Augmentation()

    # --- one frame ----------------------------------------------------------------------------

    def frame(self, index: int, aug: Augmentation) -> dict:
        """Image and annotations of sample ``index`` under augmentation ``aug`` (no batch dim)."""
        ann = self.anns[index]
        image = self.rgb.get(ann["sample_id"])  # (H, W, 3) uint8 RGB
        K = np.asarray(ann["cam_intr"], dtype=np.float64)
        out_hw = (self.image_size, self.image_size)
        A, R, K_new = geometry(aug, K, image.shape[:2], out_hw)
        img = warp_image(image, A, out_hw, aug.color).astype(np.float32) / 255.0
        img = (img - IMAGENET_MEAN) / IMAGENET_STD  # (H, W, 3)
        joints = np.asarray(ann["hand_joints_3d"], np.float64) @ R.T  # (21, 3)
        pose = np.asarray(ann["hand_pose"], np.float64).copy()
        pose[:3] = rotate_axis_angle(R, pose[:3])
        R4 = np.eye(4)
        R4[:3, :3] = R
        f32 = torch.float32
        return {
            "id": ann["sample_id"],
            "image": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "cam_intr": torch.as_tensor(K_new, dtype=f32),
            "hand_joints_3d": torch.as_tensor(joints, dtype=f32),
            "hand_center_3d": torch.as_tensor(joints[0], dtype=f32),
            "hand_pose": torch.as_tensor(pose, dtype=f32),
            "hand_shape": torch.as_tensor(ann["hand_shape"], dtype=f32),
            "obj_center_3d": torch.as_tensor(np.asarray(ann["obj_center_3d"]) @ R.T, dtype=f32),
            "obj_corners_3d": torch.as_tensor(np.asarray(ann["obj_corners_3d"]) @ R.T,
                                              dtype=f32),
            "obj_rest_corners_3d": torch.as_tensor(ann["obj_rest_corners_3d"], dtype=f32),
            "obj_transform": torch.as_tensor(R4 @ np.asarray(ann["obj_transform"]), dtype=f32),
            "recon_scale": torch.tensor(self.recon_scale, dtype=f32),
        }

    def __getitem__(self, index: int) -> dict:
        return self.frame(index, self.draw_augmentation(self.rng(index)))


class PoseDataset(PackedDataset):
    """Pose training (``train_pose``): image + joints + object pose, no SDF points."""


class SDFDataset(PackedDataset):
    """SDF training: a pose item plus ``num_points`` SDF points in training mode.

    The first ``num_points // 2`` points come from the hand set (half outside, half inside the
    hand), the rest from the object set (half outside, half inside the object), drawn with
    replacement as the reference does; if a subset is empty its share comes from the other
    half. Points are rotated with the image; distances are clamped to ``[-clamp, clamp]``.
    ``hand_part`` is the part of the nearest hand face for hand-set points with
    ``|sdf_hand| < clamp`` and ``-1`` (ignore) elsewhere and for every object-set point (as the
    reference's ``unpack_sdf``).

    Args:
        num_points: points per item (even).
        clamp: clamp distance in hand-frame units, ``None`` for no clamping.
        (others as :class:`PackedDataset`)
    """

    needs_sdf = True

    def __init__(self, packed_dir: str | Path, train: bool = True, image_size: int = 128,
                 num_points: int = 1000, clamp: float | None = 0.05, augment: bool = True,
                 aug: AugmentConfig | Mapping | None = None, seed: int = 0):
        super().__init__(packed_dir, train, image_size, augment, aug, seed)
        if num_points < 4 or num_points % 4:
            raise ValueError(f"num_points must be a positive multiple of 4, got {num_points}")
        self.num_points = int(num_points)
        self.clamp = clamp

    def draw_points(self, sample_id: str, rng: np.random.Generator) -> np.ndarray:
        """(num_points, 6) float32 rows ``x y z sdf_hand sdf_obj part``, unclamped."""
        quarter = self.num_points // 4
        rows = []
        for which in ("hand", "obj"):
            pos, neg = self.sdf[which].get(sample_id)
            if len(pos) == 0 and len(neg) == 0:
                raise ValueError(f"{sample_id}: the {which} SDF set is empty")
            n_pos = quarter if len(pos) and len(neg) else (2 * quarter if len(pos) else 0)
            n_neg = 2 * quarter - n_pos
            for subset, n in ((pos, n_pos), (neg, n_neg)):
                if n:
                    rows.append(subset[rng.integers(0, len(subset), n)])
        return np.concatenate(rows)

    def add_points(self, item: dict, index: int, R: np.ndarray, rng: np.random.Generator
                   ) -> dict:
        rows = self.draw_points(self.anns[index]["sample_id"], rng)
        half = self.num_points // 2
        points = rows[:, :3].astype(np.float64) @ R.T  # (N, 3) rotated with the camera
        sdf_hand, sdf_obj = rows[:, 3].copy(), rows[:, 4].copy()
        part = rows[:, 5].astype(np.int64)
        part[half:] = -1
        if self.clamp is not None:
            part[np.abs(sdf_hand) >= self.clamp] = -1
            sdf_hand = np.clip(sdf_hand, -self.clamp, self.clamp)
            sdf_obj = np.clip(sdf_obj, -self.clamp, self.clamp)
        item["points"] = torch.as_tensor(points, dtype=torch.float32)
        item["sdf_hand"] = torch.as_tensor(sdf_hand, dtype=torch.float32)
        item["sdf_obj"] = torch.as_tensor(sdf_obj, dtype=torch.float32)
        item["hand_part"] = torch.as_tensor(part, dtype=torch.int64)
        return item

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        aug = self.draw_augmentation(rng)
        item = self.frame(index, aug)
        if self.train:
            item = self.add_points(item, index, rotation_z(aug.angle), rng)
        return item


class VideoDataset(SDFDataset):
    """Video variant, clips as the reference draws them (zerchen/gSDF
    ``datasets/sdf_video_dataset.py`` and ``datasets/dexycb/dexycb.py``):

    * training: item ``k`` is the ``k``-th sequence (``video_id``) with at least ``frames``
      frames; each time it is drawn, ``frames`` distinct frames of it are picked at random (in
      the drawn order, as ``np.random.choice(len, frames, replace=False)``), each with its own
      SDF points, one augmentation for all. An epoch is one pass over the sequences;
    * test: item ``i`` is frame ``i`` in its clip: a sequence is cut into consecutive,
      non-overlapping clips of ``frames`` frames, the last one completed with the frames before
      it (``construct_clips``); ``frame_pos`` says where frame ``i`` sits in the clip, so that
      every frame is reconstructed with the clip the reference reconstructs it with. A sequence
      shorter than a clip repeats its last frame.

    Every tensor gains a time axis after the batch axis (``image`` (T, 3, H, W), ``points``
    (T, N, 3) ...); ``frame_pos`` () int64 is the frame the item stands for (test: frame
    ``i``; training: the middle drawn frame), ``id`` that frame's id.

    Args:
        frames: clip length, odd (3 or 5 in the paper).
        with_points: add SDF points (training mode only), else behave like a pose Dataset.
        (others as :class:`SDFDataset`)

    Raises:
        ValueError: ``frames`` even, or (training) no sequence with ``frames`` frames.
    """

    def __init__(self, packed_dir: str | Path, train: bool = True, image_size: int = 128,
                 num_points: int = 1000, clamp: float | None = 0.05, frames: int = 3,
                 augment: bool = True, aug: AugmentConfig | Mapping | None = None,
                 seed: int = 0, with_points: bool = True):
        super().__init__(packed_dir, train, image_size, num_points, clamp, augment, aug, seed)
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd and >= 1, got {frames}")
        self.frames = int(frames)
        self.with_points = with_points
        by_video: dict = {}
        for i, a in enumerate(self.anns):
            by_video.setdefault(a["video_id"], []).append((int(a["frame_idx"]), i))
        self.sequences = [[i for _, i in sorted(m)] for _, m in sorted(by_video.items())]
        # training items: the sequences long enough for a clip (the reference drops the others)
        self.train_sequences = [seq for seq in self.sequences if len(seq) >= self.frames]
        if train and not self.train_sequences:
            raise ValueError(f"{self.packed_dir}: no sequence has {self.frames} frames, so the "
                             f"video model has no training clip; use longer sequences or "
                             f"fewer frames (train.frames / model_args.num_frames)")
        self.clip_of: list[tuple[list[int], int]] = [([], 0)] * len(self.anns)
        for seq in self.sequences:
            for clip in reference_clips(seq, self.frames):
                for pos, i in enumerate(clip):
                    self.clip_of[i] = (clip, pos)

    def __len__(self) -> int:
        return len(self.train_sequences) if self.train else len(self.anns)

    def clip(self, index: int, rng: np.random.Generator | None = None) -> tuple[list[int], int]:
        """Sample indices of item ``index``'s clip and the position of its frame in it."""
        if self.train:
            seq = self.train_sequences[index]
            rng = rng if rng is not None else self.rng(index)
            picked = rng.choice(len(seq), self.frames, replace=False)
            return [seq[int(j)] for j in picked], self.frames // 2
        return self.clip_of[index]

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        members, pos = self.clip(index, rng)
        aug = self.draw_augmentation(rng)
        R = rotation_z(aug.angle)
        items = []
        for j in members:
            item = self.frame(j, aug)
            if self.train and self.with_points:
                item = self.add_points(item, j, R, rng)
            items.append(item)
        out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "id"}
        out["id"] = self.anns[members[pos]]["sample_id"]
        out["frame_pos"] = torch.tensor(pos, dtype=torch.int64)
        return out


def reference_clips(sequence: list[int], frames: int) -> list[list[int]]:
    """The reference's test clips of one sequence (``construct_clips``): consecutive groups of
    ``frames``; a remainder becomes a last clip completed with the frames before it; a sequence
    shorter than ``frames`` is one clip padded with its last frame.

    Args:
        sequence: the sequence's sample indices in frame order.
        frames: clip length.
    """
    groups, rest = divmod(len(sequence), frames)
    clips = [sequence[m * frames:(m + 1) * frames] for m in range(groups)]
    if rest:
        if groups:
            clips.append(sequence[len(sequence) - frames:])
        else:
            clips.append(sequence + [sequence[-1]] * (frames - rest))
    return clips


def build_dataset(packed_dir: str | Path, kind: str = "sdf", train: bool = True,
                  image_size: int = 128, num_points: int = 1000, clamp: float | None = 0.05,
                  frames: int = 1, augment: bool = True,
                  aug: AugmentConfig | Mapping | None = None, seed: int = 0) -> PackedDataset:
    """The one constructor the training and reconstruction stages call.

    Args:
        packed_dir: ``results/{dataset}/{split}`` (``gsdf.paths`` ``packed_dir``).
        kind: ``"pose"`` (image + joints), ``"sdf"`` (+ SDF points when ``train``) or
            ``"video"`` (clips of ``frames`` frames, + SDF points when ``train``; see
            :class:`VideoDataset`).
        train: training mode; ``False`` = no augmentation and no SDF points.
        image_size: network input side, pixels (stored images are 256).
        num_points: SDF points per item (multiple of 4).
        clamp: SDF clamp, hand-frame units (0.05 in the paper); ``None`` = no clamp.
        frames: window length of ``kind="video"`` (odd: 3 or 5); ignored otherwise.
        augment: augment in training mode.
        aug: augmentation settings (:class:`AugmentConfig` fields).
        seed: base seed of the per-item random streams.
    """
    if kind == "pose":
        return PoseDataset(packed_dir, train, image_size, augment, aug, seed)
    if kind == "sdf":
        return SDFDataset(packed_dir, train, image_size, num_points, clamp, augment, aug, seed)
    if kind == "video":
        return VideoDataset(packed_dir, train, image_size, num_points, clamp, frames, augment,
                            aug, seed)
    raise ValueError(f"unknown dataset kind {kind!r}; allowed: pose, sdf, video")


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders: seeds numpy's and Python's global generators from
    the worker's torch seed (itself derived from the DataLoader's ``generator``), for any code
    that uses global randomness. The Datasets here do not need it (they seed per item)."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PackedDataset", "PoseDataset", "SDFDataset",
           "VideoDataset", "build_dataset", "reference_clips", "seed_worker"]
