"""Architectures built in code: SD-Turbo's (for random-weight benchmarks and for
reading a checkpoint without the hub) and two seeded presets trained from scratch: ``tiny`` for CPU
tests and ``small``, sized to learn on one GPU in minutes.

SD-Turbo is SD 2.1-base distilled: its UNet, OpenCLIP ViT-H text tower (23 layers,
the last one dropped as in SD 2.x) and a 1000-step scaled-linear noise schedule.
"""

from __future__ import annotations

from typing import Any

SD_TURBO = "stabilityai/sd-turbo"
TINY = "tiny"
SMALL = "small"
DEFAULT_PROMPT = "A photo of a scene"
DEFAULT_TIMESTEP = 300
SD_SCALING_FACTOR = 0.18215


def sd_turbo_unet_config() -> dict[str, Any]:
    """``UNet2DConditionModel`` config of SD-Turbo (= SD 2.1-base): 865M parameters."""
    return {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "center_input_sample": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "mid_block_type": "UNetMidBlock2DCrossAttn",
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "only_cross_attention": False,
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "cross_attention_dim": 1024,
        # diffusers' historical name: these are head counts (head dim 64), as in SD 2.x's config.
        "attention_head_dim": [5, 10, 20, 20],
        "dual_cross_attention": False,
        "use_linear_projection": True,
        "upcast_attention": False,
        "num_class_embeds": None,
        "resnet_time_scale_shift": "default",
    }


def sd_turbo_text_config() -> dict[str, Any]:
    """``CLIPTextConfig`` of SD-Turbo's text encoder (OpenCLIP ViT-H/14 text tower, 23 layers)."""
    return {
        "vocab_size": 49408,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "projection_dim": 512,
        "num_hidden_layers": 23,
        "num_attention_heads": 16,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
    }


def sd_turbo_scheduler_config() -> dict[str, Any]:
    """The noise schedule of SD-Turbo as a ``DDPMScheduler`` config (only ᾱ_t and the parametrisation matter)."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "trailing",
        "thresholding": False,
    }


def tiny_unet_config(channels: int = 4) -> dict[str, Any]:
    """A two-level UNet with self- and cross-attention at full resolution (~0.2M parameters) for
    ``channels``-channel latents (4 for SD's VAE, 32 for ``taef2``)."""
    return {
        "sample_size": 8,
        "in_channels": int(channels),
        "out_channels": int(channels),
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": 32,
        "attention_head_dim": [2, 4],
        "use_linear_projection": True,
        "act_fn": "silu",
    }


def small_unet_config(channels: int = 4) -> dict[str, Any]:
    """A three-level UNet (17.6M parameters for 32-channel latents) with self- and cross-attention at the two
    finer levels, so the render's tile attends to its references' tiles at full latent resolution (the grid
    attention); head dim 32. Between ``tiny`` (~0.2M) and SD-Turbo (865M): on one H200 it learns from
    scratch in minutes (``tools/bench/realscenes.py``). Cross-attention is 32-d, the presets' text encoder."""
    return {
        "sample_size": 32,
        "in_channels": int(channels),
        "out_channels": int(channels),
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [64, 128, 256],
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "cross_attention_dim": 32,
        "attention_head_dim": [2, 4, 8],
        "use_linear_projection": True,
        "act_fn": "silu",
    }


#: The presets trained from scratch: name -> UNet config builder (all share the tiny text encoder).
PRESETS = {TINY: tiny_unet_config, SMALL: small_unet_config}


def tiny_text_config(vocab_size: int) -> dict[str, Any]:
    """A two-layer CLIP text model for the tiny tokenizer's vocabulary; hidden size = the tiny UNet's cross-attention dim."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
