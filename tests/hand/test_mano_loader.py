"""MANO loader: a fake MANO pickle with chumpy-style objects, read with chumpy absent."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import trimesh

from gsdf.hand import HandLayer, load_mano, procedural_hand
from gsdf.hand.asset import JOINT_PART
from gsdf.hand.mano import close_holes
from gsdf.testing.mano_fixture import fake_source, write_fake_mano


def _fake_source():
    return fake_source()


def _write_fake_mano(path, src, monkeypatch, drop=()):
    write_fake_mano(path, src, drop=drop)


@pytest.fixture(scope="module")
def source():
    return _fake_source()


def test_loads_without_chumpy(tmp_path, monkeypatch, source):
    assert importlib.util.find_spec("chumpy") is None  # chumpy is really absent
    (tmp_path / "models").mkdir()
    _write_fake_mano(tmp_path / "models" / "MANO_RIGHT.pkl", source, monkeypatch)
    asset = load_mano(tmp_path)  # finds models/MANO_RIGHT.pkl
    np.testing.assert_array_equal(asset.v_template, source["v_template"])
    np.testing.assert_array_equal(asset.shapedirs, source["shapedirs20"][:, :, :10])
    np.testing.assert_array_equal(asset.posedirs, source["posedirs"])
    np.testing.assert_allclose(asset.J_regressor, source["J_regressor"])
    np.testing.assert_array_equal(asset.faces, source["f"].astype(np.int64))
    np.testing.assert_array_equal(asset.parents[:4], [-1, 0, 1, 2])
    np.testing.assert_array_equal(asset.vertex_parts, JOINT_PART[source["weights"].argmax(1)])
    assert asset.side == "right"
    # the open mesh is closed by faces_closed
    open_mesh = trimesh.Trimesh(asset.v_template, asset.faces, process=False)
    closed = trimesh.Trimesh(asset.v_template, asset.faces_closed, process=False)
    assert not open_mesh.is_watertight
    assert closed.is_watertight and closed.is_winding_consistent and closed.volume > 0
    # fingertips: vertices at the end of each finger
    proc = procedural_hand(0)
    tips_found = asset.v_template[asset.tip_vertex_ids]
    assert np.linalg.norm(tips_found - proc.v_template[proc.tip_vertex_ids], axis=1).max() < 0.004
    # and it poses
    out = HandLayer(asset, use_pca=True, ncomps=12, flat_hand_mean=False)(torch.zeros(2, 15))
    assert torch.isfinite(out.vertices).all()


def test_missing_file_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl.*README"):
        load_mano(tmp_path)
    with pytest.raises(FileNotFoundError, match="README"):
        load_mano(tmp_path / "nothing.pkl")


def test_missing_key_is_named(tmp_path, monkeypatch, source):
    _write_fake_mano(tmp_path / "MANO_RIGHT.pkl", source, monkeypatch, drop=("weights",))
    with pytest.raises(ValueError, match="weights"):
        load_mano(tmp_path / "MANO_RIGHT.pkl")


def test_garbage_file(tmp_path):
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable MANO pickle"):
        load_mano(tmp_path, side="left")
    with pytest.raises(ValueError, match="left hand"):
        load_mano(tmp_path / "MANO_LEFT.pkl", side="right")


def test_close_holes_on_open_box():
    box = trimesh.creation.box()
    faces = box.faces[2:]  # remove one side's two triangles
    closed = close_holes(faces)
    mesh = trimesh.Trimesh(box.vertices, closed, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(1.0)
