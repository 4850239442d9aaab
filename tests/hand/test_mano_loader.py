"""MANO loader: a fake MANO pickle with chumpy-style objects, read with chumpy absent."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import trimesh

from gsdf.hand import HandLayer, load_mano, procedural_hand
from gsdf.hand.asset import JOINT_PART
from gsdf.hand.mano import close_holes


def _stand_in_modules():
    """Modules imitating chumpy and old scipy.sparse, for writing only."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")
    csc = types.ModuleType("scipy.sparse.csc")

    class Ch:
        pass

    class Select:
        pass

    class csc_matrix:  # noqa: N801 - the historical class name
        pass

    for cls, mod in ((Ch, ch), (Select, reordering), (csc_matrix, csc)):
        cls.__module__ = mod.__name__
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    chumpy.ch, chumpy.reordering = ch, reordering
    return {"chumpy": chumpy, "chumpy.ch": ch, "chumpy.reordering": reordering,
            "scipy.sparse.csc": csc}


def _fake_source():
    """A procedural hand with its wrist cap removed (like MANO) and random extra bases."""
    asset = procedural_hand(0)
    v, f = asset.v_template, asset.faces
    keep = v[f].max(axis=1)[:, 1] > -0.008  # drop the faces of the wrist cap
    rng = np.random.default_rng(0)
    return {
        "v_template": v,
        "f": f[keep].astype(np.uint32),
        "shapedirs20": np.concatenate([asset.shapedirs, rng.normal(0, 1e-3, asset.shapedirs.shape)],
                                      axis=2),
        "posedirs": rng.normal(0, 1e-4, (len(v), 3, 135)),
        "J_regressor": asset.J_regressor,
        "weights": asset.weights,
        "hands_components": np.linalg.qr(rng.normal(size=(45, 45)))[0],
        "hands_mean": rng.normal(0, 0.1, 45),
    }


def _write_fake_mano(path, src, monkeypatch, drop=()):
    mods = _stand_in_modules()
    with monkeypatch.context() as m:
        for name, mod in mods.items():
            m.setitem(sys.modules, name, mod)
        ch = mods["chumpy.ch"].Ch()
        ch.__dict__.update({"x": src["shapedirs20"], "_dirty_vars": set(), "_itr": None,
                            "_depends_on_deps": {}})
        select = mods["chumpy.reordering"].Select()
        nv = len(src["v_template"])
        idxs = np.arange(nv * 3 * 20).reshape(nv, 3, 20)[:, :, :10].ravel()
        select.__dict__.update({"a": ch, "idxs": idxs, "preferred_shape": (nv, 3, 10),
                                "_dirty_vars": {"a", "idxs", "preferred_shape"}})
        posedirs = mods["chumpy.ch"].Ch()
        posedirs.__dict__.update({"x": src["posedirs"]})
        jreg = src["J_regressor"]
        sparse = mods["scipy.sparse.csc"].csc_matrix()
        cols = [np.nonzero(jreg[:, c])[0] for c in range(nv)]
        sparse.__dict__.update({
            "data": np.concatenate([jreg[r, c] for c, r in enumerate(cols)]),
            "indices": np.concatenate(cols).astype(np.int32),
            "indptr": np.concatenate([[0], np.cumsum([len(r) for r in cols])]).astype(np.int32),
            "_shape": jreg.shape, "maxprint": 50,
        })
        kintree = np.stack([np.array([2**32 - 1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]),
                            np.arange(16)]).astype(np.uint32)
        data = {
            "hands_components": src["hands_components"], "f": src["f"], "J_regressor": sparse,
            "kintree_table": kintree, "J": jreg @ src["v_template"], "bs_style": "lbs",
            "weights": src["weights"], "posedirs": posedirs, "hands_mean": src["hands_mean"],
            "v_template": src["v_template"], "shapedirs": select, "bs_type": "lrotmin",
        }
        for key in drop:
            del data[key]
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=2)
    assert "chumpy" not in sys.modules


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
