"""The synthetic pinhole camera (OpenCV convention: x right, y down, z forward; metres)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics in pixels and the image size.

    Defaults are the synthetic dataset's camera (DESIGN.md section 4): fx = fy = 480,
    cx = cy = 128, 256x256 pixels.
    """

    fx: float = 480.0
    fy: float = 480.0
    cx: float = 128.0
    cy: float = 128.0
    width: int = 256
    height: int = 256

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (N, 2) of camera-space points (N, 3) with z > 0."""
        points = np.asarray(points, dtype=np.float64)
        z = points[:, 2:3]
        return np.concatenate([self.fx * points[:, :1] / z + self.cx,
                               self.fy * points[:, 1:2] / z + self.cy], axis=1)

    def rays(self, supersample: int = 1) -> np.ndarray:
        """Unit ray directions through a regular sub-pixel grid.

        Returns:
            (H, W, s*s, 3) float64 directions, sub-sample offsets ``(i + 0.5) / s`` inside each
            pixel (pixel ``(u, v)`` covers ``[u, u+1) x [v, v+1)``).
        """
        s = int(supersample)
        off = (np.arange(s) + 0.5) / s
        ou, ov = np.meshgrid(off, off, indexing="xy")  # (s, s)
        u = np.arange(self.width)[None, :, None] + ou.reshape(1, 1, -1)  # (1, W, s*s)
        v = np.arange(self.height)[:, None, None] + ov.reshape(1, 1, -1)  # (H, 1, s*s)
        x = np.broadcast_to((u - self.cx) / self.fx, (self.height, self.width, s * s))
        y = np.broadcast_to((v - self.cy) / self.fy, (self.height, self.width, s * s))
        d = np.stack([x, y, np.ones_like(x)], axis=-1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


def fit_depth(points: np.ndarray, camera: Camera, margin_px: float = 10.0,
              center_px: tuple[float, float] = (0.0, 0.0)) -> float:
    """Smallest depth ``d`` such that ``points + (0, 0, d)`` project inside the image.

    The points are first shifted laterally so that their centroid sits on the ray through the
    principal point offset by ``center_px``; the shift scales with ``d``, so it is applied as an
    angle (pixel offset / focal).

    Args:
        points: (N, 3) points relative to their centre, camera axes, metres.
        camera: the camera.
        margin_px: keep every point this many pixels inside the border.
        center_px: (du, dv) pixel offset of the centre from the principal point.

    Returns:
        The depth of the centre, metres.
    """
    du, dv = center_px
    half_w = min(camera.cx + du, camera.width - camera.cx - du) - margin_px
    half_h = min(camera.cy + dv, camera.height - camera.cy - dv) - margin_px
    if half_w <= 0 or half_h <= 0:
        raise ValueError("centre offset and margin leave no room in the image")
    # pixel x of a point = fx * (x + d*du/fx) / (z + d) + cx = cx + du + fx*(x - z*du/fx)/(z + d)
    ex = np.abs(points[:, 0] - points[:, 2] * du / camera.fx)
    ey = np.abs(points[:, 1] - points[:, 2] * dv / camera.fy)
    need = np.maximum(camera.fx * ex / half_w - points[:, 2],
                      camera.fy * ey / half_h - points[:, 2])
    return float(max(need.max(), 1e-3 - points[:, 2].min()))
