"""splatent-model: the single-step SD-Turbo enhancer with grid attention over reference views.

A rendered latent and its k nearest training-view latents are tiled into one
latent and go through SD-Turbo's UNet once, at a fixed timestep, followed by one
DDPM x0 step; the target's tile is the enhanced latent.
"""

from .checkpoint import (
    apply_overrides, convert_original_checkpoint, load_enhancer, load_original_checkpoint, read_original_checkpoint,
    read_prompt_embeds, save_enhancer,
)
from .configs import (
    DEFAULT_PROMPT, DEFAULT_TIMESTEP, PRESETS, SD_SCALING_FACTOR, SD_TURBO, SMALL, TINY, small_unet_config,
    sd_turbo_scheduler_config, sd_turbo_text_config, sd_turbo_unet_config, tiny_text_config, tiny_unet_config,
)
from .enhancer import SplatentEnhancer, adapt_unet_channels
from .errors import CheckpointError, EnhanceInputError, WeightsUnavailableError
from .files import WorkItem, collect_inputs, match_references, write_video
from .grid import grid_shape, tile_views, untile_views
from .inference import DatasetEnhanceOptions, EnhanceResult, FilesEnhanceOptions, enhance_dataset, enhance_files
from .metrics import latent_psnr, mean_metrics, psnr, ssim
from .pipeline import EnhanceOutput, EnhancePipeline, codec_for
from .pretrained import PretrainedMixin, check_checkpoint_source
from .prompt import PromptEncoder, tiny_prompt_encoder, tiny_tokenizer
from .runtime import RuntimeOptions, decode_images, enhance_latents, prepare_codec, prepare_enhancer, to_uint8
from .step import alpha_bar, make_scheduler, one_step_denoise

__version__ = "0.5.1"

__all__ = [
    "CheckpointError", "DEFAULT_PROMPT", "DEFAULT_TIMESTEP", "DatasetEnhanceOptions", "EnhanceInputError", "FilesEnhanceOptions",
    "EnhanceOutput", "EnhancePipeline", "EnhanceResult", "PretrainedMixin", "PromptEncoder", "RuntimeOptions",
    "PRESETS", "SD_SCALING_FACTOR", "SD_TURBO", "SMALL", "small_unet_config", "SplatentEnhancer", "TINY", "WeightsUnavailableError", "WorkItem",
    "adapt_unet_channels", "alpha_bar", "apply_overrides", "check_checkpoint_source", "codec_for", "collect_inputs", "convert_original_checkpoint",
    "decode_images", "enhance_dataset", "enhance_files", "enhance_latents", "grid_shape", "latent_psnr",
    "load_enhancer", "load_original_checkpoint", "make_scheduler", "match_references", "mean_metrics",
    "one_step_denoise", "prepare_codec", "prepare_enhancer", "psnr", "read_original_checkpoint", "read_prompt_embeds",
    "save_enhancer", "sd_turbo_scheduler_config", "sd_turbo_text_config", "sd_turbo_unet_config", "ssim", "tile_views",
    "tiny_prompt_encoder", "tiny_text_config", "tiny_tokenizer", "tiny_unet_config", "to_uint8", "untile_views",
    "write_video"
]
