"""Stage `prepare` on a tiny ObMan-style download (gsdf/testing/raw_datasets.py), checked with
independent arithmetic: OpenCV frame, intrinsics, object = the posed ShapeNet model (scale
applied once), watertight hand with MANO parts, split files, broken samples, bad input."""

from __future__ import annotations

import json
import pickle

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
from gsdf.testing.raw_datasets import OBMAN_K, make_mano, make_obman


@pytest.fixture(scope="module")
def obman(tmp_path_factory):
    base = tmp_path_factory.mktemp("obman")
    mano = make_mano(base / "mano")
    truth = make_obman(base / "obman", base / "ShapeNetCore.v2", mano)
    return base, mano, truth


def params(base, mano, truth, num_shards=2, split_files=True):
    files = ({k: str(v) for k, v in truth["split_files"].items()} if split_files else {})
    return {"dataset": {"name": "obman", "root": str(base / "obman"),
                        "shapenet_root": str(base / "ShapeNetCore.v2"),
                        "split_files": files, "num_shards": num_shards},
            "hand": {"mano_root": str(mano)}}


def run_split(out, p, split, num_shards=2):
    manifests = []
    for k in range(num_shards):
        manifest = out / split / "shards" / f"shard_{k:03d}.json"
        manifests.append(prepare.run(prepare.Inputs(split, k),
                                     prepare.Outputs(manifest, out / split), p, progress=False))
    return manifests


@pytest.fixture(scope="module")
def prepared(obman, tmp_path_factory):
    base, mano, truth = obman
    out = tmp_path_factory.mktemp("out")
    p = params(base, mano, truth)
    return out, {s: run_split(out, p, s) for s in ("train", "test")}


def test_split_files_gaps_and_broken_samples(obman, prepared):
    _, _, truth = obman
    _, manifests = prepared
    train_ids = sorted(i for m in manifests["train"] for i in m["ids"])
    # the split file keeps 0, 5, 7, 9 (not 2); 9 is broken: skipped with its reason
    assert train_ids == ["00000000", "00000005", "00000007"]
    skipped = [s for m in manifests["train"] for s in m["skipped"]]
    assert [s["id"] for s in skipped] == ["00000009"]
    assert "unreadable meta pickle" in skipped[0]["reason"]
    assert sum(m["stats"]["num_skipped"] for m in manifests["train"]) == 1
    # each split is numbered on its own: test has its own 00000000
    assert sorted(i for m in manifests["test"] for i in m["ids"]) == ["00000000", "00000001"]
    # shards are disjoint and cover the selection
    assert set(manifests["train"][0]["ids"]).isdisjoint(manifests["train"][1]["ids"])


@pytest.mark.parametrize("split", ["train", "test"])
def test_geometry_in_opencv_frame(obman, prepared, split):
    _, mano, truth = obman
    out, manifests = prepared
    layout = SplitLayout(out / split)
    asset = load_mano(mano)
    for sid in (i for m in manifests[split] for i in m["ids"]):
        gt = truth[split][sid]
        meta = json.loads(layout.meta(sid).read_text())
        # intrinsics of the 256x256 images; joints = the OpenCV-frame joints, in front (z > 0)
        np.testing.assert_allclose(meta["cam_intr"], OBMAN_K)
        joints = np.asarray(meta["hand_joints_3d"])
        np.testing.assert_allclose(joints, gt["joints"], atol=1e-8)
        assert (joints[:, 2] > 0).all()
        # hand mesh: verts_3d in the OpenCV frame, closed wrist, parts from skinning weights
        hand = load_mesh(layout.mesh("hand", sid))
        np.testing.assert_allclose(hand.vertices, gt["verts"], atol=1e-6)
        assert hand.is_watertight and hand.is_winding_consistent and hand.volume > 0
        assert len(hand.faces) == len(asset.faces) + len(asset.faces_closed) - len(asset.faces)
        np.testing.assert_array_equal(load_vertex_parts(hand),
                                      JOINT_PART[asset.weights.argmax(1)])
        # object: the ShapeNet model posed with scale * R and t (scale applied exactly once)
        obj = load_mesh(layout.mesh("obj", sid))
        _, _, model_v, model_f = truth["models"][gt["model"]]
        assert len(obj.vertices) == len(model_v) and len(obj.faces) == len(model_f)
        np.testing.assert_allclose(np.sort(obj.vertices, axis=0), np.sort(gt["obj_verts"], axis=0),
                                   atol=1e-6)
        np.testing.assert_allclose(obj.area, trimesh.Trimesh(gt["obj_verts"], model_f).area,
                                   rtol=1e-6)
        tf = np.asarray(meta["obj_transform"])
        np.testing.assert_allclose(tf[:3, :3], gt["R"], atol=1e-6)  # rotation, no scale
        np.testing.assert_allclose(tf[:3, 3], gt["t"], atol=1e-6)
        np.testing.assert_allclose(meta["obj_center_3d"], gt["t"], atol=1e-6)
        rest = gt["scale"] * model_v
        lo, hi = rest.min(0), rest.max(0)
        corners = np.asarray(meta["obj_rest_corners_3d"])
        np.testing.assert_allclose(corners.min(0), lo, atol=1e-6)
        np.testing.assert_allclose(corners.max(0), hi, atol=1e-6)
        np.testing.assert_allclose(np.asarray(meta["obj_corners_3d"]),
                                   corners @ gt["R"].T + gt["t"], atol=1e-6)
        assert meta["obj_family"] == gt["class_id"]
        assert meta["video_id"] == int(sid) and meta["frame_idx"] == 0
        assert meta["hand_side"] == "right" and meta["hand_shape"] == [0.0] * 10


def test_pose_reproduces_the_hand(obman, prepared):
    """hand_pose = [Procrustes rotation, PCA @ components with no mean]; the layer with
    hand_trans puts the wrist on coords_3d[0] and reproduces verts_3d."""
    _, mano, truth = obman
    out, manifests = prepared
    layer = HandLayer(load_mano(mano)).double()
    layout = SplitLayout(out / "train")
    for sid in manifests["train"][0]["ids"]:
        meta = json.loads(layout.meta(sid).read_text())
        gt = truth["train"][sid]
        np.testing.assert_allclose(meta["hand_pose"][3:], gt["pca"] @ load_mano(mano)
                                   .hands_components, atol=1e-6)
        with torch.no_grad():
            res = layer(torch.tensor([meta["hand_pose"]], dtype=torch.float64),
                        torch.tensor([meta["hand_shape"]], dtype=torch.float64),
                        torch.tensor([meta["hand_trans"]], dtype=torch.float64))
        np.testing.assert_allclose(res.vertices[0].numpy(), gt["verts"], atol=1e-5)
        np.testing.assert_allclose(res.joints[0].numpy(), gt["joints"], atol=1e-5)


def test_joints_project_onto_the_hand(obman, prepared):
    out, manifests = prepared
    layout = SplitLayout(out / "test")
    for sid in (i for m in manifests["test"] for i in m["ids"]):
        meta = json.loads(layout.meta(sid).read_text())
        K, joints = np.asarray(meta["cam_intr"]), np.asarray(meta["hand_joints_3d"])
        uv = joints @ K.T
        uv = np.round(uv[:, :2] / uv[:, 2:3]).astype(int)
        assert ((uv >= 0) & (uv < 256)).all()
        mask = cv2.imread(str(layout.mask(sid)), cv2.IMREAD_UNCHANGED)
        # the wrist and the fingertips land on hand (or occluding object) pixels
        assert (mask[uv[:, 1], uv[:, 0]] > 0).mean() > 0.9
        assert (mask[uv[:, 1], uv[:, 0]] == 1).mean() > 0.5
        rgb = cv2.imread(str(layout.rgb(sid)))
        assert rgb.shape == (256, 256, 3)
        x, y, w, h = meta["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 256 and y + h <= 256 and w > 20 and h > 20


def test_rerun_reuses_complete_samples_and_rewrites_changed_ones(obman, tmp_path):
    base, mano, truth = obman
    p = params(base, mano, truth, num_shards=1)
    manifest = tmp_path / "test" / "shards" / "shard_000.json"
    io = (prepare.Inputs("test", 0), prepare.Outputs(manifest, tmp_path / "test"))
    first = prepare.run(*io, p, progress=False)
    assert first["stats"]["num_reused"] == 0
    again = prepare.run(*io, p, progress=False)
    assert again["stats"]["num_reused"] == 2 and again["ids"] == first["ids"]
    # a half-written sample (meta missing) is written again
    (tmp_path / "test" / "meta" / "00000001.json").unlink()
    third = prepare.run(*io, p, progress=False)
    assert third["stats"]["num_reused"] == 1
    # another MANO file changes the fingerprint: everything is rewritten
    other = tmp_path / "mano2"
    other.mkdir()
    (other / "MANO_RIGHT.pkl").write_bytes((mano / "MANO_RIGHT.pkl").read_bytes())
    p2 = dict(p, hand={"mano_root": str(other)})
    assert prepare.run(*io, p2, progress=False)["stats"]["num_reused"] == 0


def test_no_split_file_means_every_sample(obman, tmp_path):
    base, mano, truth = obman
    p = params(base, mano, truth, num_shards=1, split_files=False)
    man = prepare.run(prepare.Inputs("train", 0),
                      prepare.Outputs(tmp_path / "shard_000.json", tmp_path / "train"), p,
                      progress=False)
    assert man["ids"] == ["00000000", "00000002", "00000005", "00000007"]


def test_bad_input_stops_at_start_naming_the_key(obman, tmp_path):
    base, mano, truth = obman
    good = params(base, mano, truth, num_shards=1)
    out = prepare.Outputs(tmp_path / "m.json", tmp_path / "train")
    cases = [
        ({"root": None}, "datasets.obman.root"),
        ({"root": str(tmp_path / "nowhere")}, "datasets.obman.root"),
        ({"shapenet_root": str(tmp_path / "nowhere")}, "datasets.obman.shapenet_root"),
        ({"split_files": {"train": str(tmp_path / "x.json")}}, "datasets.obman.split_files"),
    ]
    for change, key in cases:
        p = dict(good, dataset=dict(good["dataset"], **change))
        for fn in (lambda p=p: prepare.check(p),
                   lambda p=p: prepare.run(prepare.Inputs("train", 0), out, p)):
            with pytest.raises(RawDataError, match=key) as err:
                fn()
            assert "Real datasets" in str(err.value) and "Expected layout" in str(err.value)
    for mano_root in (None, str(tmp_path)):
        p = dict(good, hand={"mano_root": mano_root})
        with pytest.raises(RawDataError, match="hand.mano_root"):
            prepare.check(p)
        with pytest.raises(RawDataError, match="hand.mano_root"):
            prepare.run(prepare.Inputs("train", 0), out, p)
    assert not out.manifest.exists()


def test_missing_shapenet_model_stops_the_shard(obman, tmp_path):
    base, mano, truth = obman
    shapenet = tmp_path / "ShapeNetCore.v2"
    rel = sorted(truth["models"])[0]
    write = shapenet / sorted(truth["models"])[1]
    write.parent.mkdir(parents=True)
    write.write_text((base / "ShapeNetCore.v2" / sorted(truth["models"])[1]).read_text())
    p = params(base, mano, truth, num_shards=1)
    p["dataset"]["shapenet_root"] = str(shapenet)
    with pytest.raises(RawDataError, match=rf"datasets.obman.shapenet_root.*{rel.split('/')[0]}"):
        prepare.run(prepare.Inputs("test", 0),
                    prepare.Outputs(tmp_path / "m.json", tmp_path / "test"), p)
    assert not (tmp_path / "test" / "meta").exists()


def test_broken_annotation_is_skipped(obman, tmp_path):
    """A meta pickle with a NaN and one with a wrong vertex count: skipped, run goes on."""
    base, mano, truth = obman
    root = tmp_path / "obman"
    for split in ("train", "test"):
        for sub in ("rgb", "segm", "meta"):
            (root / split / sub).mkdir(parents=True)
    src = base / "obman" / "test"
    for sid, spoil in (("00000000", "nan"), ("00000001", "verts"), ("00000003", "left")):
        with open(src / "meta" / f"{min(sid, '00000001')}.pkl", "rb") as fh:
            meta = pickle.load(fh)
        if spoil == "nan":
            meta["coords_3d"][3, 1] = np.nan
        elif spoil == "verts":
            meta["verts_3d"] = meta["verts_3d"][:-5]
        else:
            meta["side"] = "left"
        with open(root / "test" / "meta" / f"{sid}.pkl", "wb") as fh:
            pickle.dump(meta, fh, protocol=2)
        (root / "test" / "rgb" / f"{sid}.jpg").write_bytes((src / "rgb" / "00000000.jpg")
                                                            .read_bytes())
    p = params(base, mano, truth, num_shards=1, split_files=False)
    p["dataset"]["root"] = str(root)
    man = prepare.run(prepare.Inputs("test", 0),
                      prepare.Outputs(tmp_path / "m.json", tmp_path / "test"), p, progress=False)
    assert man["ids"] == []
    reasons = {s["id"]: s["reason"] for s in man["skipped"]}
    assert "NaN" in reasons["00000000"] and "verts_3d" in reasons["00000001"]
    # a left hand is not broken: the reference uses right hands only, it is counted as excluded
    assert man["excluded"] == {"left hand (right hands only)": 1} and len(reasons) == 2


def test_multi_material_model_loads_whole(obman):
    """The fixture models have several materials and a missing texture; all faces are kept."""
    base, _, truth = obman
    from gsdf.data.raw import load_object_mesh

    for rel, (_, _, v, f) in truth["models"].items():
        verts, faces = load_object_mesh(base / "ShapeNetCore.v2" / rel)
        assert len(faces) == len(f) and len(verts) == len(v)
        np.testing.assert_allclose(np.sort(verts[faces].reshape(-1, 3), axis=0),
                                   np.sort(v[f].reshape(-1, 3), axis=0), atol=1e-6)
        assert not trimesh.Trimesh(verts, faces).is_watertight


def test_unexpected_library_error_skips_the_sample(obman, tmp_path, monkeypatch):
    """An error a library raises on a malformed sample (not foreseen by the reader) skips that
    sample with the raw file and the error named; the others are written."""
    from gsdf.data.obman import ObManReader

    base, mano, truth = obman
    original = ObManReader.read

    def read(self, sid):
        if sid == "00000001":
            raise np.linalg.LinAlgError("SVD did not converge")
        return original(self, sid)

    monkeypatch.setattr(ObManReader, "read", read)
    man = prepare.run(prepare.Inputs("test", 0),
                      prepare.Outputs(tmp_path / "m.json", tmp_path / "test"),
                      params(base, mano, truth, num_shards=1), progress=False)
    assert man["ids"] == ["00000000"]
    assert man["skipped"] == [{"id": "00000001", "reason": "test/meta/00000001.pkl: "
                               "LinAlgError: SVD did not converge"}]
