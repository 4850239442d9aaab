"""Metrics of the published protocol on meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from gsdf.eval.align import icp_scale_translation
from gsdf.eval.contact import contact_metrics
from gsdf.eval.metrics import (
    center_error_cm,
    chamfer,
    fscore,
    joint_error_cm,
    largest_component,
    nn_distances,
    sample_surface,
    surface_metrics,
    view_extents,
)


def _hand_like() -> trimesh.Trimesh:
    """A capsule-ish blob the size of a hand (metres)."""
    mesh = trimesh.creation.capsule(height=0.08, radius=0.02, count=[24, 24])
    mesh.apply_translation([0.02, -0.01, 0.5])
    return mesh


def test_identical_points_give_zero_chamfer_and_unit_fscore():
    pts = sample_surface(_hand_like(), 5000, seed=1) * 100
    m = surface_metrics(pts, pts, (0.1, 0.5))
    assert m["chamfer"] == 0.0
    assert m["fscore@0.1"] == 1.0 and m["fscore@0.5"] == 1.0


def test_identical_meshes_independent_samples_are_near_zero():
    mesh = _hand_like()
    a = sample_surface(mesh, 30000, seed=1) * 100
    b = sample_surface(mesh, 30000, seed=2) * 100
    m = surface_metrics(a, b, (0.1, 0.5))
    assert m["chamfer"] < 5e-3 and m["fscore@0.5"] == 1.0 and m["fscore@0.1"] > 0.98


def test_known_offset_gives_known_chamfer_and_fscores():
    # A large flat grid shifted along its normal by d: every NN distance is d.
    g = np.stack(np.meshgrid(np.linspace(0, 10, 101), np.linspace(0, 10, 101)), -1)
    pts = np.concatenate([g.reshape(-1, 2), np.zeros((101 * 101, 1))], 1)
    d = 0.3
    d_pred, d_gt = nn_distances(pts + [0, 0, d], pts)
    assert chamfer(d_pred, d_gt) == pytest.approx(2 * d ** 2, rel=1e-9)
    assert fscore(d_pred, d_gt, 0.5) == pytest.approx(1.0)
    assert fscore(d_pred, d_gt, 0.1) == 0.0


def test_icp_undoes_scale_and_translation():
    mesh = _hand_like()
    gt = sample_surface(mesh, 30000, seed=3) * 100
    pred = (sample_surface(mesh, 30000, seed=4) * 1.1 + [0.8, -0.5, 0.3]) * 100
    before = surface_metrics(pred, gt, (0.1,))["chamfer"]
    sim = icp_scale_translation(pred, gt)
    after = surface_metrics(sim.apply(pred), gt, (0.1,))["chamfer"]
    floor = surface_metrics(sample_surface(mesh, 30000, seed=4) * 100, gt, ())["chamfer"]
    assert before > 10.0
    assert after < 1.3 * floor < 5e-3  # back to the sampling-noise floor
    assert sim.scale == pytest.approx(1 / 1.1, rel=5e-3)


def test_largest_component_drops_a_floating_blob():
    body = _hand_like()
    blob = trimesh.creation.icosphere(2, radius=0.005)
    blob.apply_translation([0.2, 0.0, 0.5])
    both = trimesh.util.concatenate([body, blob])
    kept = largest_component(both)
    assert len(kept.vertices) == len(body.vertices)
    np.testing.assert_allclose(kept.area, body.area)
    gt = sample_surface(body, 20000, seed=5) * 100
    with_blob = surface_metrics(sample_surface(both, 20000, seed=6) * 100, gt, ())["chamfer"]
    without = surface_metrics(sample_surface(kept, 20000, seed=6) * 100, gt, ())["chamfer"]
    assert with_blob > 10 * without


def test_pose_errors_in_cm():
    gt = np.zeros((21, 3))
    pred = gt + [0.003, 0.004, 0.0]  # 5 mm everywhere
    assert joint_error_cm(pred, gt) == pytest.approx(0.5)
    assert center_error_cm([0, 0, 0.52], [0, 0, 0.5]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        joint_error_cm(np.zeros((20, 3)), gt)


def test_contact_metrics_of_overlapping_and_separate_spheres():
    a = trimesh.creation.icosphere(4, radius=0.05)
    b = trimesh.creation.icosphere(4, radius=0.05)
    b.apply_translation([0.08, 0, 0])
    c = contact_metrics(a, b)
    assert c["contact"] == 1.0
    assert c["penetration_depth"] == pytest.approx(2.0, abs=0.05)  # cm
    lens = np.pi * (4 * 5 + 8) * (2 * 5 - 8) ** 2 / 12  # cm^3, two r=5 spheres 8 apart
    assert c["intersection_volume"] == pytest.approx(lens, rel=0.1)
    b.apply_translation([0.05, 0, 0])
    assert contact_metrics(a, b) == {"contact": 0.0, "penetration_depth": 0.0,
                                     "intersection_volume": 0.0}


def test_distances_under_a_similarity_match_the_naive_computation():
    rng = np.random.default_rng(0)
    pred, gt = rng.normal(size=(500, 3)), rng.normal(size=(400, 3))
    s, t = 1.3, np.array([0.2, -0.1, 0.4])
    moved = s * pred + t
    naive_p = np.sqrt(((moved[:, None] - gt[None]) ** 2).sum(-1)).min(1)
    naive_g = np.sqrt(((gt[:, None] - moved[None]) ** 2).sum(-1)).min(1)
    d_p, d_g = nn_distances(pred, gt, scale=s, translation=t)
    np.testing.assert_allclose(d_p, naive_p, rtol=1e-12)
    np.testing.assert_allclose(d_g, naive_g, rtol=1e-12)


def test_view_extents_of_a_box_stretched_along_the_ray():
    box = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    box.apply_translation((0.05, 0.0, 0.4))
    ray = box.centroid / np.linalg.norm(box.centroid)
    streak = box.copy()
    # stretch 3x along the camera ray through its centre
    T = np.eye(4)
    T[:3, :3] += 2.0 * np.outer(ray, ray)
    streak.apply_translation(-box.centroid)
    streak.apply_transform(T)
    streak.apply_translation(box.centroid)
    pts = trimesh.sample.sample_surface(box, 20000, seed=1)[0]
    pts_s = trimesh.sample.sample_surface(streak, 20000, seed=1)[0]
    d0, l0 = view_extents(pts, ray)
    d1, l1 = view_extents(pts_s, ray)
    assert d1 / d0 == pytest.approx(3.0, rel=0.1)
    assert l1 / l0 == pytest.approx(1.0, rel=0.1)
    # a cube of side 4 cm seen along an axis: about its side in depth
    d_axis, _ = view_extents(pts, np.array([0.0, 0.0, 1.0]))
    assert 0.035 < d_axis <= 0.04 + 1e-9
