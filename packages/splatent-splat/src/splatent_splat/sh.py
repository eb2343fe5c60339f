"""Real spherical harmonics for view-dependent features of any channel count.

gsplat's SH kernel is written for 3-channel colours; latents have 4 (SD's VAE) or 32 (taef2) channels. Two
evaluations with the same constants and ordering (gsplat's and the original 3DGS's, degree 0-3):

* ``backend="torch"``: the bases in PyTorch contracted with ``[..., K, D]`` coefficients (any device; the
  reference);
* ``backend="gsplat"``: gsplat's CUDA kernel, fed the channels in groups of three (zero-padded): one kernel
  forward and one backward instead of the ~60 small ones of the PyTorch path, which a latent fit, bound by
  kernel launches, pays every step. ``tests/test_gpu.py`` checks the two agree (values and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814
MAX_SH_DEGREE = 3


def num_sh_bases(degree: int) -> int:
    """``(degree + 1) ** 2``: coefficients per channel for SH of ``degree``."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be 0..{MAX_SH_DEGREE}, got {degree}")
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values at unit directions.

    Args:
        degree: 0..3.
        dirs: ``[..., 3]`` unit directions.

    Returns:
        ``[..., (degree + 1) ** 2]`` in the order of gsplat's ``_eval_sh_bases_fast``.
    """
    num_sh_bases(degree)
    c0 = torch.full_like(dirs[..., 0], SH_C0)
    if degree == 0:
        return c0[..., None]
    x, y, z = dirs.unbind(-1)
    a1 = 0.48860251190292
    bases = [c0, -a1 * y, a1 * z, -a1 * x]
    if degree >= 2:
        z2 = z * z
        fc1, fs1 = x * x - y * y, 2 * x * y
        b2 = -1.092548430592079 * z
        bases += [0.5462742152960395 * fs1, b2 * y, 0.9461746957575601 * z2 - 0.3153915652525201,
                  b2 * x, 0.5462742152960395 * fc1]
    if degree >= 3:
        c3 = -2.285228997322329 * z2 + 0.4570457994644658
        b3 = 1.445305721320277 * z
        a3 = -0.5900435899266435
        fc2, fs2 = x * fc1 - y * fs1, x * fs1 + y * fc1
        bases += [a3 * fs2, b3 * fs1, c3 * y, z * (1.865881662950577 * z2 - 1.119528997770346),
                  c3 * x, b3 * fc1, a3 * fc2]
    return torch.stack(bases, dim=-1)


def eval_sh(degree: int, dirs: Tensor | None, coeffs: Tensor, backend: str = "torch") -> Tensor:
    """Evaluate SH features toward ``dirs`` (normalised here).

    Args:
        degree: Degree to use; ``coeffs`` may hold more bands (only the first
            ``(degree + 1) ** 2`` are read), as in gsplat's progressive SH.
        dirs: ``[..., 3]`` directions from the camera to the Gaussians; may be
            ``None`` for degree 0, which does not depend on direction.
        coeffs: ``[..., K, D]`` coefficients, ``K >= (degree + 1) ** 2``.
        backend: ``"torch"`` or ``"gsplat"`` (CUDA tensors; see the module doc).

    Returns:
        ``[..., D]`` (batch shape broadcast between ``dirs`` and ``coeffs``).
    """
    k = num_sh_bases(degree)
    if coeffs.shape[-2] < k:
        raise ValueError(f"SH degree {degree} needs {k} coefficients per channel, got {coeffs.shape[-2]}")
    if degree == 0:
        dc = SH_C0 * coeffs[..., 0, :]
        if dirs is None:
            return dc
        return dc.expand(torch.broadcast_shapes(dirs.shape[:-1], dc.shape[:-1]) + dc.shape[-1:])
    if backend == "gsplat":
        return _eval_sh_gsplat(degree, dirs, coeffs[..., :k, :])
    bases = sh_bases(degree, F.normalize(dirs, dim=-1))
    return (bases[..., None] * coeffs[..., :k, :]).sum(dim=-2)


def _eval_sh_gsplat(
    degree: int,
    dirs: Tensor,  # [..., 3]
    coeffs: Tensor,  # [..., K, D]
) -> Tensor:  # [..., D]
    """gsplat's SH kernel on ``D`` channels: ``ceil(D / 3)`` groups of three, each group its own "colour"."""
    from gsplat import spherical_harmonics

    channels, bases = coeffs.shape[-1], coeffs.shape[-2]
    groups = -(-channels // 3)
    batch = torch.broadcast_shapes(dirs.shape[:-1], coeffs.shape[:-2])
    if groups * 3 != channels:
        coeffs = F.pad(coeffs, (0, groups * 3 - channels))
    grouped = coeffs.unflatten(-1, (groups, 3)).transpose(-3, -2)  # [..., G, K, 3]
    grouped = grouped.expand(*batch, groups, bases, 3)
    out = spherical_harmonics(degree, dirs[..., None, :].expand(*batch, groups, 3), grouped)  # [..., G, 3]
    return out.flatten(-2)[..., :channels]


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """The DC coefficient that renders as ``rgb`` under gsplat's ``SH + 0.5`` convention."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh0: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_sh`."""
    return sh0 * SH_C0 + 0.5
