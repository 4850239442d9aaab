"""`gsdf predict` on synthetic photos with a micro-trained gSDF (pose network, then gSDF, on
the data stage's toy split): every output is written, the overlay's hand lies in the photo,
and bad input gives one clear message naming the argument."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsdf.cli import main
from gsdf.eval.predict import (
    BBOX_ENLARGE,
    DIAGONAL_35MM,
    PredictInputError,
    crop_and_resize,
    crop_intrinsics,
    load_photo,
    square_crop,
)
from gsdf.geometry.mesh_io import load_mesh
from gsdf.hand.root import project

DATA_FIXTURES = Path(__file__).parents[1] / "data" / "sdf_fixtures.py"
SIZE = 64
DECODER = {"dims": [64, 64, 64, 64], "dropout_layers": [0, 1, 2, 3], "norm_layers": [0, 1, 2, 3],
           "latent_in": [2]}
POSE_ARGS = {"image_size": SIZE, "neck_channels": 32, "heatmap_depth": 16, "joints_loss": "l1"}
GSDF_ARGS = {"image_size": SIZE, "sdf_latent": 16, "decoder": DECODER, "pixel_channels": 32,
             "neck_channels": 32, "heatmap_depth": 16, "hand_point_latent": 6,
             "obj_point_latent": 6, "sdf_add_epoch": 0, "pose": POSE_ARGS}
TRAIN = {"epochs": 8, "batch_size": 2, "lr": 1e-3, "lr_decay_epochs": [100], "num_points": 256,
         "seed": 1,
         "augment": False}
FOCAL = 480.0  # the toy split's camera (256 px, principal point at the centre)


def _fixtures():
    spec = importlib.util.spec_from_file_location("predict_sdf_fixtures", DATA_FIXTURES)
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    return fx


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(results root, the gsdf experiment folder, the gf experiment folder, the toy split)."""
    if not DATA_FIXTURES.exists():
        pytest.skip("tests/data/sdf_fixtures.py not available")
    fx = _fixtures()
    from gsdf.paths import Layout
    from gsdf.train import TrainOutputs, run_train

    root = tmp_path_factory.mktemp("results")
    layout = Layout(root)
    split_dir = layout.split_dir(dataset="synth", split="train")
    packed = fx.sample_and_pack(root, split="train")
    dataset = {"name": "synth", "recon_scale": 7.0}
    torch.set_num_threads(1)
    runs = {}
    # the pose network must learn the toy joints well enough to place the hand (~8 px of 256)
    epochs = {"pose": {"epochs": 60, "lr": 2e-3}, "gsdf": {}, "gf": {"epochs": 2}}
    for name, model, args, context in (
            ("pose", "pose", POSE_ARGS, {}),
            ("gsdf", "gsdf", GSDF_ARGS,
             {"pose_checkpoint": layout.pose_checkpoint(dataset="synth", pose_exp="pose")}),
            ("gf", "gf", {"image_size": SIZE, "sdf_latent": 16, "decoder": DECODER}, {})):
        out_dir = (layout.pose_dir(dataset="synth", pose_exp="pose") if name == "pose"
                   else layout.exp_dir(exp=name, dataset="synth"))
        exp = {"name": name, "model": model, "model_args": args,
               "train": {**TRAIN, **epochs[name]}}
        run_train({"experiment": exp, "dataset": dataset}, packed, TrainOutputs.in_dir(out_dir),
                  device="cpu", progress=False, **context)
        runs[name] = out_dir
    return root, runs["gsdf"], runs["gf"], split_dir


def test_predict_writes_every_output_and_the_hand_lies_in_the_photo(trained, tmp_path, capsys):
    _, gsdf_dir, _, split_dir = trained
    photo = split_dir / "rgb" / "000000_001.jpg"
    meta = json.loads((split_dir / "meta" / "000000_001.json").read_text())
    out = tmp_path / "out"
    params = json.dumps({"reconstruct": {"resolution": 32}})
    code = main(["predict", str(photo), "--checkpoint", str(gsdf_dir), "--focal", str(FOCAL),
                 "--out", str(out), "--params", params])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "000000_001.json").read_text())
    for suffix in ("_hand.ply", "_obj.ply", "_overlay.png"):
        assert (out / f"000000_001{suffix}").is_file(), (suffix, record["no_surface"])
    np.testing.assert_allclose(record["cam_intr"], meta["cam_intr"])  # --focal, centred
    assert record["focal_source"] == "--focal"
    assert len(record["joints"]) == 21 and len(record["obj_center"]) == 3
    # the network's own wrist joint sits at the solved root (up to its predicted depth offset
    # of the wrist from itself, a fraction of a millimetre)
    joints = np.asarray(record["joints"])
    np.testing.assert_allclose(joints[0], record["root"], atol=1e-3)
    assert record["root_reprojection_px"] < 0.5 and record["root"][2] > 0
    # the overlay: photo | side view, the hand's pixels inside the photo
    overlay = Image.open(out / "000000_001_overlay.png")
    assert overlay.size == (256 + 256, 256)
    assert record["overlay"]["hand_pixels"] > 0
    hand = load_mesh(out / "000000_001_hand.ply")
    uv = project(hand.vertices, np.asarray(record["cam_intr"]))
    inside = ((uv >= 0) & (uv <= 256)).all(axis=1) & (hand.vertices[:, 2] > 0)
    assert inside.mean() > 0.5
    manifest = json.loads((out / "predict_manifest.json").read_text())
    assert len(manifest["done"]) == 1 and manifest["skipped"] == []


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_bad_input_is_named(trained, tmp_path, capsys):
    _, gsdf_dir, gf_dir, split_dir = trained
    photo = str(split_dir / "rgb" / "000000_000.jpg")
    out = ["--out", str(tmp_path / "out")]
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    err = _err(capsys, ["predict", str(text), "--checkpoint", str(gsdf_dir), *out])
    assert f"IMAGE {text}: not an image" in err
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    err = _err(capsys, ["predict", str(small), "--checkpoint", str(gsdf_dir), *out])
    assert f"IMAGE {small}" in err and "smaller than the model's input of 64 px" in err
    err = _err(capsys, ["predict", photo, "--checkpoint", str(gsdf_dir), "--bbox", "10", "10",
                        "20", "20", *out])
    assert "--bbox 10 10 20 20" in err and "smaller than the model's input" in err
    err = _err(capsys, ["predict", photo, "--checkpoint", str(gsdf_dir), "--bbox", "200", "10",
                        "100", "50", *out])
    assert "--bbox 200 10 100 50 is not inside the 256x256 photo" in err
    err = _err(capsys, ["predict", photo, "--checkpoint", str(gf_dir), *out])
    assert f"--checkpoint {gf_dir}: a 'gf' model has no pose network" in err
    err = _err(capsys, ["predict", photo, "--checkpoint", str(tmp_path / "nowhere"), *out])
    assert "--checkpoint" in err and "not found" in err
    assert not (tmp_path / "out" / "000000_000.json").exists()


def test_one_bad_photo_is_skipped_and_the_others_go_on(trained, tmp_path, capsys):
    _, gsdf_dir, _, split_dir = trained
    text = tmp_path / "notes.png"
    text.write_bytes(b"\x89PNG garbage")
    photo = split_dir / "rgb" / "000000_000.jpg"
    out = tmp_path / "out"
    assert main(["predict", str(text), str(photo), "--checkpoint", str(gsdf_dir), "--focal",
                 "480", "--out", str(out), "--params", '{"reconstruct": {"resolution": 16}}']) == 0
    assert "skipped IMAGE" in capsys.readouterr().err
    manifest = json.loads((out / "predict_manifest.json").read_text())
    assert [s["image"] for s in manifest["skipped"]] == [str(text)]
    assert (out / "000000_000.json").is_file()


# --- the geometry of the crop and the camera, without a model ----------------------------------


def test_crop_intrinsics_move_points_with_the_pixels():
    """A point's pixel in the resized crop is its photo pixel mapped by the crop, and the
    crop's pixel (u', v') shows the photo at (x0 + u' side/size, ...)."""
    k = np.array([[900.0, 0, 640], [0, 900.0, 360], [0, 0, 1]])
    x0, y0, side, size = 500, 100, 300, 64
    kc = crop_intrinsics(k, x0, y0, side, size)
    p = np.array([[0.05, -0.02, 0.6], [-0.01, 0.03, 0.4]])
    np.testing.assert_allclose(project(p, kc), (project(p, k) - [x0, y0]) * size / side)
    photo = np.zeros((720, 1280, 3), np.uint8)
    photo[250:260, 640:650] = 255  # a 10x10 square at photo pixels u 640..650, v 250..260
    crop = crop_and_resize(photo, x0, y0, side, 300)  # no resampling: side == size
    assert crop[150:160, 140:150].min() == 255 and crop.sum() == 255 * 3 * 100


def test_square_crop_enlarges_the_box_and_pads_the_whole_photo():
    x0, y0, side = square_crop((100, 50, 80, 40), 640, 480)
    assert side == round(BBOX_ENLARGE * 80)
    assert (x0 + side / 2, y0 + side / 2) == pytest.approx((140, 70), abs=0.5)
    assert square_crop(None, 640, 480) == (0, -80, 640)
    crop = crop_and_resize(np.full((480, 640, 3), 9, np.uint8), 0, -80, 640, 64)
    assert crop[0].max() == 0 and crop[32].min() == 9  # padding above, photo in the middle


def test_focal_from_exif_and_the_default(tmp_path):
    img = Image.new("RGB", (400, 300))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    img.save(tmp_path / "exif.jpg", exif=exif)
    photo = load_photo(tmp_path / "exif.jpg")
    assert photo.focal_source == "exif FocalLengthIn35mmFilm"
    assert photo.focal == pytest.approx(28 * 500 / DIAGONAL_35MM)
    img.save(tmp_path / "plain.png")
    photo = load_photo(tmp_path / "plain.png")
    assert photo.focal_source == "default" and photo.focal == pytest.approx(26 * 500 / 43.2666,
                                                                               rel=1e-4)
    np.testing.assert_allclose(photo.cam_intr[:2, 2], [200, 150])
    assert load_photo(tmp_path / "plain.png", focal=321.0).focal == 321.0
    with pytest.raises(PredictInputError, match="--focal must be a positive"):
        load_photo(tmp_path / "plain.png", focal=-1.0)


def test_reconstruct_with_predicted_frame_refuses_a_model_without_pose(trained, tmp_path,
                                                                        capsys):
    root, _, gf_dir, split_dir = trained
    params = json.dumps({"reconstruct": {"hand_frame": "predicted", "resolution": 16}})
    code = main(["reconstruct", "--checkpoint", str(gf_dir / "checkpoint.pt"), "--packed-dir",
                 str(root / "synth" / "train"), "--shard-manifest",
                 str(split_dir / "shards" / "shard_000.json"), "--meshes-dir",
                 str(tmp_path / "meshes"), "--poses-dir", str(tmp_path / "poses"),
                 "--out", str(tmp_path / "m.json"),
                 "--params", params])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "reconstruct.hand_frame: predicted needs a model with a pose network" in err
