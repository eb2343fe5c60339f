"""``rasterize``: one door to gsplat's CUDA rasteriser and the PyTorch reference.

Both backends take the same tensors in gsplat's conventions (world-to-camera
``viewmats``, pixel centres at +0.5, EWA with ``eps2d`` low-pass) and return the
same ``(colors, alphas, meta)``; ``tests/test_gpu.py`` checks that they agree.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from splatent_data import SplatentError

from .sh import eval_sh
from .torch_backend import rasterize_torch

logger = logging.getLogger("splatent")

BACKENDS = ("auto", "gsplat", "torch")
_noted_fallback = False


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """``"gsplat"`` or ``"torch"`` for tensors on ``device``.

    ``auto`` picks gsplat for CUDA tensors and the PyTorch rasteriser otherwise,
    saying so once; ``gsplat`` on a CPU device is refused with a clear message
    (its CUDA extension cannot run there).
    """
    if backend not in BACKENDS:
        raise SplatentError(f"unknown rasteriser backend {backend!r}; use one of {', '.join(BACKENDS)}")
    on_cuda = torch.device(device).type == "cuda"
    if backend == "gsplat" and not on_cuda:
        raise SplatentError(
            "the gsplat backend needs a CUDA device; use --backend torch (small scenes) or run on a GPU"
        )
    if backend == "auto":
        backend = "gsplat" if on_cuda else "torch"
        global _noted_fallback
        if backend == "torch" and not _noted_fallback:
            _noted_fallback = True
            logger.info("no CUDA device: rasterising with the pure-PyTorch backend (fine for small scenes only)")
    return backend


def camera_positions(viewmats: Tensor) -> Tensor:
    """``[C, 3]`` camera centres from ``[C, 4, 4]`` world-to-camera matrices."""
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return -torch.einsum("cji,cj->ci", rot, trans)


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D], [C, N, D], or SH coefficients [N, K, D] when sh_degree is set
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int | None = None,
    backend: str = "auto",
    backgrounds: Tensor | None = None,  # [C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
    packed: bool = True,
    absgrad: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """Render ``C`` views of ``N`` Gaussians with ``D``-channel features.

    Args:
        means, quats, scales, opacities: Activated Gaussian parameters (quaternions
            ``wxyz``, normalised inside; scales after ``exp``; opacities after sigmoid).
        colors: Post-activation features, per Gaussian ``[N, D]`` or per view
            ``[C, N, D]``; or, with ``sh_degree`` set, SH coefficients ``[N, K, D]``
            evaluated toward each camera and activated as gsplat does for RGB
            (``clamp_min(sh + 0.5, 0)``). Any ``D``: gsplat's own SH path is used
            for ``D == 3``, its kernel on groups of three channels otherwise
            (:func:`splatent_splat.eval_sh`), PyTorch on the torch backend.
        viewmats: World-to-camera, OpenCV axes.
        Ks: Pinhole intrinsics in pixels, corner convention (pixel centres at +0.5).
        width, height: Image size in pixels.
        backend: ``auto`` (gsplat on CUDA, else torch), ``gsplat`` or ``torch``.
        backgrounds: Colour behind the Gaussians, per view.
        eps2d: Low-pass added to the 2D covariance (gsplat's default 0.3).
        rasterize_mode: ``classic`` or ``antialiased`` (Mip-Splatting compensation).
        packed: gsplat's memory-saving packed layout (gsplat backend only).
        absgrad: Keep absolute 2D-mean gradients (gsplat backend only; AbsGS densification).

    Returns:
        ``(colors [C, H, W, D], alphas [C, H, W, 1], meta)``. ``meta`` is gsplat's
        info dict (``means2d``, ``radii``, ``gaussian_ids``, ``width``, ``height``,
        ``n_cameras``, ...) with ``packed`` and ``backend`` added, ready for
        gsplat's densification strategies.
    """
    backend = resolve_backend(backend, means.device)
    if sh_degree is not None and (backend == "torch" or colors.shape[-1] != 3):
        dirs = means[None, :, :] - camera_positions(viewmats)[:, None, :]  # [C, N, 3]
        colors = torch.clamp_min(eval_sh(sh_degree, dirs, colors, backend=backend) + 0.5, 0.0)
        sh_degree = None
    if backend == "torch":
        if absgrad:
            raise SplatentError("absgrad needs the gsplat backend; drop --absgrad on the torch backend")
        render, alphas, meta = rasterize_torch(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=near_plane,
            far_plane=far_plane, eps2d=eps2d, backgrounds=backgrounds, rasterize_mode=rasterize_mode,
        )
    else:
        from gsplat import rasterization

        render, alphas, meta = rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=near_plane,
            far_plane=far_plane, eps2d=eps2d, sh_degree=sh_degree, packed=packed, backgrounds=backgrounds,
            rasterize_mode=rasterize_mode, absgrad=absgrad,
        )
        meta["packed"] = packed
    meta["backend"] = backend
    return render, alphas, meta
