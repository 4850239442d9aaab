"""Load the official MANO pickles (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) without chumpy.

The pickles were written by Python 2 and hold some arrays as chumpy objects (``chumpy.ch.Ch``,
``chumpy.reordering.Select``) and the joint regressor as an old ``scipy.sparse.csc`` matrix. We
unpickle them with ``encoding="latin1"`` and a custom :class:`pickle.Unpickler` that substitutes
plain placeholder classes for chumpy and scipy.sparse, then rebuild numpy arrays from the
placeholders' saved state. Nothing from chumpy is imported or executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from gsdf.hand.asset import JOINT_PART, MANO_FINGER_ORDER, TIP_FINGER_ORDER, HandAsset
from gsdf.hand.kinematics import anatomical_axes, default_joint_limits

README_HINT = (
    "Download MANO (https://mano.is.tue.mpg.de, free registration) and put MANO_RIGHT.pkl and "
    "MANO_LEFT.pkl (from mano_v*/models/) in one folder, then set `mano_root` in "
    "config/config.yaml to that folder; see README.md, section 'Real datasets'."
)

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f", "hands_components", "hands_mean")

# manopth's fingertip vertices of the 778-vertex MANO meshes (thumb, index, middle, ring, pinky)
MANO_TIP_IDS = {"right": [745, 317, 444, 556, 673], "left": [745, 317, 445, 556, 673]}


class _Placeholder:
    """Stands in for a chumpy or scipy.sparse class; keeps the pickled state."""

    _module = ""
    _name = ""
    _state: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._state: Any = None

    def __setstate__(self, state: Any) -> None:
        self._state = state


class ManoUnpickler(pickle.Unpickler):
    """Unpickler mapping ``chumpy.*`` and ``scipy.sparse.*`` classes to :class:`_Placeholder`
    subclasses and old numpy module paths to the current ones."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy" or module.startswith("scipy.sparse"):
            return type(name, (_Placeholder,), {"_module": module, "_name": name})
        if module.startswith("numpy.core"):
            try:
                return super().find_class("numpy._core" + module[len("numpy.core"):], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _to_numpy(obj: Any, key: str) -> Any:
    """Convert placeholders (chumpy arrays, sparse matrices) to numpy arrays, recursively."""
    if not isinstance(obj, _Placeholder):
        return obj
    state = obj._state if isinstance(obj._state, dict) else {}
    if obj._module.startswith("scipy.sparse"):
        import scipy.sparse

        shape = state.get("_shape", state.get("shape"))
        if shape is None or not {"data", "indices", "indptr"} <= set(state):
            raise ValueError(f"MANO key {key!r}: unreadable sparse matrix ({obj._name})")
        cls = scipy.sparse.csr_matrix if "csr" in obj._name else scipy.sparse.csc_matrix
        return cls((state["data"], state["indices"], state["indptr"]), shape=tuple(shape))
    if obj._name == "Select" and "a" in state and "idxs" in state:
        source = np.asarray(_to_numpy(state["a"], key))
        out = source.ravel()[np.asarray(state["idxs"])]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if "x" in state:
        return np.asarray(state["x"])
    raise ValueError(
        f"MANO key {key!r}: chumpy object {obj._module}.{obj._name} cannot be converted "
        "without chumpy (no stored 'x' array)"
    )


def read_mano_pickle(path: str | Path) -> dict[str, Any]:
    """Read a MANO pickle into a dict of numpy arrays / scipy sparse matrices (no chumpy).

    Raises:
        FileNotFoundError: the file does not exist. ValueError: not a readable MANO pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file {path} not found. {README_HINT}")
    try:
        with open(path, "rb") as fh:
            data = ManoUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ImportError,
            AttributeError, TypeError, IndexError, KeyError) as err:
        raise ValueError(
            f"{path} is not a readable MANO pickle ({type(err).__name__}: {err}). {README_HINT}"
        ) from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of MANO arrays, got {type(data).__name__}")
    return {key: _to_numpy(value, key) for key, value in data.items()}


def resolve_mano_path(path_or_root: str | Path, side: str) -> Path:
    """``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` inside a folder (or its ``models/``), or the file
    itself. Raises FileNotFoundError with setup instructions."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    path = Path(path_or_root).expanduser()
    name = f"MANO_{side.upper()}.pkl"
    if path.is_dir():
        for cand in (path / name, path / "models" / name, path / "mano" / "models" / name):
            if cand.is_file():
                return cand
        raise FileNotFoundError(f"{name} not found in {path} (nor in {path / 'models'}). "
                                f"{README_HINT}")
    if not path.is_file():
        raise FileNotFoundError(f"MANO model file {path} not found. {README_HINT}")
    other = "LEFT" if side == "right" else "RIGHT"
    if other in path.name.upper():
        raise ValueError(f"{path} looks like the {other.lower()} hand but side={side!r}")
    return path


def close_holes(faces: np.ndarray, vertices: np.ndarray | None = None) -> np.ndarray:
    """Close every boundary loop (MANO: the wrist) with triangles on the existing vertices.

    Each loop is triangulated in a zig-zag strip (well-shaped triangles for the roughly convex
    wrist opening), with the winding opposite to the loop's boundary half-edges so the result is
    consistently oriented.

    Args:
        faces: (F, 3) triangles with boundary edges. vertices: unused (kept for API symmetry).

    Returns:
        (F + K, 3) int64 faces: the input followed by the cap triangles.
    """
    del vertices
    faces = np.asarray(faces, dtype=np.int64)
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edge_set = {(int(a), int(b)) for a, b in half}
    boundary = {a: b for a, b in edge_set if (b, a) not in edge_set}
    if not boundary:
        return faces.copy()
    caps = []
    visited: set[int] = set()
    for start in sorted(boundary):
        if start in visited:
            continue
        loop = [start]
        visited.add(start)
        nxt = boundary[start]
        while nxt != start:
            if nxt in visited or nxt not in boundary:
                raise ValueError("mesh boundary is not a set of simple loops; cannot close it")
            loop.append(nxt)
            visited.add(nxt)
            nxt = boundary[nxt]
        # the mesh has edges loop[i] -> loop[i+1]; the cap polygon runs the other way
        poly = loop[::-1]
        lo, hi, step = 0, len(poly) - 1, 0
        while hi - lo >= 2:
            if step % 2 == 0:
                caps.append((poly[lo], poly[lo + 1], poly[hi]))
                lo += 1
            else:
                caps.append((poly[lo], poly[hi - 1], poly[hi]))
                hi -= 1
            step += 1
    return np.concatenate([faces, np.asarray(caps, dtype=np.int64).reshape(-1, 3)])


def _tip_ids(v: np.ndarray, weights: np.ndarray, joints: np.ndarray, side: str) -> np.ndarray:
    """Fingertip vertices: manopth's ids for 778-vertex MANO, else the vertex furthest along the
    distal bone among the vertices skinned mostly to the distal joint."""
    if len(v) == 778:
        return np.array(MANO_TIP_IDS[side], dtype=np.int64)
    owner = weights.argmax(1)
    ids = []
    for name in TIP_FINGER_ORDER:
        f = MANO_FINGER_ORDER.index(name)
        distal = 3 + 3 * f
        d = joints[distal] - joints[distal - 1]
        cand = np.nonzero(owner == distal)[0]
        if len(cand) == 0:
            raise ValueError(f"MANO asset: no vertex is skinned to the {name} distal joint")
        ids.append(cand[np.argmax((v[cand] - joints[distal]) @ d)])
    return np.array(ids, dtype=np.int64)


def load_mano(path_or_root: str | Path, side: str = "right") -> HandAsset:
    """Load an official MANO model as a :class:`HandAsset`, without chumpy.

    Args:
        path_or_root: a folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (directly or in
            ``models/``), or the pickle itself.
        side: "right" or "left".

    Returns:
        The asset: arrays as in the pickle (first 10 shape directions), dense ``J_regressor``,
        ``faces_closed`` with the wrist hole closed, part labels from the argmax of the skinning
        weights, manopth's fingertip vertices, default joint limits.

    Raises:
        FileNotFoundError: no such file (the message says where to put it).
        ValueError: unreadable file, missing key or wrong array shape (named in the message).
    """
    path = resolve_mano_path(path_or_root, side)
    data = read_mano_pickle(path)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: MANO pickle lacks key(s) {missing}. {README_HINT}")
    try:
        v = np.asarray(data["v_template"], dtype=np.float64)
        regressor = data["J_regressor"]
        regressor = np.asarray(regressor.toarray() if hasattr(regressor, "toarray")
                               else regressor, dtype=np.float64)
        shapedirs = np.asarray(data["shapedirs"], dtype=np.float64)
        if shapedirs.ndim != 3 or shapedirs.shape[2] < 10:
            raise ValueError(f"shapedirs has shape {shapedirs.shape}, expected (V, 3, >=10)")
        shapedirs = shapedirs[:, :, :10]
        weights = np.asarray(data["weights"], dtype=np.float64)
        kintree = np.asarray(data["kintree_table"]).astype(np.int64)
        if kintree.shape != (2, 16):
            raise ValueError(f"kintree_table has shape {kintree.shape}, expected (2, 16)")
        parents = kintree[0].copy()
        parents[(parents < 0) | (parents >= 16)] = -1
        faces = np.asarray(data["f"]).astype(np.int64)
        joints = regressor @ v
        tips = _tip_ids(v, weights, joints, side)
        axes = anatomical_axes(joints, v[tips], side)
        flex_lim, abd_lim = default_joint_limits()
        return HandAsset(
            v_template=v,
            faces=faces,
            faces_closed=close_holes(faces),
            shapedirs=shapedirs,
            posedirs=np.asarray(data["posedirs"], dtype=np.float64),
            J_regressor=regressor,
            weights=weights,
            parents=parents,
            hands_components=np.asarray(data["hands_components"], dtype=np.float64),
            hands_mean=np.asarray(data["hands_mean"], dtype=np.float64),
            tip_vertex_ids=tips,
            vertex_parts=JOINT_PART[weights.argmax(1)],
            side=side,
            flexion_axes=axes["flexion"],
            abduction_axes=axes["abduction"],
            flexion_limits=flex_lim,
            abduction_limits=abd_lim,
            source=str(path),
        )
    except ValueError as err:
        raise ValueError(f"{path}: not a valid MANO model: {err}") from err


# The reference's closed MANO topology (zerchen/gSDF common/mano/assets/closed_fmano.npy, loaded
# by preprocess/cocoify_obman.py line 28 and cocoify_dexycb.py line 129): MANO's 1538 faces plus
# 14 triangles over the 16-vertex wrist loop, no new vertex. `close_holes` builds the same count
# (a loop of n vertices gets n - 2 triangles), so `HandAsset.faces_closed` of the official
# MANO_RIGHT.pkl has this many faces.
MANO_CLOSED_FACES = 1552


def pca_to_axis_angle(asset: HandAsset, coeffs: np.ndarray,
                      flat_hand_mean: bool = True) -> np.ndarray:
    """Finger pose from MANO PCA coefficients: ``coeffs @ hands_components[:n]`` (+ the mean).

    manopth semantics (zerchen/gSDF common/mano/manolayer.py lines 102-107, ``th_full_hand_pose =
    th_hand_pose_coeffs.mm(self.th_selected_comps)`` then ``th_hands_mean +`` it, where the mean
    is zero with ``flat_hand_mean``).

    Args:
        asset: the hand model (its ``hands_components`` (45, 45) rows are the components).
        coeffs: (..., n) PCA coefficients, 1 <= n <= 45 (the first n components).
        flat_hand_mean: if False, add ``hands_mean`` (the mean pose).

    Returns:
        (..., 45) axis-angle finger pose (15 joints, MANO order).
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    n = coeffs.shape[-1]
    if not 1 <= n <= 45:
        raise ValueError(f"expected 1..45 PCA coefficients, got {n}")
    pose = coeffs @ asset.hands_components[:n]
    if not flat_hand_mean:
        pose = pose + asset.hands_mean
    return pose
