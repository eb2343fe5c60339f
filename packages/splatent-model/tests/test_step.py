from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from splatent_model import alpha_bar, make_scheduler, one_step_denoise, sd_turbo_scheduler_config
from splatent_model.step import identity_output


@pytest.fixture
def scheduler() -> DDPMScheduler:
    return make_scheduler(sd_turbo_scheduler_config())


def test_recovers_x0_from_the_true_noise(scheduler):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    a = alpha_bar(scheduler, 300)
    x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps
    assert torch.allclose(one_step_denoise(x_t, eps, a), x0, atol=1e-5)


@pytest.mark.parametrize("t", [1, 199, 300, 999])
def test_matches_ddpm_scheduler_x0_prediction(scheduler, t):
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(1, 4, 6, 6, generator=g), torch.randn(1, 4, 6, 6, generator=g)
    expected = scheduler.step(eps, t, x_t, generator=g).pred_original_sample
    assert torch.allclose(one_step_denoise(x_t, eps, alpha_bar(scheduler, t)), expected, atol=1e-5)


def test_one_step_schedule_posterior_mean_is_x0(scheduler):
    # With one inference step the previous cumulative alpha is 1: DDPM's posterior
    # mean coefficients become (1, 0), so the original's prev_sample is x0.
    a, a_prev = alpha_bar(scheduler, 300), 1.0
    beta_t, current_alpha = 1 - a, a / a_prev
    x0_coeff = a_prev ** 0.5 * (1 - current_alpha) / beta_t
    xt_coeff = current_alpha ** 0.5 * (1 - a_prev) / beta_t
    assert x0_coeff == pytest.approx(1.0) and xt_coeff == 0.0


def test_sd_turbo_alpha_bar_at_300(scheduler):
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    assert alpha_bar(scheduler, 300) == pytest.approx(float(torch.cumprod(1 - betas, 0)[300]), rel=1e-6)


def test_clip_and_other_parametrisations():
    x_t, out = torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)
    assert one_step_denoise(x_t, out, 0.25, clip_sample=1.0).eq(1.0).all()
    assert one_step_denoise(x_t, out, 0.25).eq(6.0).all()
    assert one_step_denoise(x_t, out, 0.25, "v_prediction").eq(1.5).all()
    assert one_step_denoise(x_t, out, 0.25, "sample").eq(0.0).all()


def test_bf16_inputs_give_float32(scheduler):
    x = torch.randn(1, 4, 4, 4).bfloat16()
    assert one_step_denoise(x, x, alpha_bar(scheduler, 300)).dtype == torch.float32


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("t", [1, 300, 999])
def test_identity_output_gives_back_the_sample(scheduler, prediction_type, t):
    x_t = torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(t))
    a = alpha_bar(scheduler, t)
    x0 = one_step_denoise(x_t, identity_output(x_t, a, prediction_type), a, prediction_type)
    assert torch.allclose(x0, x_t, atol=1e-5)
    with pytest.raises(ValueError, match="prediction_type"):
        identity_output(x_t, a, "flow")
