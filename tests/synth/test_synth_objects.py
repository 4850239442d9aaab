"""Procedural object families, user meshes and the mesh signed distance."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from gsdf.config import ConfigError, from_dict
from gsdf.synth.config import SynthConfig
from gsdf.synth.objects import (
    FAMILIES,
    MeshSDF,
    bbox_corners,
    load_user_meshes,
    make_object,
    revolve,
    scale_object,
)


def test_at_least_six_families():
    assert len(FAMILIES) >= 6
    expected = {"box", "cylinder", "ellipsoid", "capsule", "torus", "frustum", "bottle"}
    assert expected <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("size", [0.03, 0.12, 0.20])
def test_family_is_closed_and_sized(family, size):
    rng = np.random.default_rng(3)
    obj = make_object(family, rng, size, min_thickness=0.03)
    mesh = trimesh.Trimesh(obj.vertices, obj.faces, process=False)
    assert mesh.is_watertight, family
    assert mesh.volume > 0, f"{family}: faces point inwards"
    ext = obj.extents
    assert ext.max() == pytest.approx(size, rel=1e-9)
    if size >= 0.06:  # at 3 cm everything is thin; the thickness floor applies from 2x up
        assert ext.min() >= 0.03 * 0.8 - 1e-9, (family, ext)
    assert np.abs(obj.rest_center).max() < 1e-9  # centred on the bounding box


def test_bad_family_and_size():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown object family.*boxx"):
        make_object("boxx", rng, 0.1)
    with pytest.raises(ValueError, match="> 0"):
        make_object("box", rng, 0.0)
    with pytest.raises(ConfigError, match="synth.families.*boxx"):
        from_dict(SynthConfig, {"families": ["box", "boxx"]}, "synth")
    with pytest.raises(ConfigError, match="obj_size"):
        from_dict(SynthConfig, {"obj_size": [-0.1, 0.2]}, "synth")


def test_revolve_cone_volume():
    h, r = 0.1, 0.04
    v, f = revolve(np.array([[0, 0], [r, 0], [1e-9, h], [0, h]]), sections=256)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(np.pi * r * r * h / 3, rel=1e-3)
    with pytest.raises(ValueError):
        revolve(np.array([[0.01, 0], [0.02, 0.1], [0, 0.1]]))


def test_bbox_corners_order():
    pts = np.array([[0, 0, 0], [1, 2, 3.0]])
    c = bbox_corners(pts)
    assert c.shape == (8, 3)
    assert np.allclose(c[0], [0, 0, 0]) and np.allclose(c[7], [1, 2, 3])
    assert np.allclose(c[1], [1, 0, 0]) and np.allclose(c[2], [0, 2, 0])


@pytest.mark.parametrize("open_mesh", [False, True])
def test_mesh_sdf_sphere(open_mesh):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.05)
    faces = sphere.faces[:-3] if open_mesh else sphere.faces  # a small hole: winding number
    sdf = MeshSDF(sphere.vertices, faces)
    assert sdf.watertight is not open_mesh
    rng = np.random.default_rng(0)
    p = rng.normal(size=(500, 3))
    p *= (rng.uniform(0.0, 0.1, 500) / np.linalg.norm(p, axis=1))[:, None]
    expect = np.linalg.norm(p, axis=1) - 0.05
    assert np.abs(sdf(p) - expect).max() < 5e-4  # faceting of the icosphere
    bounded = sdf(p, bound=0.01)
    near = np.abs(expect) < 0.009
    assert np.allclose(bounded[near], sdf(p)[near])
    assert np.isinf(bounded[np.abs(expect) > 0.011]).all()


def test_user_meshes_skip_unreadable(tmp_path):
    trimesh.creation.box(extents=[1, 2, 3]).export(tmp_path / "a_box.ply")
    trimesh.creation.icosphere(radius=10).export(tmp_path / "b_ball.obj")
    (tmp_path / "c_broken.ply").write_bytes(b"ply\nformat garbage\n")
    (tmp_path / "d_empty.obj").write_text("# nothing\n")
    (tmp_path / "notes.txt").write_text("not a mesh")
    user = load_user_meshes(tmp_path)
    assert [m.family for m in user.meshes] == ["user:a_box.ply", "user:b_ball.obj"]
    assert len(user.skipped) == 2
    assert {p.split("/")[-1] for p, _ in user.skipped} == {"c_broken.ply", "d_empty.obj"}
    obj = scale_object(user.meshes[0], 0.15)
    assert obj.extents.max() == pytest.approx(0.15)
    assert np.abs(obj.rest_center).max() < 1e-9


def test_user_meshes_bad_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_user_meshes(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no mesh file"):
        load_user_meshes(tmp_path)
    (tmp_path / "x.ply").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="none of the 1 files"):
        load_user_meshes(tmp_path)
