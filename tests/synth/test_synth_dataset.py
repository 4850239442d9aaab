"""The synth stage end to end on a tiny dataset: layout, issue-3 checks, determinism, CLI."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import trimesh

from gsdf.cli import main as cli_main
from gsdf.config import ConfigError
from gsdf.geometry.mesh_io import load_mesh, load_vertex_parts
from gsdf.hand import HandLayer, procedural_hand
from gsdf.stages import synth as synth_stage
from gsdf.synth import make_contact_sheet, shard_sequences, split_sequences
from gsdf.synth.camera import Camera
from gsdf.synth.config import SynthConfig
from gsdf.synth.generate import SequenceGenerator
from gsdf.synth.objects import MeshSDF
from gsdf.synth.render import HAND, OBJECT, Lighting, RenderMesh, render

META_KEYS = {"cam_intr", "hand_joints_3d", "hand_pose", "hand_shape", "hand_side",
             "obj_transform", "obj_center_3d", "obj_corners_3d", "obj_rest_corners_3d",
             "video_id", "frame_idx", "bbox", "obj_family"}
SYNTH = {"seed": 7, "num_train_sequences": 6, "num_test_sequences": 2,
         "frames_per_sequence": [3, 3]}
PARAMS = {"synth": SYNTH, "hand": {"asset": "procedural", "seed": 0},
          "dataset": {"num_shards": 2, "name": "synth"}}


def run_shard(params: dict, split: str, shard: int, split_dir: Path, manifest: Path) -> dict:
    """The synth stage's run() on one shard."""
    return synth_stage.run(synth_stage.Inputs(split, shard),
                           synth_stage.Outputs(split_dir, manifest), params)


def _manifest(root: Path, split: str, shard: int) -> Path:
    return root / split / "shards" / f"shard_{shard:03d}.json"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    for split in ("train", "test"):
        for shard in (0, 1):
            run_shard(PARAMS, split, shard, root / split, _manifest(root, split, shard))
    return root


def _ids(root: Path, split: str = "train") -> list[str]:
    ids = []
    for shard in (0, 1):
        ids += json.loads(_manifest(root, split, shard).read_text())["ids"]
    return ids


def _meta(root: Path, sid: str, split: str = "train") -> dict:
    return json.loads((root / split / "meta" / f"{sid}.json").read_text())


def _all(root: Path) -> list[tuple[str, str]]:
    return [(s, i) for s in ("train", "test") for i in _ids(root, s)]


def test_layout_and_meta_keys(dataset):
    pairs = _all(dataset)
    assert len(pairs) == (6 + 2) * 3
    for split, sid in pairs:
        d = dataset / split
        for sub, ext in [("rgb", "jpg"), ("mask", "png"), ("depth", "png"),
                         ("mesh_hand", "ply"), ("mesh_obj", "ply"), ("meta", "json")]:
            assert (d / sub / f"{sid}.{ext}").is_file(), (sub, sid)
        meta = _meta(dataset, sid, split)
        assert META_KEYS <= set(meta), META_KEYS - set(meta)
        assert sid == f"{meta['video_id']:06d}_{meta['frame_idx']:03d}"
        assert np.allclose(meta["cam_intr"], Camera().K)
        assert np.asarray(meta["hand_joints_3d"]).shape == (21, 3)
        assert len(meta["hand_pose"]) == 48 and len(meta["hand_shape"]) == 10
        assert np.asarray(meta["obj_corners_3d"]).shape == (8, 3)
        assert meta["hand_side"] == "right"
        rgb = cv2.imread(str(d / "rgb" / f"{sid}.jpg"))
        assert rgb.shape == (256, 256, 3)
        mask = cv2.imread(str(d / "mask" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2}
        depth = cv2.imread(str(d / "depth" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.uint16
        assert ((depth > 0) == (mask > 0)).all()
        assert 150 <= depth[depth > 0].min() and depth.max() < 1500  # mm (centre 0.35-0.8 m)
    manifest = json.loads(_manifest(dataset, "train", 0).read_text())
    assert manifest["skipped"] == [] and manifest["config"]["synth"]["seed"] == 7


def test_hand_meshes_watertight_with_parts(dataset):
    for split, sid in _all(dataset)[::3]:
        path = dataset / split / "mesh_hand" / f"{sid}.ply"
        mesh = load_mesh(path)
        assert mesh.is_watertight, sid
        parts = load_vertex_parts(mesh, path)
        assert set(np.unique(parts)) == {0, 1, 2, 3, 4, 5}


def test_joints_in_image_and_coverage(dataset):
    cam = Camera()
    for split, sid in _all(dataset):
        meta = _meta(dataset, sid, split)
        uv = cam.project(np.asarray(meta["hand_joints_3d"]))
        assert (uv >= 0).all() and (uv < 256).all(), sid
        mask = cv2.imread(str(dataset / split / "mask" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        assert (mask == HAND).mean() >= 0.02, sid
        assert (mask == OBJECT).mean() >= 0.02, sid
        # bbox (x, y, w, h) holds every visible hand or object pixel
        x, y, w, h = meta["bbox"]
        ys, xs = np.nonzero(mask)
        assert xs.min() >= np.floor(x) - 1 and xs.max() <= x + w + 1
        assert ys.min() >= np.floor(y) - 1 and ys.max() <= y + h + 1


def test_contact_and_penetration(dataset):
    touching, deepest = [], 0.0
    for split, sid in _all(dataset):
        hand = load_mesh(dataset / split / "mesh_hand" / f"{sid}.ply")
        obj = load_mesh(dataset / split / "mesh_obj" / f"{sid}.ply")
        d = MeshSDF(obj.vertices, obj.faces)(hand.vertices)
        touching.append(np.abs(d).min() <= 0.002)
        deepest = max(deepest, -d.min())
    assert np.mean(touching) >= 0.95
    assert deepest <= 0.005


def test_object_occludes_hand_in_half_the_samples(dataset):
    cam = Camera()
    light = Lighting(np.ones(3), np.zeros((0, 3)), np.zeros((0, 3)))
    occluded = []
    for split, sid in _all(dataset):
        hand = load_mesh(dataset / split / "mesh_hand" / f"{sid}.ply")
        alone = render([RenderMesh(hand.vertices, hand.faces, np.ones(3), HAND)], cam, light,
                       np.zeros((256, 256, 3)), supersample=1).mask
        mask = cv2.imread(str(dataset / split / "mask" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
        hidden = ((alone == HAND) & (mask == OBJECT)).sum()
        occluded.append(hidden >= 20)
    assert np.mean(occluded) >= 0.5, occluded


def test_annotations_consistent(dataset):
    layer = HandLayer(procedural_hand(0)).double()
    for split, sid in _all(dataset)[::2]:
        meta = _meta(dataset, sid, split)
        tf = np.asarray(meta["obj_transform"])
        assert np.allclose(tf[3], [0, 0, 0, 1])
        assert np.allclose(tf[:3, :3] @ tf[:3, :3].T, np.eye(3), atol=1e-7)
        rest = np.asarray(meta["obj_rest_corners_3d"])
        assert np.allclose(rest @ tf[:3, :3].T + tf[:3, 3], meta["obj_corners_3d"], atol=1e-7)
        assert np.allclose(tf[:3, :3] @ rest.mean(0) + tf[:3, 3], meta["obj_center_3d"],
                           atol=1e-7)
        # the rest corners are the bounding box of the object mesh mapped back to rest
        obj = load_mesh(dataset / split / "mesh_obj" / f"{sid}.ply")
        back = (np.asarray(obj.vertices) - tf[:3, 3]) @ tf[:3, :3]
        assert np.allclose(back.min(0), rest.min(0), atol=1e-6)
        assert np.allclose(back.max(0), rest.max(0), atol=1e-6)
        # the hand layer reproduces the joints and the mesh from the stored pose and shape
        out = layer(torch.tensor([meta["hand_pose"]], dtype=torch.float64),
                    torch.tensor([meta["hand_shape"]], dtype=torch.float64),
                    torch.tensor([meta["hand_trans"]], dtype=torch.float64))
        assert np.abs(out.joints[0].numpy() - meta["hand_joints_3d"]).max() < 1e-6
        hand = load_mesh(dataset / split / "mesh_hand" / f"{sid}.ply")
        assert np.abs(out.vertices[0].numpy() - hand.vertices).max() < 1e-6


def test_depth_matches_meshes(dataset):
    split, sid = _all(dataset)[4]
    meta_mask = cv2.imread(str(dataset / split / "mask" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
    depth = cv2.imread(str(dataset / split / "depth" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
    hand = load_mesh(dataset / split / "mesh_hand" / f"{sid}.ply")
    obj = load_mesh(dataset / split / "mesh_obj" / f"{sid}.ply")
    scene = trimesh.util.concatenate([hand, obj])
    ys, xs = np.nonzero(meta_mask)
    pick = np.random.default_rng(0).choice(len(xs), 50, replace=False)
    dirs = np.stack([(xs[pick] + 0.5 - 128) / 480, (ys[pick] + 0.5 - 128) / 480,
                     np.ones(50)], axis=1)
    locs, rays, _ = scene.ray.intersects_location(np.zeros_like(dirs), dirs,
                                                  multiple_hits=False)
    z = np.full(50, np.nan)
    z[rays] = locs[:, 2]
    ok = np.isfinite(z)
    assert ok.mean() > 0.9
    err = np.abs(depth[ys[pick], xs[pick]][ok] / 1000.0 - z[ok])
    assert np.median(err) < 0.002  # mm rounding, sub-pixel averaging at edges


def test_shards_partition_splits(dataset):
    cfg = SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in SYNTH.items()})
    train, test = split_sequences(cfg, "train"), split_sequences(cfg, "test")
    assert not set(train) & set(test)
    assert sorted(shard_sequences(cfg, "train", 0, 2) + shard_sequences(cfg, "train", 1, 2)) \
        == train
    vids = {_meta(dataset, i)["video_id"] for i in _ids(dataset)}
    assert vids == set(train)
    assert {_meta(dataset, i, "test")["video_id"] for i in _ids(dataset, "test")} == set(test)
    with pytest.raises(ValueError, match="shard 2"):
        shard_sequences(cfg, "train", 2, 2)


def test_sequences_in_dataset(dataset):
    by_video: dict[int, list[dict]] = {}
    for sid in sorted(_ids(dataset)):
        meta = _meta(dataset, sid)
        by_video.setdefault(meta["video_id"], []).append(meta)
    for frames in by_video.values():
        assert [m["frame_idx"] for m in frames] == list(range(len(frames)))
        assert len({m["obj_family"] for m in frames}) == 1
        assert all(np.allclose(m["hand_shape"], frames[0]["hand_shape"]) for m in frames)


def test_sequence_is_smooth_and_long_enough():
    cfg = SynthConfig(seed=3, frames_per_sequence=(8, 9), num_train_sequences=1)
    samples = SequenceGenerator(cfg, procedural_hand(0)).sequence(0)
    assert 8 <= len(samples) <= 9
    joints = np.stack([s.meta["hand_joints_3d"] for s in samples])  # (T, 21, 3)
    step = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)  # (T-1,)
    assert step.max() < 0.04, step
    rot = np.stack([s.meta["obj_transform"][:3, :3] for s in samples])
    cos = (np.einsum("tij,tij->t", rot[:-1], rot[1:]) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 15
    fingers = np.stack([s.meta["hand_pose"][3:] for s in samples])
    assert np.abs(np.diff(fingers, axis=0)).max() < 0.2  # radians per frame and joint
    assert np.abs(fingers[-1] - fingers[0]).max() > 1e-3  # flexion does vary


def test_same_seed_same_bytes(dataset, tmp_path):
    again = tmp_path / "again"
    run_shard(PARAMS, "train", 1, again / "train", _manifest(again, "train", 1))
    ids = json.loads(_manifest(again, "train", 1).read_text())["ids"]
    assert ids == json.loads(_manifest(dataset, "train", 1).read_text())["ids"]
    for sub in ("rgb", "mask", "depth", "mesh_hand", "mesh_obj", "meta"):
        names = sorted(p.name for p in (again / "train" / sub).iterdir())
        assert len(names) == len(ids)
        match, mismatch, errors = filecmp.cmpfiles(again / "train" / sub, dataset / "train" / sub,
                                                   names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch)
    assert filecmp.cmp(_manifest(again, "train", 1), _manifest(dataset, "train", 1),
                       shallow=False)


def test_user_meshes_and_bad_input(tmp_path):
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.annulus(r_min=30, r_max=45, height=100).export(meshes / "cup.obj")
    (meshes / "broken.ply").write_bytes(b"not a ply")
    params = {"synth": dict(SYNTH, num_train_sequences=1, frames_per_sequence=[1, 1],
                            user_mesh_dir=str(meshes), max_attempts=2),
              "hand": PARAMS["hand"], "dataset": {"num_shards": 1}}
    record = run_shard(params, "train", 0, tmp_path / "train", _manifest(tmp_path, "train", 0))
    assert len(record["ids"]) == 1
    assert [Path(m["path"]).name for m in record["skipped_meshes"]] == ["broken.ply"]
    assert _meta(tmp_path, record["ids"][0])["obj_family"] == "user:cup.obj"
    bad = dict(params, synth=dict(SYNTH, families=["box", "teapot"]))
    with pytest.raises(ConfigError, match="teapot"):
        run_shard(bad, "train", 0, tmp_path / "x", tmp_path / "x.json")
    with pytest.raises(ConfigError, match="obj_min_thickness"):
        run_shard(dict(params, synth={"obj_min_thickness": 0}), "train", 0, tmp_path / "x",
                  tmp_path / "x.json")
    with pytest.raises(ValueError, match="split"):
        run_shard(PARAMS, "val", 0, tmp_path / "x", tmp_path / "x.json")


def test_background_folder(tmp_path):
    bgs = tmp_path / "bgs"
    bgs.mkdir()
    img = np.zeros((120, 200, 3), np.uint8)
    img[..., 1] = 255  # pure green in RGB
    cv2.imwrite(str(bgs / "green.png"), img)
    (bgs / "bad.jpg").write_bytes(b"not a jpeg")
    params = {"synth": dict(SYNTH, num_train_sequences=1, frames_per_sequence=[1, 1],
                            background_dir=str(bgs)), "hand": PARAMS["hand"],
              "dataset": {"num_shards": 1}}
    record = run_shard(params, "train", 0, tmp_path / "train", _manifest(tmp_path, "train", 0))
    assert [Path(m["path"]).name for m in record["skipped_backgrounds"]] == ["bad.jpg"]
    sid = record["ids"][0]
    rgb = cv2.imread(str(tmp_path / "train" / "rgb" / f"{sid}.jpg"))[..., ::-1]
    mask = cv2.imread(str(tmp_path / "train" / "mask" / f"{sid}.png"), cv2.IMREAD_UNCHANGED)
    far = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
    err = np.abs(rgb[far].astype(int) - [0, 255, 0]).max(axis=1)
    assert np.median(err) <= 2 and np.percentile(err, 99) <= 20  # JPEG ringing near edges


def test_contact_sheet_and_cli(dataset, tmp_path):
    png = tmp_path / "sheet.png"
    shown = make_contact_sheet(dataset / "train", png, num=16)
    assert len(shown) == 16 and len(set(shown)) == 16
    img = cv2.imread(str(png))
    assert img.shape == (4 * 192, 4 * 3 * 192, 3)
    out = tmp_path / "cli" / "contact_sheet.png"
    assert cli_main(["synth", "--contact-sheet", str(out), "--split-dir", str(dataset / "train"),
                     "--num", "4"]) == 0
    assert cv2.imread(str(out)).shape == (192, 4 * 3 * 192, 3)
    man = tmp_path / "cli" / "test" / "shards" / "shard_000.json"
    params = json.dumps({"synth": dict(SYNTH, num_train_sequences=0, num_test_sequences=1,
                                       frames_per_sequence=[1, 1]), "hand": PARAMS["hand"],
                         "dataset": {"num_shards": 1}})
    assert cli_main(["synth", "--params", params, "--split", "test", "--shard", "0",
                     "--split-dir", str(tmp_path / "cli" / "test"), "--manifest", str(man),
                     "--no-progress"]) == 0
    assert json.loads(man.read_text())["ids"] == ["000000_000"]
    assert (tmp_path / "cli" / "test" / "rgb" / "000000_000.jpg").is_file()
    with pytest.raises(SystemExit):
        cli_main(["synth", "--split", "test"])


@pytest.mark.parametrize("spread", [0.0, 30.0])
def test_view_spread_keeps_the_hand_near_the_canonical_view(spread):
    # Canonical view: fingers up in the image (wrist -> middle MCP along -y), palm normal
    # towards the camera (-z). With occlusion_prob 1 the palm side always faces the camera, and
    # without motion the first frame keeps the sequence's drawn viewpoint.
    cfg = SynthConfig(seed=5, frames_per_sequence=(1, 1), view_spread_deg=spread,
                      occlusion_prob=1.0, motion_rotation_deg=0.0, supersample=1)
    gen = SequenceGenerator(cfg, procedural_hand(0))
    angles = []
    for video in range(4):
        joints = gen.sequence(video)[0].meta["hand_joints_3d"]
        up = joints[9] - joints[0]  # wrist -> middle MCP (21-joint order)
        up /= np.linalg.norm(up)
        angles.append(np.degrees(np.arccos(np.clip(-up[1], -1, 1))))
    assert max(angles) <= spread + 1e-3, angles
    if spread > 0:
        assert max(angles) > 1.0  # the viewpoint does vary


def test_view_spread_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="view_spread_deg"):
        SynthConfig(view_spread_deg=200.0)
