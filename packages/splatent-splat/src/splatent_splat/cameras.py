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

from splatent_data import Camera, SceneError, view_order


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


def interpolate_path(cameras: list[Camera], num_frames: int, keyframes: int = 12) -> list[Camera]:
    """A smooth path through ``cameras`` (in name order, numbers read as numbers) of ``num_frames`` cameras.

    Up to ``keyframes`` evenly spaced cameras are the keys: scipy's natural cubic spline through their centres and
    its spherical linear interpolation (``Slerp``) between their orientations; intrinsics and image size are those
    of the first camera.
    """
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, Slerp

    if len(cameras) < 2:
        raise SceneError("a camera path needs at least two cameras")
    if num_frames < 2:
        raise SceneError(f"a camera path needs at least two frames, got {num_frames}")
    ordered = sorted(cameras, key=lambda c: view_order(c.name))  # frame_2 before frame_10: the capture's order
    idx = np.unique(np.linspace(0, len(ordered) - 1, min(keyframes, len(ordered))).round().astype(int))
    keys = [ordered[i] for i in idx]
    times = np.arange(len(keys), dtype=np.float64)
    at = np.linspace(0.0, times[-1], num_frames)
    centres = CubicSpline(times, np.stack([k.center for k in keys]), bc_type="natural")(at)
    rotations = Slerp(times, Rotation.from_matrix(np.stack([k.camtoworld[:3, :3] for k in keys])))(at).as_matrix()
    base = ordered[0]
    path = []
    for f in range(num_frames):
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = rotations[f], centres[f]
        path.append(Camera(
            name=f"path_{f:04d}", image_path=base.image_path, width=base.width, height=base.height,
            fx=base.fx, fy=base.fy, cx=base.cx, cy=base.cy, camtoworld=c2w,
        ))
    return path
