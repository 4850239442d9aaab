"""Camera and renderer against analytic geometry."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from gsdf.synth.camera import Camera, fit_depth
from gsdf.synth.render import HAND, OBJECT, Lighting, RenderMesh, render


def _light() -> Lighting:
    return Lighting(np.full(3, 0.3), np.array([[0.0, 0.0, -1.0]]), np.array([[0.7, 0.7, 0.7]]))


def test_camera_defaults_and_projection():
    cam = Camera()
    assert np.allclose(cam.K, [[480, 0, 128], [0, 480, 128], [0, 0, 1]])
    uv = cam.project(np.array([[0.0, 0.0, 0.5], [0.1, -0.05, 0.5]]))
    assert np.allclose(uv, [[128, 128], [128 + 96, 128 - 48]])
    rays = cam.rays(2)
    assert rays.shape == (256, 256, 4, 3)
    assert np.allclose(np.linalg.norm(rays, axis=-1), 1)
    # every sub-pixel ray projects back inside its own pixel
    pix = cam.project(rays.reshape(-1, 3)).reshape(256, 256, 4, 2)
    v, u = np.mgrid[0:256, 0:256]
    assert (np.floor(pix[..., 0]) == u[..., None]).all()
    assert (np.floor(pix[..., 1]) == v[..., None]).all()


def test_fit_depth_keeps_points_inside():
    cam = Camera()
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 3)) * [0.08, 0.05, 0.04]
    for px in [(0.0, 0.0), (10.0, -8.0)]:
        d = fit_depth(pts, cam, margin_px=6, center_px=px)
        t = d * np.array([px[0] / cam.fx, px[1] / cam.fy, 1.0])
        uv = cam.project(pts + t)
        assert uv.min() >= 6 - 1e-6 and uv.max() <= 250 + 1e-6
        # tight: the worst point sits on the (symmetric about the centre) limit
        half = np.array([min(128 + px[0], 128 - px[0]), min(128 + px[1], 128 - px[1])]) - 6
        assert (np.abs(uv - (128 + np.array(px))) / half).max() == pytest.approx(1.0)
        assert np.allclose(cam.project(t[None])[0], [128 + px[0], 128 + px[1]])


def test_render_sphere_mask_depth_and_antialiasing():
    cam = Camera()
    r, z = 0.05, 0.5
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=r)
    verts = sphere.vertices + [0, 0, z]
    bg = np.zeros((256, 256, 3))
    out = render([RenderMesh(verts, sphere.faces, np.array([1.0, 0.5, 0.25]), OBJECT)], cam,
                 _light(), bg, supersample=2)
    assert out.rgb.shape == (256, 256, 3) and out.rgb.dtype == np.uint8
    assert set(np.unique(out.mask)) == {0, OBJECT}
    # silhouette radius of a sphere seen from distance z: f * r / sqrt(z^2 - r^2)
    rad = 480 * r / np.sqrt(z * z - r * r)
    assert (out.mask == OBJECT).sum() == pytest.approx(np.pi * rad * rad, rel=0.02)
    assert out.depth[128, 128] == pytest.approx(z - r, abs=2e-4)
    assert (out.depth[out.mask == 0] == 0).all()
    # Lambert: the centre faces the light (1.0 * (0.3 + 0.7)), the rim is darker
    assert out.rgb[128, 128, 0] >= 250
    # anti-aliasing: edge pixels mix the object and the black background
    edge = (out.mask == 0) & (out.rgb[..., 0] > 0)  # background pixels partly covered
    assert edge.sum() > 30
    plain = render([RenderMesh(verts, sphere.faces, np.array([1.0, 0.5, 0.25]), OBJECT)], cam,
                   _light(), bg, supersample=1)
    assert ((plain.mask == 0) & (plain.rgb[..., 0] > 0)).sum() == 0


def test_render_occlusion_nearest_wins():
    cam = Camera()
    big = trimesh.creation.box(extents=[0.1, 0.1, 0.01])
    small = trimesh.creation.box(extents=[0.04, 0.04, 0.01])
    meshes = [RenderMesh(big.vertices + [0, 0, 0.6], big.faces, np.ones(3), HAND),
              RenderMesh(small.vertices + [0, 0, 0.5], small.faces, np.ones(3), OBJECT, 0.5)]
    out = render(meshes, cam, _light(), np.zeros((256, 256, 3)), supersample=1)
    assert out.mask[128, 128] == OBJECT and out.depth[128, 128] == pytest.approx(0.495, abs=1e-4)
    # 30 px off centre: outside the small box (19 px half width), inside the big one (40 px)
    assert out.mask[128, 158] == HAND and out.depth[128, 158] == pytest.approx(0.595, abs=1e-4)
    with pytest.raises(ValueError, match="background"):
        render(meshes, cam, _light(), np.zeros((10, 10, 3)))
