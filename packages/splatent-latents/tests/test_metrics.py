from __future__ import annotations

import math

import pytest
import torch

from splatent_latents.metrics import latent_psnr, psnr, ssim


def test_psnr_known_values():
    a = torch.zeros(2, 3, 4, 4)
    b = a.clone()
    b[0] += 0.1  # mse 0.01 -> 20 dB
    b[1] += 0.01  # mse 1e-4 -> 40 dB
    assert psnr(b, a).tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert math.isinf(psnr(a, a)[0].item())
    assert psnr(b * 255, a * 255, data_range=255.0).tolist() == pytest.approx([20.0, 40.0], abs=1e-3)


def test_latent_psnr_uses_the_targets_range():
    target = torch.zeros(1, 4, 2, 2)
    target[0, 0, 0, 0] = 2.0  # range 2
    pred = target + 0.2  # mse 0.04 -> 10 log10(4 / 0.04) = 20 dB
    assert latent_psnr(pred, target).item() == pytest.approx(20.0, abs=1e-4)


def test_ssim_bounds_and_ordering():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 32, 32, generator=g)
    assert ssim(img, img).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    slightly = (img + 0.02 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    very = (img + 0.3 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    s1, s2 = ssim(slightly, img), ssim(very, img)
    assert (s1 > s2).all() and (s1 < 1).all() and (s2 > -1).all()
    assert torch.allclose(ssim(img, slightly), s1, atol=1e-6)  # symmetric


def test_ssim_matches_a_direct_computation_on_a_constant_shift():
    # flat images: variances and covariance vanish, SSIM reduces to the luminance term
    # (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) away from the zero-padded border
    x, y = torch.full((1, 1, 40, 40), 0.5), torch.full((1, 1, 40, 40), 0.6)
    c1 = 0.01 ** 2
    expected = (2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1)
    centre = ssim(x[..., 10:30, 10:30].contiguous(), y[..., 10:30, 10:30].contiguous())
    assert ssim(x, y).item() < 1
    assert centre.item() == pytest.approx(expected, abs=0.05)


def _photo_like_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth image with texture and a degraded copy (blur, noise, a shift in brightness), ``[2, 3, 64, 80]``."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2, 3, 8, 10, generator=g)
    img = torch.nn.functional.interpolate(coarse, size=(64, 80), mode="bicubic", align_corners=False)
    img = (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    worse = torch.nn.functional.avg_pool2d(img, 3, 1, 1) + 0.03 * torch.randn(img.shape, generator=g) + 0.02
    return worse.clamp(0, 1), img


def test_psnr_and_ssim_agree_with_torchmetrics():
    """An independent implementation (torchmetrics) on the same settings: Gaussian window 11, sigma 1.5, K1 0.01,
    K2 0.03, data range 1. It reflect-pads the borders (our ``padding="reflect"``) and matches to 1e-4; our default
    (zero padding, the 3DGS convention) is the number reported, and differs only at the borders."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    pred, target = _photo_like_pair()
    theirs = torch.stack([structural_similarity_index_measure(pred[i:i + 1], target[i:i + 1], gaussian_kernel=True,
                                                              sigma=1.5, kernel_size=11, data_range=1.0)
                          for i in range(len(pred))])
    assert torch.allclose(ssim(pred, target, padding="reflect"), theirs, atol=1e-4)
    assert not torch.allclose(ssim(pred, target), theirs, atol=1e-3)  # the conventions differ, at the borders
    assert ssim(pred, target, padding="valid").shape == (2,)
    their_psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    assert torch.allclose(psnr(pred, target), their_psnr, atol=1e-4)
    with pytest.raises(ValueError, match="padding"):
        ssim(pred, target, padding="circular")
