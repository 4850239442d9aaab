import numpy as np
import pytest
import trimesh

from gsdf.geometry.mesh_io import MeshError, load_mesh, load_vertex_parts, save_mesh


def test_round_trip_keeps_order_and_parts(tmp_path):
    sphere = trimesh.creation.icosphere(2)
    parts = np.arange(len(sphere.vertices)) % 6
    save_mesh(tmp_path / "h.ply", sphere.vertices, sphere.faces, vertex_parts=parts)
    m = load_mesh(tmp_path / "h.ply")
    np.testing.assert_allclose(m.vertices, sphere.vertices)
    np.testing.assert_array_equal(m.faces, sphere.faces)
    np.testing.assert_array_equal(load_vertex_parts(m), parts)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(MeshError, match="not found"):
        load_mesh(tmp_path / "missing.ply")
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat garbage\n")
    with pytest.raises(MeshError, match="bad.ply"):
        load_mesh(tmp_path / "bad.ply")
    v = np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], float)
    save_mesh(tmp_path / "nan.ply", v, [[0, 1, 2]])
    with pytest.raises(MeshError, match="NaN"):
        load_mesh(tmp_path / "nan.ply")
    box = trimesh.creation.box()
    save_mesh(tmp_path / "box.ply", box.vertices, box.faces)
    with pytest.raises(MeshError, match="part"):
        load_vertex_parts(load_mesh(tmp_path / "box.ply"), tmp_path / "box.ply")
