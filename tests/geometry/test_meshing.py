"""Coarse-to-fine meshing equals dense meshing on analytic SDFs, with far fewer queries."""

from __future__ import annotations

import numpy as np
import pytest
from analytic_fields import FINGER_RADIUS, box, capsule, sphere

from gsdf.geometry.meshing import (
    GridSpec,
    MeshingConfig,
    fitted_cube,
    hand_to_camera,
    marching_cubes,
    mesh_fields,
    sample_coarse_to_fine,
    sample_dense,
)


def touching(p):
    """A sphere and a box touching at x = 0."""
    return np.minimum(sphere(p, (0.3, 0.0, 0.0), 0.3), box(p, (-0.2, 0.0, 0.0), (0.2, 0.2, 0.2)))


SHAPES = {"sphere": sphere, "box": box, "capsule": capsule, "touching": touching}


def _assert_same_mesh(a, b):
    assert a is not None and b is not None
    (va, fa), (vb, fb) = a, b
    assert va.shape == vb.shape and fa.shape == fb.shape
    np.testing.assert_allclose(va, vb, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(fa, fb)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_coarse_to_fine_equals_dense_with_a_tenth_of_the_queries(name):
    field = SHAPES[name]
    dense = mesh_fields({"f": field}, MeshingConfig(mode="dense"))
    c2f = mesh_fields({"f": field}, MeshingConfig(mode="coarse_to_fine", lipschitz=1.0))
    _assert_same_mesh(dense.meshes["f"], c2f.meshes["f"])
    assert dense.spec == c2f.spec
    assert dense.num_queries["f"] == 2 * 128 ** 3
    assert c2f.num_queries["f"] <= dense.num_queries["f"] / 10


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_clamped_field_with_margin_gives_the_dense_mesh(name):
    """A clamped distance (the networks' target) only certifies small blocks; still exact."""
    def field(p):
        return np.clip(SHAPES[name](p), -0.05, 0.05)

    dense = mesh_fields({"f": field}, MeshingConfig(mode="dense"))
    c2f = mesh_fields({"f": field}, MeshingConfig(lipschitz=1.4))
    _assert_same_mesh(dense.meshes["f"], c2f.meshes["f"])
    assert c2f.num_queries["f"] <= dense.num_queries["f"] / 10


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_sign_refinement_gives_the_dense_mesh_on_analytic_fields(name):
    """The opt-in sign rule (no Lipschitz bound) still finds every surface of these shapes,
    the thin finger included, clamped like the networks' target."""
    def field(p):
        return np.clip(SHAPES[name](p), -0.05, 0.05)

    dense = mesh_fields({"f": field}, MeshingConfig(mode="dense"))
    c2f = mesh_fields({"f": field}, MeshingConfig(refine="sign"))
    _assert_same_mesh(dense.meshes["f"], c2f.meshes["f"])
    assert c2f.num_queries["f"] <= dense.num_queries["f"] / 10


def test_sign_refinement_follows_a_flat_field_the_lipschitz_rule_cannot_prune():
    """A learned field that stays near zero (here a sphere's distance times 0.02, |f| < 0.01
    over most of the cube) proves nothing under the Lipschitz rule; the sign rule gives the
    same mesh with several times fewer queries."""
    def flat(p):
        return 0.02 * sphere(p)

    dense = mesh_fields({"f": flat}, MeshingConfig(mode="dense"))
    lip = mesh_fields({"f": flat}, MeshingConfig(lipschitz=1.4))
    sign = mesh_fields({"f": flat}, MeshingConfig(refine="sign"))
    _assert_same_mesh(dense.meshes["f"], lip.meshes["f"])
    _assert_same_mesh(dense.meshes["f"], sign.meshes["f"])
    assert sign.num_queries["f"] * 3 < lip.num_queries["f"]


def test_sign_refinement_is_not_certified_a_blob_between_coarse_nodes_is_lost():
    """What the sign rule gives up: a surface no coarse node sees. The Lipschitz rule finds it."""
    h8 = 8 * 2.0 / 127  # stride-8 block side of the first grid
    centre = np.full(3, -1.0 + 5 * h8 + 0.2 * h8)  # off the block's corners and centre

    def blob(p):
        return np.clip(np.linalg.norm(p - centre, axis=1) - 0.02, -0.05, 0.05)

    assert mesh_fields({"f": blob}, MeshingConfig(refine="sign")).meshes["f"] is None
    dense = mesh_fields({"f": blob}, MeshingConfig(mode="dense"))
    _assert_same_mesh(dense.meshes["f"],
                      mesh_fields({"f": blob}, MeshingConfig(lipschitz=1.0)).meshes["f"])


def test_refine_rule_is_validated():
    with pytest.raises(ValueError, match="refine"):
        MeshingConfig(refine="fast")


def test_two_fields_share_the_reference_fitted_cube():
    fields = {"hand": capsule, "obj": lambda p: sphere(p, (0.2, 0.0, 0.0), 0.15)}
    res = mesh_fields(fields, MeshingConfig(mode="coarse_to_fine", lipschitz=1.0))
    ref = mesh_fields(fields, MeshingConfig(mode="dense"))
    for name in fields:
        _assert_same_mesh(ref.meshes[name], res.meshes[name])
    # The fitted cube spans the union of both shapes' inside nodes plus 2 voxels.
    lo = np.asarray(res.spec.origin)
    hi = lo + res.spec.voxel_size * 127
    assert lo[0] < -0.3 - FINGER_RADIUS and hi[0] > 0.35


def test_fitted_cube_matches_the_reference_rule():
    spec = GridSpec.reference_cube(9)  # voxel 0.25
    values = np.ones((9, 9, 9))
    values[3:5, 4, 2:7] = -1.0  # inside nodes: x 3..4, y 4, z 2..6
    from gsdf.geometry.meshing import SampledGrid
    grid = SampledGrid(values, np.ones_like(values, bool), spec, 0)
    cube = fitted_cube([grid], 9)
    # extent max(1, 0, 4) + 4 = 8 voxels; origin (low - 2) * 0.25 - 1
    assert cube.voxel_size == pytest.approx(8 * 0.25 / 8)
    np.testing.assert_allclose(cube.origin, [0.25 - 1, 0.5 - 1, 0.0 - 1])
    assert fitted_cube([SampledGrid(np.ones((9, 9, 9)), values > 0, spec, 0)], 9) is None


def test_no_zero_crossing_gives_no_mesh():
    res = mesh_fields({"f": lambda p: np.full(len(p), 0.05)}, MeshingConfig())
    assert res.meshes["f"] is None and res.spec is None
    spec = GridSpec.reference_cube(16)
    assert marching_cubes(sample_dense(lambda p: np.full(len(p), -1.0), spec)) is None


def test_batches_respect_the_point_batch_size():
    sizes = []

    def field(p):
        sizes.append(len(p))
        return sphere(p)

    sample_coarse_to_fine(field, GridSpec.reference_cube(64), 1.0, 8, batch_size=1000)
    assert max(sizes) <= 1000 and len(sizes) > 1


def test_unsound_lipschitz_is_detectably_different():
    """Sanity of the test itself: an over-optimistic Lipschitz bound misses the thin finger."""
    spec = GridSpec.reference_cube(128)
    dense = marching_cubes(sample_dense(capsule, spec))
    loose = marching_cubes(sample_coarse_to_fine(capsule, spec, lipschitz=0.05))
    assert loose is None or loose[0].shape != dense[0].shape


def test_hand_to_camera_inverts_the_hand_frame():
    rng = np.random.default_rng(0)
    p_cam = rng.normal(size=(10, 3)) * 0.1 + [0, 0, 0.5]
    wrist = np.array([0.01, -0.02, 0.5])
    p_hand = (p_cam - wrist) * 7.0 / 2
    np.testing.assert_allclose(hand_to_camera(p_hand, wrist, 7.0), p_cam, atol=1e-12)
