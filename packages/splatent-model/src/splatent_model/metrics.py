"""Per-image quality metrics (PSNR, SSIM, latent PSNR): they live in :mod:`splatent_latents.metrics`,
shared with the splatting stage, and are re-exported here for users of the enhancer."""

from splatent_latents.metrics import finite_or_none, latent_psnr, psnr, ssim

__all__ = ["finite_or_none", "latent_psnr", "psnr", "ssim"]
