"""Cameras as rasteriser tensors, latent-resolution intrinsics and smooth camera paths.

Latent resolution: a VAE latent pixel ``(i, j)`` summarises the 8x8 image block
whose corner is ``(8j, 8i)``, so its centre sits at image coordinate
``8 (j + 0.5)``. Under the corner convention used everywhere here (pixel centres
at +0.5, :mod:`splatent_data.camera`) that is exactly the image camera scaled by
1/8: ``fx, fy, cx, cy -> /8``, with no half-pixel shift. (In a centre convention
the same camera reads ``c' = (c + 0.5) / 8 - 0.5``.) When the extractor resized
the image before encoding, scaling to the latent size absorbs that too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from splatent_data import Camera, SceneError


def latent_camera(camera: Camera, height: int, width: int) -> Camera:
    """The camera of a ``height x width`` latent (or any resize) of ``camera``'s image."""
    return camera.scaled(width, height)


def camera_tensors(
    cameras: list[Camera], device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """``(viewmats [C, 4, 4], Ks [C, 3, 3])`` float32 for the rasteriser."""
    for cam in cameras:
        if not cam.is_pinhole:
            raise SceneError(
                f"camera {cam.name} has {cam.model} distortion; the rasteriser models pinhole cameras only: "
                f"run `splatent scene undistort` first"
            )
    viewmats = torch.tensor(np.stack([c.worldtocam for c in cameras]), dtype=torch.float32, device=device)
    ks = torch.tensor(np.stack([c.K for c in cameras]), dtype=torch.float32, device=device)
    return viewmats, ks


def _quat_from_rotmat(rot: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation to a unit quaternion ``wxyz`` (Shepperd's method)."""
    m = rot
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def _rotmat_from_quat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)


def interpolate_path(cameras: list[Camera], num_frames: int, keyframes: int = 12) -> list[Camera]:
    """A smooth path through ``cameras`` (in name order) of ``num_frames`` cameras.

    Uses up to ``keyframes`` evenly spaced cameras as keys, Catmull-Rom splines
    for the centres and slerp for the orientations; intrinsics and image size
    are those of the first camera.
    """
    if len(cameras) < 2:
        raise SceneError("a camera path needs at least two cameras")
    if num_frames < 2:
        raise SceneError(f"a camera path needs at least two frames, got {num_frames}")
    ordered = sorted(cameras, key=lambda c: c.name)
    idx = np.unique(np.linspace(0, len(ordered) - 1, min(keyframes, len(ordered))).round().astype(int))
    keys = [ordered[i] for i in idx]
    centres = np.stack([k.center for k in keys])
    quats = [_quat_from_rotmat(k.camtoworld[:3, :3]) for k in keys]
    segments = len(keys) - 1
    path = []
    for f in range(num_frames):
        s = f / (num_frames - 1) * segments
        i = min(int(np.floor(s)), segments - 1)
        t = s - i
        p0, p1, p2, p3 = (centres[max(i - 1, 0)], centres[i], centres[i + 1], centres[min(i + 2, segments)])
        centre = 0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                        + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3)
        c2w = np.eye(4)
        c2w[:3, :3] = _rotmat_from_quat(_slerp(quats[i], quats[i + 1], t))
        c2w[:3, 3] = centre
        base = ordered[0]
        path.append(Camera(
            name=f"path_{f:04d}", image_path=base.image_path, width=base.width, height=base.height,
            fx=base.fx, fy=base.fy, cx=base.cx, cy=base.cy, camtoworld=c2w,
        ))
    return path
