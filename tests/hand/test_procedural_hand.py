"""Procedural hand asset: topology, proportions, labels, shape space, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from gsdf.hand import JOINT_NAMES_21, HandLayer, procedural_hand
from gsdf.hand.procedural import BONE_LENGTHS


@pytest.fixture(scope="module")
def asset():
    return procedural_hand(0)


def test_mesh_is_watertight_single_component(asset):
    mesh = trimesh.Trimesh(asset.v_template, asset.faces_closed, process=False)
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0  # outward normals
    assert len(mesh.split(only_watertight=False)) == 1
    assert 1000 <= asset.num_vertices <= 5000
    # a hand's volume is a few hundred cm^3
    assert 1.5e-4 < mesh.volume < 6e-4


def test_bone_lengths_match_design(asset):
    joints = HandLayer(asset).double()(torch.zeros(1, 48, dtype=torch.float64)).joints[0].numpy()
    for name, lengths in BONE_LENGTHS.items():
        idx = [0] + [JOINT_NAMES_21.index(f"{name}{k}") for k in range(1, 5)]
        got = np.linalg.norm(np.diff(joints[idx], axis=0), axis=1)
        np.testing.assert_allclose(got, lengths, rtol=0.02, err_msg=name)


def test_parts_cover_all_vertices(asset):
    counts = np.bincount(asset.vertex_parts, minlength=6)
    assert counts.sum() == asset.num_vertices
    assert (counts[:6] > 50).all(), counts
    # tips belong to their finger (thumb, index, middle, ring, pinky -> labels 1..5)
    np.testing.assert_array_equal(asset.vertex_parts[asset.tip_vertex_ids], [1, 2, 3, 4, 5])


def test_skinning_weights(asset):
    np.testing.assert_allclose(asset.weights.sum(1), 1.0, atol=1e-12)
    assert asset.weights.min() >= 0
    np.testing.assert_allclose(asset.J_regressor.sum(1), 1.0, atol=1e-9)


def test_shape_changes_lengths_and_thickness(asset):
    layer = HandLayer(asset).double()
    zero = torch.zeros(1, 48, dtype=torch.float64)
    base = layer(zero)
    idx = JOINT_NAMES_21.index
    for k, finger in enumerate(["thumb", "index", "middle", "ring", "pinky"]):
        beta = torch.zeros(1, 10, dtype=torch.float64)
        beta[0, 5 + k] = 2.0
        out = layer(zero, beta)
        def length(o, finger=finger):
            return (o.joints[0, idx(f"{finger}4")] - o.joints[0, idx(f"{finger}1")]).norm()
        assert length(out) > 1.05 * length(base), finger
    beta = torch.zeros(1, 10, dtype=torch.float64)
    beta[0, 4] = 2.0
    thick = layer(zero, beta)
    # finger thickness: joints stay, the surface moves
    torch.testing.assert_close(thick.joints[:, 1:], base.joints[:, 1:], atol=5e-4, rtol=0)
    assert (thick.vertices - base.vertices).norm(dim=-1).max() > 1e-3
    # overall scale: everything grows about the wrist
    beta = torch.zeros(1, 10, dtype=torch.float64)
    beta[0, 0] = 1.0
    big = layer(zero, beta)
    torch.testing.assert_close(big.joints, base.joints * 1.05)


def test_deterministic_and_seeded():
    a, b = procedural_hand(0), procedural_hand(0)
    np.testing.assert_array_equal(a.v_template, b.v_template)
    a.v_template[:] = 0  # callers get their own copy
    assert np.abs(procedural_hand(0).v_template).max() > 0.1
    c = procedural_hand(1)
    assert c.num_vertices != a.num_vertices or not np.allclose(c.v_template, b.v_template)


def test_no_self_intersection_at_rest(asset):
    from gsdf.hand.mesh_checks import self_intersections

    assert len(self_intersections(asset.v_template, asset.faces_closed)) == 0
    # the check itself detects intersections: two overlapping boxes
    a, b = trimesh.creation.box(), trimesh.creation.box()
    b.apply_translation([0.5, 0.3, 0.2])
    v = np.concatenate([a.vertices, b.vertices])
    f = np.concatenate([a.faces, b.faces + len(a.vertices)])
    assert len(self_intersections(v, f)) > 0


def test_finger_flexion_axes_are_in_the_palm_plane(asset):
    """Procedural frames: flexion about (cos s, -sin s, 0), abduction about +-z."""
    for f in range(4):  # index, middle, pinky, ring
        for k in range(3):
            axis = asset.flexion_axes[3 * f + k]
            assert abs(axis[2]) < 1e-9 and axis[0] > 0.9
            np.testing.assert_allclose(np.abs(asset.abduction_axes[3 * f + k]), [0, 0, 1],
                                       atol=1e-9)
