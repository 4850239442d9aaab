"""Training augmentation as the reference's ``get_aug_config`` / ``generate_patch_image``,
made exactly consistent between the image and the 3D annotations.

An augmentation is an in-plane rotation ``R = R_z(angle)`` of the camera frame (about the optical
axis), a zoom about the principal point, a shift, a resize to the network's input size and a
per-channel colour scale. The image is warped by the affine map ``A = S T Z (K R K^-1)``
(``K R_z K^-1`` is affine for any pinhole ``K``), the 3D quantities are rotated by ``R`` and the new
intrinsics are ``K' = S T Z K``. So for every 3D point ``p``: ``proj(K', R p) = A proj(K, p)``:
an augmented joint projected with the augmented intrinsics lands on the augmented image exactly
where the original joint was on the original image. Pixel coordinates follow OpenCV (integer
coordinates at pixel centres), so the resize is ``u' = s u + (s - 1) / 2``.

Reference values (gSDF ``base_dataset.get_aug_config``): rotation ``clip(N(0,1), -2, 2) * 45``
degrees with probability 0.6, colour scale ``U(0.8, 1.2)`` per channel, no scale jitter on ObMan
(``scale_factor`` 0) and no flip; DexYCB adds a shift of up to 10% of the crop
(``trans_factor`` 0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    """Augmentation settings (defaults: the reference's ObMan values).

    Attributes:
        rot_factor: rotation angle = clip(N(0,1), -2, 2) * rot_factor, degrees.
        rot_prob: probability of rotating at all.
        scale_factor: zoom = 1 + clip(N(0,1), -1, 1) * scale_factor.
        trans_factor: shift = U(-f, f) * image size, pixels, per axis.
        color_factor: colour scale U(1 - f, 1 + f) per channel.
    """

    rot_factor: float = 45.0
    rot_prob: float = 0.6
    scale_factor: float = 0.0
    trans_factor: float = 0.0
    color_factor: float = 0.2


@dataclass
class Augmentation:
    """One draw of the augmentation (the identity by default).

    Attributes:
        angle: in-plane rotation, radians (about the camera z axis).
        zoom: image zoom about the principal point (> 1 enlarges).
        shift: (2,) fraction of the image size the content moves by (x, y).
        color: (3,) per-channel scale of the RGB values.
    """

    angle: float = 0.0
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


def resolve_aug(dataset_aug: Mapping[str, Any] | None,
                train_aug: Mapping[str, Any] | None) -> dict[str, float] | None:
    """The augmentation settings of a training run: the dataset's defaults
    (``datasets.{name}.aug``, e.g. DexYCB's ``trans_factor: 0.1``), overridden key by key by the
    experiment's ``train.aug``; ``None`` when neither sets anything (the :class:`AugmentConfig`
    defaults, the reference's ObMan values).

    Raises:
        ConfigError: an unknown key, naming the allowed ones.
    """
    from gsdf.config import from_dict, to_dict

    merged = {**(dataset_aug or {}), **(train_aug or {})}
    if not merged:
        return None
    where = "train.aug" if train_aug else "datasets.<dataset>.aug"
    return to_dict(from_dict(AugmentConfig, merged, where))


def sample_augmentation(cfg: AugmentConfig, rng: np.random.Generator) -> Augmentation:
    """Draw one augmentation as the reference does."""
    angle = 0.0
    if rng.random() <= cfg.rot_prob:
        angle = float(np.clip(rng.standard_normal(), -2.0, 2.0) * cfg.rot_factor)
    zoom = float(1.0 + np.clip(rng.standard_normal(), -1.0, 1.0) * cfg.scale_factor)
    shift = tuple(float(v) for v in rng.uniform(-cfg.trans_factor, cfg.trans_factor, 2))
    color = tuple(float(v) for v in rng.uniform(1 - cfg.color_factor, 1 + cfg.color_factor, 3))
    return Augmentation(np.deg2rad(angle), zoom, shift, color)


def rotation_z(angle: float) -> np.ndarray:
    """(3, 3) rotation about the camera z (optical) axis by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def geometry(aug: Augmentation, cam_intr: np.ndarray, src_hw: tuple[int, int],
             out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maps of one augmentation.

    Args:
        aug: the augmentation.
        cam_intr: (3, 3) intrinsics of the source image.
        src_hw: source image (height, width), pixels.
        out_hw: output image (height, width), pixels.
    Returns:
        ``A`` (3, 3) pixel map source -> output, ``R`` (3, 3) rotation of camera-frame points,
        ``K'`` (3, 3) intrinsics of the output image.
    """
    K = np.asarray(cam_intr, dtype=np.float64)
    R = rotation_z(aug.angle)
    H_rot = K @ R @ np.linalg.inv(K)  # affine: last row (0, 0, 1)
    cx, cy = K[0, 2], K[1, 2]
    z = aug.zoom
    Z = np.array([[z, 0.0, cx * (1 - z)], [0.0, z, cy * (1 - z)], [0.0, 0.0, 1.0]])
    T = np.array([[1.0, 0.0, aug.shift[0] * src_hw[1]], [0.0, 1.0, aug.shift[1] * src_hw[0]],
                  [0.0, 0.0, 1.0]])
    sy, sx = out_hw[0] / src_hw[0], out_hw[1] / src_hw[1]
    S = np.array([[sx, 0.0, 0.5 * (sx - 1)], [0.0, sy, 0.5 * (sy - 1)], [0.0, 0.0, 1.0]])
    M = S @ T @ Z
    A = M @ H_rot
    A[2] = (0.0, 0.0, 1.0)  # remove round-off
    return A, R, M @ K


def warp_image(image: np.ndarray, A: np.ndarray, out_hw: tuple[int, int],
               color: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Apply the pixel map ``A`` (3, 3) and the colour scale to an (H, W, 3) uint8 image."""
    h, w = out_hw
    is_resize = np.allclose(A[0, 1], 0) and np.allclose(A[1, 0], 0) and np.allclose(
        A[:2, 2], [0.5 * (A[0, 0] - 1), 0.5 * (A[1, 1] - 1)])
    if is_resize and (h, w) == image.shape[:2]:
        out = image.copy()
    elif is_resize and h <= image.shape[0]:
        out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    else:
        out = cv2.warpAffine(image, A[:2], (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if tuple(color) != (1.0, 1.0, 1.0):
        out = np.clip(out.astype(np.float32) * np.asarray(color, np.float32), 0, 255)
        out = out.astype(np.uint8)
    return out


def rotate_axis_angle(R: np.ndarray, axis_angle: np.ndarray) -> np.ndarray:
    """(3,) axis-angle of ``R @ rotation(axis_angle)``."""
    rot, _ = cv2.Rodrigues(np.asarray(axis_angle, np.float64).reshape(3, 1))
    out, _ = cv2.Rodrigues(R @ rot)
    return out.reshape(3)


__all__ = ["AugmentConfig", "Augmentation", "geometry", "resolve_aug", "rotate_axis_angle",
           "rotation_z", "sample_augmentation", "warp_image"]
