"""Stage `prepare` on a tiny DexYCB-style download (gsdf/testing/raw_datasets.py), checked with
independent arithmetic: the s0 selection, the frame rules, the crop and its intrinsics, the
MANO wrist (J0(betas) + translation), the object's box-centred frame, bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch
import trimesh

from gsdf.data.raw import RawDataError
from gsdf.geometry.mesh_io import load_mesh, load_vertex_parts
from gsdf.hand import HandLayer, load_mano
from gsdf.hand.asset import JOINT_PART
from gsdf.paths import SplitLayout
from gsdf.stages import prepare
from gsdf.testing.raw_datasets import DEX_MODELS, make_dexycb, make_mano


@pytest.fixture(scope="module")
def dex(tmp_path_factory):
    base = tmp_path_factory.mktemp("dexycb")
    mano = make_mano(base / "mano")
    truth = make_dexycb(base / "dexycb", mano)
    return base, mano, truth


def params(base, mano, num_shards=2, root=None, split="s0"):
    return {"dataset": {"name": "dexycb", "root": str(root or base / "dexycb"), "split": split,
                        "num_shards": num_shards},
            "hand": {"mano_root": str(mano)}}


def run_split(out, p, split):
    n = p["dataset"]["num_shards"]
    return [prepare.run(prepare.Inputs(split, k),
                        prepare.Outputs(out / split / "shards" / f"shard_{k:03d}.json",
                                        out / split), p, progress=False) for k in range(n)]


@pytest.fixture(scope="module")
def prepared(dex, tmp_path_factory):
    base, mano, _ = dex
    out = tmp_path_factory.mktemp("out")
    p = params(base, mano)
    return out, {s: run_split(out, p, s) for s in ("train", "test")}


def test_selection_follows_s0_and_the_frame_rules(dex, prepared):
    _, _, truth = dex
    _, manifests = prepared
    for split in ("train", "test"):
        ids = sorted(i for m in manifests[split] for i in m["ids"])
        assert ids == truth[split], split
        # every 5th frame only
        assert all(int(i.rsplit("_", 1)[1]) % 5 == 0 for i in ids)
    train_ids = {i for m in manifests["train"] for i in m["ids"]}
    test_ids = {i for m in manifests["test"] for i in m["ids"]}
    dropped = truth["excluded"]
    for reason in ("no_hand", "left", "val"):
        assert not set(dropped[reason]) & (train_ids | test_ids), reason
    assert not set(dropped["no_contact"]) & test_ids
    excl = {}
    for m in manifests["train"] + manifests["test"]:
        for k, v in m["excluded"].items():
            excl[k] = excl.get(k, 0) + v
    assert excl["no hand annotation"] == len(dropped["no_hand"])
    assert excl["left hand (right hands only)"] == len(dropped["left"]) > 0
    assert excl["test frame without hand-object contact (> 5 mm)"] == len(dropped["no_contact"])
    # the corrupt label file: skipped with its reason, counted
    skipped = [s for m in manifests["train"] for s in m["skipped"]]
    assert [s["id"] for s in skipped] == truth["broken"]
    assert "unreadable labels" in skipped[0]["reason"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_hand_object_and_crop(dex, prepared, split):
    _, mano, truth = dex
    out, manifests = prepared
    layout = SplitLayout(out / split)
    asset = load_mano(mano)
    layer = HandLayer(asset).double()
    video_ids = {}
    for sid in (i for m in manifests[split] for i in m["ids"]):
        gt = truth["frames"][sid]
        meta = json.loads(layout.meta(sid).read_text())
        # labels are already in the OpenCV frame: joints unchanged
        joints = np.asarray(meta["hand_joints_3d"])
        np.testing.assert_allclose(joints, gt["joints"], atol=1e-6)
        # MANO: wrist = J0(betas) + trans (not trans alone); the mesh is the labelled hand
        j0 = asset.J_regressor[0] @ (asset.v_template + asset.shapedirs @ gt["betas"])
        np.testing.assert_allclose(joints[0], j0 + gt["pose_m"][48:], atol=1e-5)
        assert np.linalg.norm(joints[0] - gt["pose_m"][48:]) > 1e-3
        hand = load_mesh(layout.mesh("hand", sid))
        np.testing.assert_allclose(hand.vertices, gt["verts"], atol=1e-5)
        assert hand.is_watertight and hand.volume > 0
        np.testing.assert_array_equal(load_vertex_parts(hand),
                                      JOINT_PART[asset.weights.argmax(1)])
        # hand_pose = PCA @ components + mean (flat_hand_mean=False), shape = subject's betas
        finger = gt["pose_m"][3:48] @ asset.hands_components + asset.hands_mean
        np.testing.assert_allclose(meta["hand_pose"][3:], finger, atol=1e-6)
        np.testing.assert_allclose(meta["hand_shape"], gt["betas"], atol=1e-8)
        with torch.no_grad():
            res = layer(torch.tensor([meta["hand_pose"]], dtype=torch.float64),
                        torch.tensor([meta["hand_shape"]], dtype=torch.float64),
                        torch.tensor([meta["hand_trans"]], dtype=torch.float64))
        np.testing.assert_allclose(res.vertices[0].numpy(), gt["verts"], atol=1e-5)
        # object: the whole model posed by pose_y; its frame centred on the box centre
        obj = load_mesh(layout.mesh("obj", sid))
        np.testing.assert_allclose(np.sort(obj.vertices, 0), np.sort(gt["obj_verts"], 0),
                                   atol=1e-6)
        centre = gt["R"] @ gt["offset"] + gt["t"]
        assert np.linalg.norm(gt["offset"]) > 0.02  # the model origin is off the box centre
        np.testing.assert_allclose(meta["obj_center_3d"], centre, atol=1e-6)
        tf = np.asarray(meta["obj_transform"])
        np.testing.assert_allclose(tf[:3, :3], gt["R"], atol=1e-6)
        np.testing.assert_allclose(tf[:3, 3], centre, atol=1e-6)
        rest = np.asarray(meta["obj_rest_corners_3d"])
        mv = gt["model_verts"]
        np.testing.assert_allclose(rest.min(0), mv.min(0) - gt["offset"], atol=1e-6)
        np.testing.assert_allclose(rest.max(0), mv.max(0) - gt["offset"], atol=1e-6)
        np.testing.assert_allclose(meta["obj_corners_3d"], rest @ gt["R"].T + centre, atol=1e-6)
        assert meta["obj_family"] == DEX_MODELS[gt["grasp"]]
        # crop: square, scale + shift of the camera; joints land on the hand in the crop
        K, K0 = np.asarray(meta["cam_intr"]), gt["K"]
        k = K[0, 0] / K0[0, 0]
        np.testing.assert_allclose(K[1, 1] / K0[1, 1], k, rtol=1e-9)
        assert K[0, 1] == 0 and K[1, 0] == 0
        uv = joints @ K.T
        uv = uv[:, :2] / uv[:, 2:3]
        assert (uv > 5).all() and (uv < 251).all()
        mask = cv2.imread(str(layout.mask(sid)), cv2.IMREAD_UNCHANGED)
        px = np.round(uv).astype(int)
        uvj = joints @ K0.T
        pj = np.round(uvj[:, :2] / uvj[:, 2:3]).astype(int)
        lab = gt["label"][pj[:, 1], pj[:, 0]]
        expect = np.where(lab == 255, 1, np.where(lab == gt["grasp"], 2, 0))
        # each joint's class in the crop is its class in the original image
        assert (mask[px[:, 1], px[:, 0]] == expect).mean() >= 0.9
        assert (expect == 1).mean() > 0.5
        # the crop's pixel at a hand point's projection = the original pixel at its projection
        crop = cv2.imread(str(layout.rgb(sid)))[..., ::-1].astype(float)
        uv0 = gt["verts"] @ K0.T
        uv0 = uv0[:, :2] / uv0[:, 2:3]
        src = gt["image"].astype(float)
        pick = np.random.default_rng(0).choice(len(uv0), 50, replace=False)
        uvc = gt["verts"][pick] @ K.T
        uvc = np.round(uvc[:, :2] / uvc[:, 2:3]).astype(int)
        uvs = np.round(uv0[pick]).astype(int)
        ok = (mask[uvc[:, 1], uvc[:, 0]] == 1)
        diff = np.abs(crop[uvc[ok, 1], uvc[ok, 0]] - src[uvs[ok, 1], uvs[ok, 0]]).max(1)
        assert ok.mean() > 0.5 and np.median(diff) < 25
        video_ids.setdefault(meta["video_id"], set()).add(sid.rsplit("_", 1)[0])
        assert meta["frame_idx"] == int(sid.rsplit("_", 1)[1])
    # one video_id per camera sequence
    assert all(len(v) == 1 for v in video_ids.values())


def test_rerun_reuses_samples(dex, prepared):
    base, mano, _ = dex
    out, manifests = prepared
    again = run_split(out, params(base, mano), "test")
    assert sum(m["stats"]["num_reused"] for m in again) == sum(len(m["ids"]) for m in
                                                                manifests["test"])


def test_other_setups_select_other_cameras_and_subjects(dex, tmp_path):
    base, mano, truth = dex
    # s2 tests on camera 7 only: none in the fixture -> the setup finds nothing
    with pytest.raises(RawDataError, match="no sequence of setup s2 test"):
        prepare.run(prepare.Inputs("test", 0),
                    prepare.Outputs(tmp_path / "m.json", tmp_path / "test"),
                    params(base, mano, num_shards=1, split="s2"))
    # s1 trains on subjects 0-5 and 9 (every sequence): subject 2's test sequence is in
    from gsdf.data.dexycb import DexYCBReader

    reader = DexYCBReader({"root": str(base / "dexycb"), "split": "s1"}, load_mano(mano),
                          "train")
    ids = set(reader.sample_ids())
    assert set(truth["test"]) | set(truth["excluded"]["no_contact"]) <= ids
    assert set(truth["excluded"]["val"]) <= ids


def test_bad_input_stops_at_start_naming_the_key(dex, tmp_path):
    base, mano, _ = dex
    out = prepare.Outputs(tmp_path / "m.json", tmp_path / "train")
    broken = tmp_path / "broken"
    shutil.copytree(base / "dexycb", broken)
    (broken / "calibration" / "intrinsics" / "836212060125_640x480.yml").unlink()
    nomodel = tmp_path / "nomodel"
    shutil.copytree(base / "dexycb", nomodel)
    shutil.rmtree(nomodel / "models" / DEX_MODELS[4])
    nobetas = tmp_path / "nobetas"
    shutil.copytree(base / "dexycb", nobetas)
    shutil.rmtree(nobetas / "calibration" / "mano_20200709_subject_01")
    for root, pattern in ((tmp_path / "nowhere", "folder not found"),
                          (broken, "836212060125_640x480.yml not found"),
                          (nomodel, "YCB model of object 4"),
                          (nobetas, "mano.yml not found")):
        with pytest.raises(RawDataError, match=pattern) as err:
            prepare.run(prepare.Inputs("train", 0), out, params(base, mano, 1, root=root))
        assert "datasets.dexycb.root" in str(err.value) and "Real datasets" in str(err.value)
    with pytest.raises(RawDataError, match="datasets.dexycb.root"):
        prepare.check(params(base, mano, 1, root=tmp_path / "nowhere"))
    assert not out.manifest.exists()


def test_models_keep_their_faces(dex):
    base, _, _ = dex
    from gsdf.data.raw import load_object_mesh

    for name in DEX_MODELS.values():
        v, f = load_object_mesh(base / "dexycb" / "models" / name / "textured_simple.obj")
        assert trimesh.Trimesh(v, f).is_watertight
