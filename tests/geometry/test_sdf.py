"""gsdf.geometry.sdf against analytic SDFs, a naive point-triangle distance, holes and parts."""

import numpy as np
import pytest
import trimesh

from gsdf.data.sdf_shard import load_shard, save_shard
from gsdf.geometry.sdf import (
    MeshSDF,
    SampleSDFConfig,
    face_parts,
    ray_points,
    sample_pair,
)

MM = 1e-3


def naive_distance(points: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Brute-force exact point-triangle distance (Ericson, Real-Time Collision Detection 5.1.5),
    vectorised over all (point, triangle) pairs: (P,) distances."""
    p = points[:, None, :]  # (P, 1, 3)
    a, b, c = tris[None, :, 0], tris[None, :, 1], tris[None, :, 2]  # (1, T, 3)
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 / (va + vb + vc)
        v_in, w_in = vb * denom, vc * denom
        closest = a + ab * v_in[..., None] + ac * w_in[..., None]  # interior
        # edge regions
        v_ab = d1 / (d1 - d3)
        m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        closest = np.where(m[..., None], a + ab * v_ab[..., None], closest)
        w_ac = d2 / (d2 - d6)
        m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        closest = np.where(m[..., None], a + ac * w_ac[..., None], closest)
        w_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        m = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
        closest = np.where(m[..., None], b + (c - b) * w_bc[..., None], closest)
    # vertex regions last (they win)
    closest = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, closest)
    closest = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, closest)
    closest = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, closest)
    return np.linalg.norm(p - closest, axis=-1).min(axis=1)


def shell_points(rng, center, inner, outer, n):
    """Random points whose distance to ``center`` region is within 5 cm (box around it)."""
    return center + rng.uniform(-outer, outer, (n, 3))


def test_naive_distance_matches_a_known_case():
    tri = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]], float)
    pts = np.array([[0.2, 0.2, 0.5], [2, 0, 0], [-1, -1, 0], [1, 1, 0]], float)
    np.testing.assert_allclose(naive_distance(pts, tri), [0.5, 1.0, np.sqrt(2), np.sqrt(0.5)])


def test_sphere_matches_analytic_sdf():
    rng = np.random.default_rng(0)
    radius, center = 0.05, np.array([0.01, -0.02, 0.4])
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    sphere.apply_translation(center)
    pts = center + rng.uniform(-1, 1, (20000, 3)) * (radius + 0.05)
    analytic = np.linalg.norm(pts - center, axis=1) - radius
    pts, analytic = pts[np.abs(analytic) < 0.05], analytic[np.abs(analytic) < 0.05]
    sdf, _ = MeshSDF(sphere.vertices, sphere.faces)(pts)
    err = np.abs(sdf - analytic)
    assert err.mean() < 0.1 * MM
    assert err.max() < 0.5 * MM
    # the polyhedron lies inside the sphere by at most its sagitta (~7 um): signs elsewhere exact
    clear = np.abs(analytic) > 0.02 * MM
    assert np.all(np.sign(sdf[clear]) == np.sign(analytic[clear]))


def box_sdf(points, half):
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def test_box_matches_analytic_sdf():
    rng = np.random.default_rng(1)
    half = np.array([0.03, 0.05, 0.02])
    box = trimesh.creation.box(extents=2 * half)
    pts = rng.uniform(-1, 1, (20000, 3)) * (half + 0.05)
    analytic = box_sdf(pts, half)
    keep = np.abs(analytic) < 0.05
    sdf, _ = MeshSDF(box.vertices, box.faces)(pts[keep])
    err = np.abs(sdf - analytic[keep])
    assert err.mean() < 0.1 * MM
    assert err.max() < 0.5 * MM
    assert np.all(np.sign(sdf) == np.sign(analytic[keep]))


def test_distance_and_nearest_face_match_naive_reference():
    rng = np.random.default_rng(2)
    mesh = trimesh.creation.torus(0.04, 0.015, major_sections=24, minor_sections=12)
    pts = rng.uniform(-0.07, 0.07, (400, 3))
    m = MeshSDF(mesh.vertices, mesh.faces)
    dist, face = m.unsigned(pts)
    np.testing.assert_allclose(dist, naive_distance(pts, mesh.vertices[mesh.faces]), atol=1e-9)
    # the reported face is a nearest face: its own distance equals the minimum
    own = np.array([naive_distance(p[None], mesh.vertices[mesh.faces[f]][None])[0]
                    for p, f in zip(pts, face, strict=True)])
    np.testing.assert_allclose(own, dist, atol=1e-9)


@pytest.mark.parametrize("holes", ["scattered", "one_patch"])
@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_holes_do_not_flip_far_signs_nor_shrink_distances(shape, holes):
    rng = np.random.default_rng(3)
    if shape == "sphere":
        closed = trimesh.creation.icosphere(subdivisions=4, radius=0.05)
    else:
        closed = trimesh.creation.torus(0.05, 0.02, major_sections=64, minor_sections=32)
    keep = np.ones(len(closed.faces), bool)
    n_holes = int(0.02 * len(keep))
    if holes == "scattered":  # 2% of the faces, one by one
        keep[rng.choice(len(keep), n_holes, replace=False)] = False
    else:  # the 2% of faces nearest one face: one big hole (~1.4 cm across on the sphere)
        centres = closed.triangles_center
        keep[np.argsort(np.linalg.norm(centres - centres[0], axis=1))[:n_holes]] = False
    holed_faces = closed.faces[keep]
    pts = rng.uniform(-0.09, 0.09, (20000, 3))
    s_closed, _ = MeshSDF(closed.vertices, closed.faces)(pts)
    holed = MeshSDF(closed.vertices, holed_faces)
    s_holed, _ = holed(pts)
    far = np.abs(s_closed) > 2 * MM
    flips = np.mean(np.sign(s_closed[far]) != np.sign(s_holed[far]))
    assert flips < 0.01
    # |sdf| is the exact unsigned distance to the holed mesh (libigl vs the naive reference)
    sub = rng.choice(len(pts), 300, replace=False)
    naive = naive_distance(pts[sub], closed.vertices[holed_faces])
    np.testing.assert_allclose(np.abs(s_holed[sub]), naive, atol=1e-9)


def test_face_parts_majority_and_tie():
    faces = np.array([[0, 1, 2], [0, 1, 3], [3, 1, 2], [4, 0, 1]])
    parts = np.array([0, 1, 1, 2, 5])
    # [0,1,1] -> 1 ; [0,1,2] -> tie -> first (0) ; [2,1,1] -> 1 ; [5,0,1] -> 5
    np.testing.assert_array_equal(face_parts(faces, parts), [1, 0, 1, 5])


def fingers_hand():
    """Palm box (part 0) + five capsule fingers along -y (parts 1..5), in metres."""
    palm = trimesh.creation.box(extents=(0.08, 0.08, 0.025))
    palm.apply_translation((0, -0.04, 0))
    meshes, parts, tips = [palm], [np.zeros(len(palm.vertices), int)], {}
    for label, x in zip(range(1, 6), (-0.06, -0.03, -0.01, 0.01, 0.03), strict=True):
        f = trimesh.creation.capsule(height=0.07, radius=0.008, count=(8, 8))
        f.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        f.apply_translation((x, -0.115, 0))
        meshes.append(f)
        parts.append(np.full(len(f.vertices), label))
        tips[label] = np.array([x, -0.158, 0.0])
    return trimesh.util.concatenate(meshes), np.concatenate(parts), tips


def test_point_near_a_fingertip_gets_that_fingers_label():
    hand, parts, tips = fingers_hand()
    obj = trimesh.creation.icosphere(3, radius=0.03)
    obj.apply_translation((0, -0.05, -0.05))
    cfg = SampleSDFConfig(points_per_mesh=20000)
    res = sample_pair(hand, parts, obj, np.zeros(3), 7.0, cfg, np.random.default_rng(0))
    pts = res.hand.data[:, :3] / 3.5  # back to metres (wrist at the origin)
    for label, tip in tips.items():
        near = np.linalg.norm(pts - tip, axis=1) < 0.006
        assert near.sum() > 10
        assert np.all(res.hand.part[near] == label), (label, np.unique(res.hand.part[near]))


def test_sample_pair_layout_frame_and_signs():
    hand, parts, _ = fingers_hand()
    obj = trimesh.creation.box(extents=(0.05, 0.04, 0.06))
    obj.apply_translation((0.0, -0.06, -0.045))
    wrist = np.array([0.01, 0.02, 0.5])
    hand.apply_translation(wrist)
    obj.apply_translation(wrist)
    cfg = SampleSDFConfig(points_per_mesh=3000)
    res = sample_pair(hand, parts, obj, wrist, 6.2, cfg, np.random.default_rng(1))
    for name, own, mesh in (("hand", 3, hand), ("obj", 4, obj)):
        s = getattr(res, name)
        assert s.data.shape == (3000, 5) and s.data.dtype == np.float32
        assert np.all(s.data[: s.num_pos, own] > 0) and np.all(s.data[s.num_pos:, own] <= 0)
        assert 0 < s.num_pos < 3000
        # back to camera space: distances agree with a fresh query, scaled by recon_scale / 2
        cam = s.data[:, :3].astype(np.float64) / 3.1 + wrist
        ref, _ = MeshSDF(mesh.vertices, mesh.faces)(cam)
        np.testing.assert_allclose(s.data[:, own] / 3.1, ref, atol=2e-6)
    # most points near the surfaces: 94% near, 6% uniform
    near = np.minimum(np.abs(res.hand.data[:, 3]), np.abs(res.hand.data[:, 4])) / 3.1 < 0.03
    assert near.mean() > 0.85


def test_recon_cube_points_cover_the_reconstruction_cube_with_exact_distances():
    hand, parts, _ = fingers_hand()
    obj = trimesh.creation.box(extents=(0.05, 0.04, 0.06))
    obj.apply_translation((0.0, -0.06, -0.045))
    wrist = np.array([0.01, 0.02, 0.5])
    hand.apply_translation(wrist)
    obj.apply_translation(wrist)
    base = SampleSDFConfig(points_per_mesh=3000)
    cfg = SampleSDFConfig(points_per_mesh=3000, near_fraction=0.9, recon_cube_fraction=0.05)
    reach = {}
    for name, c in (("sphere", base), ("recon", cfg)):
        res = sample_pair(hand, parts, obj, wrist, 7.0, c, np.random.default_rng(2))
        pts = res.obj.data[:, :3]
        assert pts.shape == (3000, 3) and np.all(np.abs(pts) <= 1.0 + 1e-6)
        reach[name] = (np.abs(pts).max(axis=1) > 0.8).sum()
        # distances stay exact everywhere (a far point is as exact as a near one)
        cam = res.obj.data[:, :3].astype(np.float64) / 3.5 + wrist
        ref, _ = MeshSDF(obj.vertices, obj.faces)(cam)
        np.testing.assert_allclose(res.obj.data[:, 4] / 3.5, ref, atol=2e-6)
    # the bounding-sphere cube never reaches the outer shell of the cube; 150 recon-cube points
    # fill it uniformly (the shell |p|_inf > 0.8 is 49% of the cube's volume)
    assert reach["sphere"] == 0 and 40 < reach["recon"] < 110
    with pytest.raises(ValueError, match="recon_cube_fraction"):
        SampleSDFConfig(near_fraction=0.94, recon_cube_fraction=0.1)


def test_ray_points_lie_on_camera_rays_through_the_surface_inside_the_cube():
    rng = np.random.default_rng(0)
    wrist = np.array([0.02, -0.01, 0.3])
    half = 2.0 / 7.0
    surface = wrist + rng.normal(0.0, 0.03, (4000, 3))
    pts = ray_points(surface, wrist - half, wrist + half, rng)
    # on the ray from the camera (origin) through each surface sample, in front of the camera
    cos = np.sum(pts * surface, axis=1) / np.linalg.norm(pts, axis=1) / np.linalg.norm(
        surface, axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-9)
    assert np.all(pts[:, 2] > 0)
    # inside the reconstruction cube, spread over the whole depth range of the ray in it
    assert np.all(np.abs(pts - wrist) <= half + 1e-9)
    depth = pts[:, 2] - wrist[2]
    assert depth.min() < -0.8 * half and depth.max() > 0.8 * half
    # uniform along the segment: about as many points in front of the surface as behind
    behind = np.linalg.norm(pts, axis=1) > np.linalg.norm(surface, axis=1)
    assert 0.4 < behind.mean() < 0.6
    # a ray that misses the box keeps its surface point
    far = np.array([[1.0, 1.0, 0.001]])  # grazing: z reaches the box only past x = 14
    np.testing.assert_allclose(ray_points(far, wrist - half, wrist + half, rng), far)


def test_ray_fraction_points_have_exact_distances_and_budget():
    hand, parts, _ = fingers_hand()
    obj = trimesh.creation.box(extents=(0.05, 0.04, 0.06))
    obj.apply_translation((0.0, -0.06, -0.045))
    wrist = np.array([0.01, 0.02, 0.4])
    hand.apply_translation(wrist)
    obj.apply_translation(wrist)
    cfg = SampleSDFConfig(points_per_mesh=2000, near_fraction=0.6, recon_cube_fraction=0.15,
                          ray_fraction=0.25)
    res = sample_pair(hand, parts, obj, wrist, 7.0, cfg, np.random.default_rng(3))
    pts = res.obj.data[:, :3].astype(np.float64)
    assert pts.shape == (2000, 3) and np.all(np.abs(pts) <= 1.0 + 1e-6)
    cam = pts / 3.5 + wrist
    ref, _ = MeshSDF(obj.vertices, obj.faces)(cam)
    np.testing.assert_allclose(res.obj.data[:, 4] / 3.5, ref, atol=2e-6)
    # the ray points reach far in depth right behind / in front of the object: points whose
    # projection falls on the object's image footprint but lie > 8 cm from it in depth
    centre = obj.vertices.mean(axis=0)
    d = centre / np.linalg.norm(centre)
    lateral = np.linalg.norm(np.cross(cam, d), axis=1)
    depth = np.abs(cam @ d - np.linalg.norm(centre))
    tube = (lateral < 0.02) & (depth > 0.08)
    base = SampleSDFConfig(points_per_mesh=2000, near_fraction=0.6, recon_cube_fraction=0.4)
    res0 = sample_pair(hand, parts, obj, wrist, 7.0, base, np.random.default_rng(3))
    cam0 = res0.obj.data[:, :3].astype(np.float64) / 3.5 + wrist
    tube0 = (np.linalg.norm(np.cross(cam0, d), axis=1) < 0.02) & (
        np.abs(cam0 @ d - np.linalg.norm(centre)) > 0.08)
    assert tube.sum() > 5 * max(tube0.sum(), 1) and tube.sum() > 50
    with pytest.raises(ValueError, match="ray_fraction"):
        SampleSDFConfig(near_fraction=0.7, recon_cube_fraction=0.2, ray_fraction=0.2)


def test_shard_round_trip(tmp_path):
    hand, parts, _ = fingers_hand()
    obj = trimesh.creation.icosphere(2, radius=0.03)
    cfg = SampleSDFConfig(points_per_mesh=500)
    samples = [sample_pair(hand, parts, obj, np.zeros(3), 7.0, cfg, np.random.default_rng(i))
               for i in range(2)]
    save_shard(tmp_path / "s.npz", ["a", "b"], samples, 7.0, {"x": 1})
    shard = load_shard(tmp_path / "s.npz")
    assert shard.ids == ["a", "b"] and shard.config == {"x": 1} and shard.recon_scale == 7.0
    for i, s in enumerate(samples):
        for name in ("hand", "obj"):
            got, want = shard.get(i, name), getattr(s, name)
            np.testing.assert_array_equal(got.data, want.data)
            np.testing.assert_array_equal(got.part, want.part)
            assert got.num_pos == want.num_pos
    save_shard(tmp_path / "empty.npz", [], [], 7.0, {})
    assert len(load_shard(tmp_path / "empty.npz")) == 0


def test_pseudonormal_hand_sign_agrees_with_winding_on_a_closed_hand():
    hand = trimesh.creation.capsule(height=0.07, radius=0.01, count=(16, 16))
    parts = np.zeros(len(hand.vertices), int)
    obj = trimesh.creation.icosphere(3, radius=0.03)
    obj.apply_translation((0.0, 0.045, 0.0))
    res = {}
    for sign in ("winding", "pseudonormal"):
        cfg = SampleSDFConfig(points_per_mesh=3000, hand_sign=sign)
        res[sign] = sample_pair(hand, parts, obj, np.zeros(3), 7.0, cfg,
                                np.random.default_rng(0))
    a, b = res["winding"].hand.data, res["pseudonormal"].hand.data
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="hand_sign"):
        SampleSDFConfig(hand_sign="normal")
