"""torch Datasets over a packed split: batch keys, point sets, augmentation consistency."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gsdf.data import AugmentConfig, build_dataset, seed_worker
from gsdf.data.augment import Augmentation, geometry, warp_image
from gsdf.data.datasets import IMAGENET_MEAN, IMAGENET_STD, reference_clips

POSE_KEYS = {
    "id": None, "image": (3, 128, 128), "cam_intr": (3, 3), "hand_joints_3d": (21, 3),
    "hand_center_3d": (3,), "hand_pose": (48,), "hand_shape": (10,), "obj_center_3d": (3,),
    "obj_corners_3d": (8, 3), "obj_rest_corners_3d": (8, 3), "obj_transform": (4, 4),
    "recon_scale": (),
}
SDF_KEYS = {"points": (40, 3), "sdf_hand": (40,), "sdf_obj": (40,), "hand_part": (40,)}


def check_batch(batch, expected, B, T=None):
    assert set(batch) == set(expected)
    for key, shape in expected.items():
        if shape is None:
            assert isinstance(batch[key], list) and len(batch[key]) == B
            continue
        lead = (B,) if T is None else (B, T)
        assert tuple(batch[key].shape) == lead + shape, key
        assert batch[key].dtype == (torch.int64 if key == "hand_part" else torch.float32), key


@pytest.mark.parametrize("kind,train", [("pose", True), ("sdf", True), ("sdf", False),
                                        ("video", True), ("video", False)])
def test_batch_keys_and_shapes(packed_split, kind, train):
    ds = build_dataset(packed_split, kind=kind, train=train, image_size=128, num_points=40,
                       frames=3)
    loader = DataLoader(ds, batch_size=2, num_workers=0, worker_init_fn=seed_worker)
    batch = next(iter(loader))
    expected = dict(POSE_KEYS)
    if train and kind != "pose":
        expected.update(SDF_KEYS)
    if kind == "video":
        assert batch.pop("frame_pos").tolist() == [ds.clip(i)[1] for i in range(2)]
    check_batch(batch, expected, 2, T=3 if kind == "video" else None)


def test_sdf_points_half_hand_half_object_half_inside(packed_split):
    ds = build_dataset(packed_split, kind="sdf", train=True, num_points=400, clamp=0.05,
                       augment=False)
    item = ds[0]
    h, o = item["sdf_hand"], item["sdf_obj"]
    assert (h[:100] > 0).all() and (h[100:200] <= 0).all()  # hand set: outside, inside
    assert (o[200:300] > 0).all() and (o[300:] <= 0).all()  # object set: outside, inside
    assert h.abs().max() <= 0.05 and o.abs().max() <= 0.05
    part = item["hand_part"]
    assert (part[200:] == -1).all()
    assert ((part[:200] >= 0) == (h[:200].abs() < 0.05)).all()
    assert part.max() <= 5
    # unclamped: the stored values come through, and points are in the hand frame
    raw = build_dataset(packed_split, kind="sdf", train=True, num_points=400, clamp=None,
                        augment=False)[0]
    assert raw["sdf_hand"].abs().max() > 0.05
    assert torch.allclose(raw["points"], item["points"])
    assert raw["points"].abs().max() < 2.0


def test_items_are_deterministic_per_seed_epoch_index(packed_split):
    ds = build_dataset(packed_split, kind="sdf", train=True, num_points=40, seed=3)
    a, b = ds[1], ds[1]
    for key in ("image", "points", "hand_joints_3d"):
        assert torch.equal(a[key], b[key])
    ds.set_epoch(1)
    c = ds[1]
    assert not torch.equal(a["points"], c["points"])
    # same items whatever the number of workers
    ds.set_epoch(0)
    one = next(iter(DataLoader(ds, batch_size=4, num_workers=0)))
    two = next(iter(DataLoader(ds, batch_size=4, num_workers=2, worker_init_fn=seed_worker)))
    assert torch.equal(one["points"], two["points"]) and torch.equal(one["image"], two["image"])


def test_test_mode_is_not_augmented(packed_split):
    ds = build_dataset(packed_split, kind="sdf", train=False, image_size=256)
    item = ds[0]
    ann = ds.anns[0]
    np.testing.assert_allclose(item["cam_intr"].numpy(), ann["cam_intr"], atol=1e-5)
    np.testing.assert_allclose(item["hand_joints_3d"].numpy(), ann["hand_joints_3d"], atol=1e-6)
    img = ds.rgb.get(ann["sample_id"]).astype(np.float32) / 255
    np.testing.assert_allclose(item["image"].numpy().transpose(1, 2, 0),
                               (img - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5)


def project(points, K):
    uv = points @ K.T
    return uv[:, :2] / uv[:, 2:3]


def denormalise(image):
    return (image.numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255


@pytest.mark.parametrize("image_size", [128, 256])
def test_augmented_joints_land_where_the_dots_are(packed_split, image_size):
    """The fixture images have a white dot at every projected joint: after rotation, zoom,
    shift and resize, the augmented joints projected with the augmented intrinsics must still
    hit the dots."""
    aug = AugmentConfig(rot_factor=60.0, rot_prob=1.0, scale_factor=0.2, trans_factor=0.1,
                        color_factor=0.0)
    ds = build_dataset(packed_split, kind="sdf", train=True, image_size=image_size,
                       num_points=40, aug=aug, seed=5)
    angles = []
    for index in range(len(ds)):
        item = ds[index]
        img = denormalise(item["image"]).mean(axis=2)  # (H, W) grey
        uv = project(item["hand_joints_3d"].numpy().astype(np.float64),
                     item["cam_intr"].numpy().astype(np.float64))
        inside = (uv > 2).all(1) & (uv < image_size - 3).all(1)
        px = np.round(uv[inside]).astype(int)
        values = img[px[:, 1], px[:, 0]]
        assert inside.sum() >= 10
        assert np.median(values) > 180, values  # dots are white on a dark background
        # the object pose went with them: transform of rest corners = corners
        T = item["obj_transform"].numpy().astype(np.float64)
        rest = item["obj_rest_corners_3d"].numpy()
        np.testing.assert_allclose(rest @ T[:3, :3].T + T[:3, 3],
                                   item["obj_corners_3d"].numpy(), atol=1e-5)
        ann = ds.anns[index]
        K0 = np.asarray(ann["cam_intr"])
        R = item["hand_joints_3d"].numpy().T @ np.linalg.pinv(
            np.asarray(ann["hand_joints_3d"]).T)
        angles.append(np.degrees(np.arctan2(R[1, 0], R[0, 0])))
        assert K0.shape == (3, 3)
    assert np.abs(angles).max() > 5  # the test did rotate


def test_geometry_maps_are_consistent():
    K = np.array([[480.0, 0, 120.0], [0, 470.0, 131.0], [0, 0, 1]])
    aug = Augmentation(angle=0.7, zoom=1.2, shift=(0.05, -0.03))
    A, R, K2 = geometry(aug, K, (256, 256), (128, 128))
    rng = np.random.default_rng(0)
    p = rng.uniform(-0.1, 0.1, (50, 3)) + [0, 0, 0.5]
    lhs = project(p @ R.T, K2)
    rhs = np.c_[project(p, K), np.ones(50)] @ A.T
    np.testing.assert_allclose(lhs, rhs[:, :2], atol=1e-9)
    # identity + resize uses the half-pixel convention of cv2.resize
    A, _, K3 = geometry(Augmentation(), K, (256, 256), (128, 128))
    img = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    import cv2

    np.testing.assert_array_equal(warp_image(img, A, (128, 128)),
                                  cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA))
    np.testing.assert_allclose(K3[0, 0], 240.0)
    np.testing.assert_allclose(K3[0, 2], 120.0 * 0.5 - 0.25)


def test_reference_clips():
    # zerchen/gSDF datasets/dexycb/dexycb.py construct_clips: consecutive groups, the remainder
    # completed with the frames before it
    assert reference_clips(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [4, 5, 6]]
    assert reference_clips(list(range(6)), 3) == [[0, 1, 2], [3, 4, 5]]
    assert reference_clips(list(range(6)), 5) == [[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]
    assert reference_clips([8, 9], 3) == [[8, 9, 9]]  # shorter than a clip: last frame repeated


def test_video_training_draws_frames_of_a_sequence(packed_split):
    ds = build_dataset(packed_split, kind="video", train=True, num_points=40, frames=3)
    assert len(ds) == 2  # one item per sequence (2 sequences of 3 frames)
    for k, video in enumerate(("000000", "000001")):
        members, pos = ds.clip(k)
        ids = [ds.ids[j] for j in members]
        assert sorted(ids) == [f"{video}_{f:03d}" for f in range(3)]  # distinct frames
        assert pos == 1
        item = ds[k]
        assert item["id"] == ids[1] and item["points"].shape == (3, 40, 3)
        assert torch.equal(item["image"], ds[k]["image"])  # seeded by (seed, epoch, index)
    orders = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        orders.add(tuple(ds.clip(0)[0]))
    assert len(orders) > 1  # drawn afresh every epoch, in the drawn order
    with pytest.raises(ValueError, match="no sequence has 5 frames"):
        build_dataset(packed_split, kind="video", train=True, num_points=40, frames=5)
    with pytest.raises(ValueError, match="odd"):
        build_dataset(packed_split, kind="video", frames=4)


def test_video_test_items_are_every_frame_in_its_clip(packed_split):
    ds = build_dataset(packed_split, kind="video", train=False, frames=3)
    assert len(ds) == 6  # every frame
    for i, sid in enumerate(ds.ids):
        members, pos = ds.clip(i)
        assert [ds.ids[j] for j in members] == [f"{sid[:6]}_{f:03d}" for f in range(3)]
        assert ds.ids[members[pos]] == sid
        item = ds[i]
        assert item["id"] == sid and int(item["frame_pos"]) == pos
    # frames=5 on 3-frame sequences: one clip each, padded with the last frame
    members, pos = build_dataset(packed_split, kind="video", train=False, frames=5).clip(0)
    assert len(members) == 5 and members[-1] == members[-2] == members[-3]
