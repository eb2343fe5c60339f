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
