"""A fixture MANO pickle in the official format (chumpy objects, old scipy.sparse matrix,
Python-2 protocol), written without chumpy: a procedural hand with its wrist cap removed (open
at the wrist like MANO) and random pose-corrective / PCA bases. Used by the MANO loader tests and
by the raw-dataset fixtures of ``prepare``."""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from pathlib import Path

import numpy as np

from gsdf.hand import procedural_hand


def _stand_in_modules() -> dict[str, types.ModuleType]:
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


@contextlib.contextmanager
def _modules(mods: dict[str, types.ModuleType]):
    saved = {name: sys.modules.get(name) for name in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def fake_source(seed: int = 0) -> dict[str, np.ndarray]:
    """A procedural hand with its wrist cap removed (like MANO) and random extra bases."""
    asset = procedural_hand(0)
    v, f = asset.v_template, asset.faces
    keep = v[f].max(axis=1)[:, 1] > -0.008  # drop the faces of the wrist cap
    rng = np.random.default_rng(seed)
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


def write_fake_mano(path: str | Path, src: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """Write ``src`` (default :func:`fake_source`) as an official-format MANO pickle."""
    src = fake_source() if src is None else src
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mods = _stand_in_modules()
    with _modules(mods):
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
    return path
