"""Per-image quality metrics on tensors, batched: PSNR, SSIM, and PSNR between latents.

Images are ``[B, 3, H, W]`` in [0, 1]; every function returns one value per sample
(``[B]``), computed in float32 on the inputs' device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:  # [B, ...] x2 -> [B]
    """Peak signal-to-noise ratio in dB, ``10 log10(range² / MSE)``; identical images give ``inf``."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def latent_psnr(pred: Tensor, target: Tensor) -> Tensor:  # [B, C, h, w] x2 -> [B]
    """PSNR between latents, the peak being the target's own range (max - min) per sample.

    Latents have no fixed range; using the target's keeps the number comparable
    across codecs and scenes, and is the same for the enhanced and un-enhanced render.
    """
    flat = target.float().flatten(1)
    peak = (flat.max(1).values - flat.min(1).values).clamp_min(1e-12)
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak ** 2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:  # [channels, 1, size, size]
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, window_size: int = 11, sigma: float = 1.5, data_range: float = 1.0,
         padding: str = "zero") -> Tensor:
    """Structural similarity (Wang et al. 2004), Gaussian 11×11 window, σ = 1.5, K1 = 0.01, K2 = 0.03.
    ``[B, C, H, W]`` x2 -> ``[B]``, the mean over the SSIM map and the channels.

    How the borders, where the window leaves the image, are treated (the definitions differ by up to a few
    hundredths on small images, so a reported SSIM says which it is):

    * ``"zero"`` (the default, every number Splatent reports): the window is zero-padded and the map covers the
      whole image, as the 3DGS / INRIA code and the original Splatent evaluation compute it;
    * ``"reflect"``: the image is reflect-padded and the map covers the whole image, as torchmetrics computes it
      (tested against ``torchmetrics.functional.structural_similarity_index_measure`` to 1e-4);
    * ``"valid"``: only where the window fits inside the image, as pytorch-msssim and scikit-image average.
    """
    if padding not in ("zero", "reflect", "valid"):
        raise ValueError(f"padding must be 'zero', 'reflect' or 'valid', not {padding!r}")
    x, y = pred.float(), target.float()
    c = x.shape[1]
    window = _gaussian_window(window_size, sigma, c, x.device, x.dtype)
    pad = window_size // 2 if padding == "zero" else 0
    if padding == "reflect":
        r = window_size // 2
        x, y = F.pad(x, (r, r, r, r), mode="reflect"), F.pad(y, (r, r, r, r), mode="reflect")

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def finite_or_none(value: float) -> float | None:
    """A metric for JSON: ``inf`` (identical images) and NaN become ``None``."""
    return float(value) if math.isfinite(value) else None
