"""How closely the PyTorch rasteriser follows gsplat: same Gaussians, same cameras,
images and gradients from both backends, compared.

Tolerances (``TOLERANCES``), chosen to pass float32 round-off and to fail any
convention slip (a half-pixel shift or a wrong low-pass moves pixels by ~1e-1):

* images and alphas: mean absolute difference <= 1e-4, maximum <= 5e-3 (gsplat
  tests transmittance in float32 and we in float64, so a pixel right at the
  1e-4 stop may keep one more Gaussian of weight <= 1e-4);
* gradients of means, quaternions, log-scales, opacities and features: relative
  L2 error ``|g_torch - g_gsplat| / |g_gsplat|`` <= 1e-2 per parameter.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .backends import rasterize

TOLERANCES = {"image_mean": 1e-4, "image_max": 5e-3, "grad_rel": 1e-2}


def random_scene(
    num_gaussians: int = 2000, num_cameras: int = 3, width: int = 96, height: int = 72, channels: int = 4,
    sh_degree: int | None = None, seed: int = 0, device: str | torch.device = "cuda",
) -> dict[str, Any]:
    """Gaussians in a unit ball seen by cameras on a circle of radius 3 (some Gaussians
    outside the image or behind the near plane, as in real scenes)."""
    g = torch.Generator().manual_seed(seed)
    n = num_gaussians
    means = torch.randn(n, 3, generator=g) * 0.6
    quats = torch.randn(n, 4, generator=g)
    log_scales = torch.log(0.01 + 0.08 * torch.rand(n, 3, generator=g))
    logit_opacities = torch.randn(n, generator=g) * 1.5
    k = 1 if sh_degree is None else (sh_degree + 1) ** 2
    colors = torch.randn(n, k, channels, generator=g) * (0.3 if sh_degree is not None else 1.0)
    if sh_degree is None:
        colors = colors[:, 0]
    viewmats = []
    for i in range(num_cameras):
        a = 2 * math.pi * i / num_cameras
        centre = torch.tensor([3 * math.cos(a), 3 * math.sin(a), 0.5])
        forward = -centre / centre.norm()
        right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]))
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        c2w = torch.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, centre
        viewmats.append(torch.linalg.inv(c2w))
    f = 0.9 * width
    ks = torch.tensor([[f, 0.0, width / 2 + 0.3], [0.0, f, height / 2 - 0.4], [0.0, 0.0, 1.0]]).repeat(num_cameras, 1, 1)
    tensors = dict(means=means, quats=quats, log_scales=log_scales, logit_opacities=logit_opacities, colors=colors,
                   viewmats=torch.stack(viewmats), Ks=ks)
    return {"tensors": {k: v.to(device) for k, v in tensors.items()}, "width": width, "height": height,
            "sh_degree": sh_degree}


def render_with(backend: str, scene: dict[str, Any], weights: torch.Tensor | None = None, **options) -> dict[str, Any]:
    """Render ``scene`` with ``backend``; returns images, alphas and the gradients of ``sum(image * weights)``."""
    params = {k: scene["tensors"][k].clone().requires_grad_() for k in
              ("means", "quats", "log_scales", "logit_opacities", "colors")}
    image, alpha, _ = rasterize(
        params["means"], params["quats"], params["log_scales"].exp(), torch.sigmoid(params["logit_opacities"]),
        params["colors"], scene["tensors"]["viewmats"], scene["tensors"]["Ks"], scene["width"], scene["height"],
        sh_degree=scene["sh_degree"], backend=backend, **options,
    )
    if weights is None:
        weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(1)).to(image.device)
    (image * weights).sum().backward()
    return {"image": image.detach(), "alpha": alpha.detach(), "grads": {k: v.grad for k, v in params.items()},
            "weights": weights}


def compare_backends(scene: dict[str, Any], **options) -> dict[str, Any]:
    """Errors between the torch and gsplat backends on ``scene`` (needs CUDA)."""
    ref = render_with("gsplat", scene, **options)
    ours = render_with("torch", scene, weights=ref["weights"], **options)
    diff = (ours["image"] - ref["image"]).abs()
    adiff = (ours["alpha"] - ref["alpha"]).abs()
    grads = {}
    for name, g_ref in ref["grads"].items():
        g = ours["grads"][name]
        grads[name] = float((g - g_ref).norm() / g_ref.norm().clamp(min=1e-12))
    report = {
        "image_mean": float(diff.mean()), "image_max": float(diff.max()),
        "alpha_mean": float(adiff.mean()), "alpha_max": float(adiff.max()),
        "grad_rel": grads, "coverage": float((ref["alpha"] > 0.5).float().mean()),
    }
    report["ok"] = bool(
        max(report["image_mean"], report["alpha_mean"]) <= TOLERANCES["image_mean"]
        and max(report["image_max"], report["alpha_max"]) <= TOLERANCES["image_max"]
        and max(grads.values()) <= TOLERANCES["grad_rel"]
    )
    return report
