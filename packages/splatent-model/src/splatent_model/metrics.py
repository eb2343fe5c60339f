"""Per-image quality metrics (PSNR, SSIM, latent PSNR): they live in :mod:`splatent_latents.metrics`,
shared with the splatting stage, and are re-exported here for users of the enhancer; plus the keys
and the mean of the enhance stage's per-view records."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from splatent_latents.metrics import finite_or_none, latent_psnr, psnr, ssim

# what EnhancePipeline.score gives per view (and metrics.json records): "in" is the render, "out" the enhanced
METRIC_KEYS = ("latent_psnr_in", "latent_psnr_out", "psnr_in", "psnr_out", "ssim_in", "ssim_out")


def mean_metrics(records: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the records that have it, and ``views``: how many records."""
    out: dict[str, float | None] = {}
    records = list(records)
    for key in METRIC_KEYS:
        vals = [r[key] for r in records if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    out["views"] = len(records)
    return out


__all__ = ["METRIC_KEYS", "finite_or_none", "latent_psnr", "mean_metrics", "psnr", "ssim"]
