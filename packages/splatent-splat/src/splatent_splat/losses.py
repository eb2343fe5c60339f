"""Photometric losses on ``[B, C, H, W]`` maps of any channel count; the metrics (``psnr``, ``ssim``,
per sample) are splatent-latents' (:mod:`splatent_latents.metrics`), shared with the enhancer.

Latent PSNR is ``10 log10(R^2 / MSE)`` with ``R`` the dynamic range (max - min)
of the scene's training latents, fixed per scene and stored with the model, so
numbers compare across steps and views of one scene (not across codecs).
"""

from __future__ import annotations

import torch.nn.functional as F
from splatent_latents.metrics import psnr, ssim
from torch import Tensor

__all__ = ["photometric_loss", "psnr", "ssim"]


def photometric_loss(pred: Tensor, target: Tensor, ssim_weight: float = 0.0, data_range: float = 1.0,
                     mask: Tensor | None = None) -> Tensor:
    """``(1 - w) L1 + w (1 - SSIM)`` between ``[B, C, H, W]`` maps (3DGS's loss; w = 0 is plain L1).

    ``mask`` (``[B, 1, H, W]``, 1 where a pixel counts): both maps are multiplied by it, as nerfstudio's splatfacto
    does, so a left-out pixel adds nothing to either term, sends no gradient, and whatever the target holds there
    cannot reach the fit (not even through an SSIM window that straddles the mask's edge); L1 is the mean over the
    pixels that count.
    """
    if mask is None:
        loss = F.l1_loss(pred, target)
    else:
        keep = mask.to(pred.dtype)
        pred, target = pred * keep, target * keep
        loss = F.l1_loss(pred, target, reduction="sum") / (keep.sum() * pred.shape[1]).clamp_min(1)
    if ssim_weight > 0:
        loss = (1 - ssim_weight) * loss + ssim_weight * (1 - ssim(pred, target, data_range=data_range).mean())
    return loss
