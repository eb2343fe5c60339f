"""Photometric losses and metrics on ``[B, C, H, W]`` maps of any channel count.

Latent PSNR is ``10 log10(R^2 / MSE)`` with ``R`` the dynamic range (max - min)
of the scene's training latents, fixed per scene and stored with the model, so
numbers compare across steps and views of one scene (not across codecs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM (Wang et al. 2004) with an 11x11 Gaussian window, as 3DGS computes it.

    Args:
        pred, target: ``[B, C, H, W]``.
        data_range: Value range, for the stabilising constants ``(0.01 R)^2, (0.03 R)^2``.
    """
    channels = pred.shape[1]
    win = _gaussian_window(window, sigma, channels, pred)
    pad = window // 2
    mu_x = F.conv2d(pred, win, padding=pad, groups=channels)
    mu_y = F.conv2d(target, win, padding=pad, groups=channels)
    sxx = F.conv2d(pred * pred, win, padding=pad, groups=channels) - mu_x ** 2
    syy = F.conv2d(target * target, win, padding=pad, groups=channels) - mu_y ** 2
    sxy = F.conv2d(pred * target, win, padding=pad, groups=channels) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2)
    return (num / den).mean()


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> float:
    """``10 log10(R^2 / MSE)`` over all elements."""
    mse = float(torch.mean((pred.float() - target.float()) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def photometric_loss(pred: Tensor, target: Tensor, ssim_weight: float = 0.0, data_range: float = 1.0) -> Tensor:
    """``(1 - w) L1 + w (1 - SSIM)`` between ``[B, C, H, W]`` maps (3DGS's loss; w = 0 is plain L1)."""
    loss = F.l1_loss(pred, target)
    if ssim_weight > 0:
        loss = (1 - ssim_weight) * loss + ssim_weight * (1 - ssim(pred, target, data_range=data_range))
    return loss
