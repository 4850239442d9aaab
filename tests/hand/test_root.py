"""The root solver: exact on noise-free projections, bounded error under pixel noise, the
hand-size step on a posed hand model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsdf.hand.root import (
    RootSolveError,
    bone_lengths,
    model_hand_size,
    project,
    root_from_2p5d,
    solve_root_depth,
    solve_root_translation,
)

K = np.array([[480.0, 0.0, 128.0], [0.0, 470.0, 120.0], [0.0, 0.0, 1.0]])
T_TRUE = np.array([0.03, -0.05, 0.55])


@pytest.fixture(scope="module")
def layer():
    from gsdf.hand import HandLayer, procedural_hand

    return HandLayer(procedural_hand(0))


@pytest.fixture(scope="module")
def hand_rel(layer):
    """(21, 3) wrist-relative joints of a posed, rotated hand, metres."""
    g = torch.Generator().manual_seed(3)
    pose = torch.randn(1, 48, generator=g, dtype=torch.float64) * 0.3
    joints = layer(pose.to(layer.v_template.dtype)).joints[0].double().numpy()
    return joints - joints[0]


def test_linear_solver_recovers_the_translation_exactly(hand_rel):
    uv = project(hand_rel + T_TRUE, K)
    np.testing.assert_allclose(solve_root_translation(uv, hand_rel, K), T_TRUE, atol=1e-12)


def test_linear_solver_error_under_pixel_noise_is_within_the_first_order_bound(hand_rel):
    """Pixel noise sigma enters equation j as sigma * (z_j + t_z) to first order, so
    cov(t) ~= M^-1 A^T diag(sigma^2 (z_j + t_z)^2) A M^-1 with M = A^T A (A: the 2J x 3 design
    matrix). The noisy u also sits in A's t_z column, which biases t to second order by
    E[dt] ~= -sigma^2 M^-1 e_z sum_j 2 (z_j + t_z) (errors in variables). The empirical spread
    and mean over many draws must match both, and no draw may exceed 5x the RMS."""
    sigma, draws = 2.0, 2000
    pts = hand_rel + T_TRUE
    uv = project(pts, K)
    a = np.zeros((42, 3))
    a[0::2, 0], a[0::2, 2] = K[0, 0], K[0, 2] - uv[:, 0]
    a[1::2, 1], a[1::2, 2] = K[1, 1], K[1, 2] - uv[:, 1]
    m_inv = np.linalg.inv(a.T @ a)
    noise_scale = np.repeat(pts[:, 2], 2) * sigma
    cov = m_inv @ a.T @ np.diag(noise_scale ** 2) @ a @ m_inv
    rng = np.random.default_rng(0)
    errors = np.array([solve_root_translation(uv + rng.normal(0, sigma, uv.shape), hand_rel, K)
                       - T_TRUE for _ in range(draws)])
    predicted_std = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(errors.std(axis=0), predicted_std, rtol=0.1)
    bias = -sigma ** 2 * m_inv[:, 2] * np.repeat(pts[:, 2], 2).sum()
    assert np.all(np.abs(errors.mean(axis=0) - bias) < 4 * predicted_std / np.sqrt(draws))
    assert np.linalg.norm(errors, axis=1).max() < 5 * np.sqrt(np.trace(cov))
    # the bound itself is small: a 2-pixel error costs millimetres in x, y and ~1 cm in depth
    assert predicted_std[:2].max() < 0.002 and predicted_std[2] < 0.015


def test_2p5d_recovers_root_and_joints_of_a_hand_of_the_model(hand_rel):
    pts = hand_rel + T_TRUE
    uv = project(pts, K)
    depth_rel = pts[:, 2] - 0.3  # any common origin
    sol = root_from_2p5d(uv, depth_rel, K, bone_lengths(hand_rel))
    np.testing.assert_allclose(sol.root, T_TRUE, atol=1e-7)
    np.testing.assert_allclose(sol.joints, pts, atol=1e-7)
    assert sol.reprojection_px < 1e-6 and sol.depth == pytest.approx(T_TRUE[2], abs=1e-7)
    assert sol.scale == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("flat", [False, True])
def test_a_hand_larger_than_the_model_comes_out_nearer_in_proportion(hand_rel, flat):
    """Scale ambiguity: a hand 5% larger than the model (metric depth offsets of the larger
    hand) is found at the depth where its proportions are right, then scaled to the model's
    size about the camera centre: placed at exactly 1/1.05 of its position. A hand facing the
    camera (all joints at one depth) has the same proportions at every depth; the scaled
    skeleton does not depend on it."""
    rel = hand_rel * [1.0, 1.0, 0.0] if flat else hand_rel
    pts = 1.05 * rel + T_TRUE
    uv = project(pts, K)
    bones = bone_lengths(rel)
    sol = root_from_2p5d(uv, pts[:, 2], K, bones)
    np.testing.assert_allclose(sol.root, T_TRUE / 1.05, atol=1e-7)
    assert sol.hand_size == pytest.approx(bones.sum(), rel=1e-8)
    if not flat:
        assert sol.depth == pytest.approx(T_TRUE[2], abs=1e-6)
        assert sol.scale == pytest.approx(1 / 1.05, abs=1e-7)


def test_model_hand_size_is_the_sum_of_the_rest_bones(layer, hand_rel):
    size = model_hand_size(layer)
    assert size == pytest.approx(bone_lengths(hand_rel).sum(), rel=1e-5)  # pose-invariant
    assert 0.6 < size < 1.2  # 20 bones of a human hand, metres


def test_degenerate_joints_are_refused(hand_rel):
    uv = np.tile([[100.0, 100.0]], (21, 1))
    with pytest.raises(RootSolveError, match="degenerate"):
        solve_root_depth(uv, np.zeros(21), K, bone_lengths(hand_rel))
    with pytest.raises(RootSolveError, match="not finite"):
        solve_root_depth(np.full((21, 2), np.nan), np.zeros(21), K, bone_lengths(hand_rel))
