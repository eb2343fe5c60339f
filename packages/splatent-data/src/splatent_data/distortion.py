"""Lens distortion in COLMAP's conventions, on normalised image coordinates.

``distort`` maps ideal pinhole coordinates ``(x, y) = (X/Z, Y/Z)`` to distorted
ones; ``undistort`` inverts it by Newton's method (as COLMAP does). Both are
vectorised numpy and are checked against pycolmap in the tests.
"""

from __future__ import annotations

import numpy as np


def distort_points(xy: np.ndarray, model: str, params: tuple[float, ...]) -> np.ndarray:
    """``[N, 2]`` ideal normalised coordinates -> ``[N, 2]`` distorted ones."""
    x, y = xy[:, 0], xy[:, 1]
    if model == "PINHOLE" or not params:
        return xy.copy()
    r2 = x * x + y * y
    if model == "SIMPLE_RADIAL":
        f = 1.0 + params[0] * r2
        return np.stack([x * f, y * f], axis=-1)
    if model == "RADIAL":
        f = 1.0 + params[0] * r2 + params[1] * r2 * r2
        return np.stack([x * f, y * f], axis=-1)
    if model in ("OPENCV", "FULL_OPENCV"):
        k1, k2, p1, p2, *rest = params
        k3, k4, k5, k6 = (list(rest) + [0.0] * 4)[:4]
        radial = (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3) / (1 + k4 * r2 + k5 * r2**2 + k6 * r2**3)
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + 2 * p2 * x * y + p1 * (r2 + 2 * y * y)
        return np.stack([xd, yd], axis=-1)
    if model == "OPENCV_FISHEYE":
        k1, k2, k3, k4 = params
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4)
        scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
        return np.stack([x * scale, y * scale], axis=-1)
    raise ValueError(f"unknown distortion model {model!r}")


def undistort_points(xy_d: np.ndarray, model: str, params: tuple[float, ...], iters: int = 100) -> np.ndarray:
    """``[N, 2]`` distorted normalised coordinates -> ideal ones (Newton, numeric Jacobian)."""
    if model == "PINHOLE" or not params:
        return xy_d.copy()
    xy = xy_d.copy()
    eps = 1e-9
    for _ in range(iters):
        residual = distort_points(xy, model, params) - xy_d
        if np.max(np.abs(residual)) < 1e-12:
            break
        dx = (distort_points(xy + [eps, 0.0], model, params) - distort_points(xy - [eps, 0.0], model, params)) / (2 * eps)
        dy = (distort_points(xy + [0.0, eps], model, params) - distort_points(xy - [0.0, eps], model, params)) / (2 * eps)
        a, b, c, d = dx[:, 0], dy[:, 0], dx[:, 1], dy[:, 1]
        det = a * d - b * c
        det = np.where(np.abs(det) < 1e-15, 1e-15, det)
        xy = xy - np.stack([(d * residual[:, 0] - b * residual[:, 1]) / det,
                            (-c * residual[:, 0] + a * residual[:, 1]) / det], axis=-1)
    return xy
