"""Analytic signed distance fields shared by the meshing tests (hand-frame units). Not a test
module."""

from __future__ import annotations

import numpy as np

# A finger-like capsule 1.5 cm thick: radius 0.75 cm in metres times recon_scale / 2 = 3.5.
FINGER_RADIUS = 0.0075 * 3.5


def sphere(p, c=(0.1, 0.05, -0.1), r=0.4):
    return np.linalg.norm(p - np.asarray(c), axis=1) - r


def box(p, c=(0.0, 0.1, 0.0), h=(0.3, 0.2, 0.15)):
    q = np.abs(p - np.asarray(c)) - np.asarray(h)
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)


def capsule(p, a=(-0.3, 0.0, 0.02), b=(0.3, 0.1, 0.0), r=FINGER_RADIUS):
    a, b = np.asarray(a), np.asarray(b)
    pa, ba = p - a, b - a
    t = np.clip(pa @ ba / (ba @ ba), 0.0, 1.0)
    return np.linalg.norm(pa - t[:, None] * ba, axis=1) - r
