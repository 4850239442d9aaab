"""Grasps: fingers close until they touch the object, with little penetration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gsdf.hand import procedural_hand
from gsdf.synth.grasp import GraspParams, GraspSolver, HandRig, ShapedHand, smooth_closures
from gsdf.synth.objects import MeshSDF, make_object


@pytest.fixture(scope="module")
def rig() -> HandRig:
    return HandRig(procedural_hand(0))


def test_fast_skinning_matches_hand_layer(rig):
    rng = np.random.default_rng(0)
    shape = rng.normal(size=10)
    flex = rng.uniform(rig.flex_open, rig.flex_max, size=(3, 15))
    pose = rig.articulate(flex, rng.uniform(rig.abd_range[:, 0], rig.abd_range[:, 1], (3, 5)))
    verts, joints = rig.forward(pose, shape)
    fast_v, fast_j = ShapedHand(rig, shape).skin(pose, with_joints=True)
    assert np.abs(fast_v - verts).max() < 1e-7
    assert np.abs(fast_j - joints).max() < 1e-7
    ids = np.array([5, 17, 1000])
    assert np.allclose(ShapedHand(rig, shape).skin(pose, ids), verts[:, ids])


@pytest.mark.parametrize("family", ["box", "cylinder", "torus", "bottle", "mug"])
def test_fingers_touch_without_penetrating(rig, family):
    rng = np.random.default_rng(1)
    obj = make_object(family, rng, 0.09)
    solver = GraspSolver(rig, obj)
    params = GraspParams(shape=rng.normal(size=10) * 0.5, abduction=np.zeros(5),
                         profile=np.full(15, 0.9),
                         obj_rotation=Rotation.random(random_state=2).as_matrix(),
                         offset=np.array([0.005, 0.0]))
    g = solver.solve(params)
    # independent check of the reported numbers on the final hand
    placed = obj.vertices @ g.obj_rotation.T + g.obj_translation
    d = MeshSDF(placed, obj.faces)(g.vertices)
    assert max(0.0, -d.min()) == pytest.approx(g.penetration, abs=1e-9)
    assert g.penetration <= 0.005
    assert np.abs(d).min() <= 0.002
    assert g.touching.sum() >= 2, g.closure  # a grasp, not a single touch
    # each touching finger has a vertex near the surface; closing it further would cut in
    for f in np.flatnonzero(g.touching):
        ids = rig.finger_vertices[f]
        assert d[ids].min() <= 0.002, (f, d[ids].min())
    more = g.closure.copy()
    more[g.touching] = np.minimum(more[g.touching] + 0.08, 1.0)
    v2 = ShapedHand(rig, params.shape).skin(solver._pose(params, more))[0]
    assert MeshSDF(placed, obj.faces)(v2).min() < 0  # the fingers were stopped by the object


def test_closure_is_smooth_in_object_pose(rig):
    """Nearby object placements give nearby finger closures (sequences move smoothly)."""
    rng = np.random.default_rng(4)
    obj = make_object("cylinder", rng, 0.1)
    solver = GraspSolver(rig, obj)
    rot = Rotation.from_rotvec([0.3, 0.2, 0.1]).as_matrix()
    base = dict(shape=np.zeros(10), abduction=np.zeros(5), profile=np.full(15, 0.9),
                obj_rotation=rot)
    a = solver.solve(GraspParams(offset=np.array([0.004, 0.0]), **base))
    b = solver.solve(GraspParams(offset=np.array([0.005, 0.0]), **base))
    both = a.touching & b.touching
    assert both.sum() >= 2
    assert np.abs(a.closure[both] - b.closure[both]).max() < 0.08


def test_smooth_closures_only_lower_and_limit_steps():
    rng = np.random.default_rng(0)
    closure = rng.uniform(0.1, 1.0, (10, 5))
    touching = rng.random((10, 5)) < 0.6
    touching[:, 4] = False  # a finger that never touches: free everywhere
    out = smooth_closures(closure, touching, max_step=0.05)
    assert (out <= closure + 1e-12).all()  # never deeper than the contact: no penetration
    assert np.abs(np.diff(out, axis=0)).max() <= 0.05 + 1e-12
    # free frames follow the touching ones instead of jumping to a fist
    c = np.array([[0.4], [0.42], [1.0], [0.45]])
    t = np.array([[True], [True], [False], [True]])
    assert smooth_closures(c, t, max_step=0.1)[2, 0] == pytest.approx(0.435)


def test_mano_like_asset_with_pose_correctives(monkeypatch, tmp_path):
    """An asset with pose correctives (as MANO has) goes through the same path: the search
    skins without correctives, the stored hand comes from the real layer."""
    import gsdf.hand
    from gsdf.config import ConfigError
    from gsdf.synth.config import SynthConfig
    from gsdf.synth.dataset import load_hand_asset
    from gsdf.synth.generate import SequenceGenerator

    asset = procedural_hand(0).copy()
    asset.posedirs = np.random.default_rng(0).normal(0, 1e-4, asset.posedirs.shape)
    calls = []

    def fake_load_mano(root, side="right"):
        calls.append((str(root), side))
        return asset

    monkeypatch.setattr(gsdf.hand, "load_mano", fake_load_mano)
    loaded = load_hand_asset({"asset": "mano", "mano_root": str(tmp_path)})
    assert loaded is asset and calls == [(str(tmp_path), "right")]
    cfg = SynthConfig(seed=1, frames_per_sequence=(2, 2), max_attempts=1)
    samples = SequenceGenerator(cfg, loaded).sequence(0)
    layer = gsdf.hand.HandLayer(asset).double()
    for s in samples:
        out = layer(*(torch.tensor(s.meta[k][None]) for k in ("hand_pose", "hand_shape",
                                                              "hand_trans")))
        assert np.abs(out.joints[0].numpy() - s.meta["hand_joints_3d"]).max() < 1e-9
        d = MeshSDF(s.obj_vertices, s.obj_faces)(s.hand_vertices)
        assert -d.min() <= 0.005 and np.abs(d).min() <= 0.003
    with pytest.raises(ConfigError, match="mano_root"):
        load_hand_asset({"asset": "mano", "mano_root": None})
