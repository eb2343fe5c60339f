"""The single denoising step: the rendered latent is x_t at timestep t; the UNet's
noise prediction gives x0 in one DDPM update.

With a 1-step schedule the previous cumulative alpha is 1, so the DDPM posterior
mean is exactly the predicted x0 (its added noise has std 1e-10): the original's
``scheduler.step(...).prev_sample`` is this function.
"""

from __future__ import annotations

from diffusers import DDPMScheduler
from torch import Tensor

from .errors import CheckpointError


def make_scheduler(config: dict) -> DDPMScheduler:
    """A ``DDPMScheduler`` from a config dict (unknown keys, e.g. Euler-only ones, are ignored)."""
    known = {k: v for k, v in config.items() if not k.startswith("_")}
    scheduler = DDPMScheduler.from_config(known)
    if scheduler.config.prediction_type not in ("epsilon", "v_prediction", "sample"):
        raise CheckpointError(f"scheduler prediction_type {scheduler.config.prediction_type!r} is not supported")
    return scheduler


def alpha_bar(scheduler: DDPMScheduler, timestep: int) -> float:
    """ᾱ_t of the scheduler's training schedule."""
    n = scheduler.config.num_train_timesteps
    if not 0 <= timestep < n:
        raise CheckpointError(f"timestep {timestep} is outside the schedule's 0..{n - 1}")
    return float(scheduler.alphas_cumprod[timestep])


def one_step_denoise(
    sample: Tensor,  # [..., C, H, W] x_t
    model_output: Tensor,  # [..., C, H, W] the UNet's prediction
    alpha_bar_t: float,
    prediction_type: str = "epsilon",
    clip_sample: float | None = None,
) -> Tensor:
    """x0 from x_t and the model output at a timestep with cumulative alpha ``alpha_bar_t``.

    ``epsilon``: x0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t); ``v_prediction``: x0 = sqrt(ᾱ_t) x_t - sqrt(1 - ᾱ_t) v;
    ``sample``: x0 = output. ``clip_sample`` clamps x0 to ±value, as a scheduler with
    ``clip_sample=True`` does. Computed in float32 whatever the inputs' dtype.
    """
    x_t = sample.float()
    out = model_output.float()
    a, s = alpha_bar_t ** 0.5, (1.0 - alpha_bar_t) ** 0.5
    if prediction_type == "epsilon":
        x0 = (x_t - s * out) / a
    elif prediction_type == "v_prediction":
        x0 = a * x_t - s * out
    elif prediction_type == "sample":
        x0 = out
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    if clip_sample is not None:
        x0 = x0.clamp(-clip_sample, clip_sample)
    return x0


def identity_output(
    sample: Tensor,  # [..., C, H, W] x_t
    alpha_bar_t: float,
    prediction_type: str = "epsilon",
) -> Tensor:
    """The model output whose one-step x0 (:func:`one_step_denoise`, no clip) is ``sample`` itself.

    ``epsilon``: x_t (1 - sqrt ᾱ_t) / sqrt(1 - ᾱ_t); ``v_prediction``: x_t (sqrt ᾱ_t - 1) / sqrt(1 - ᾱ_t);
    ``sample``: x_t. A residual enhancer adds its UNet's output to this, so a zero output is the identity.
    """
    x_t = sample.float()
    a, s = alpha_bar_t ** 0.5, (1.0 - alpha_bar_t) ** 0.5
    if prediction_type == "epsilon":
        return x_t * ((1.0 - a) / s)
    if prediction_type == "v_prediction":
        return x_t * ((a - 1.0) / s)
    if prediction_type == "sample":
        return x_t
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def scheduler_clip(scheduler: DDPMScheduler) -> float | None:
    """The clamp range the scheduler applies to x0, or None."""
    if getattr(scheduler.config, "thresholding", False):
        raise CheckpointError("dynamic thresholding schedulers are not supported by the one-step enhancer")
    return float(scheduler.config.clip_sample_range) if scheduler.config.clip_sample else None

