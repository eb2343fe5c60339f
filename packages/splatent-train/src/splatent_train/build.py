"""Building a run's parts: the accelerator, the enhancer set up for training, AdamW and the LR schedule."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from splatent_latents import parse_dtype
from splatent_model import PRESETS, SplatentEnhancer, load_enhancer

from .config import TrainConfig
from .errors import TrainError

logger = logging.getLogger("splatent")



def make_accelerator(config: TrainConfig):
    """An ``Accelerator`` with the run's precision and accumulation (``mixed_precision`` None: the launcher's)."""
    from accelerate import Accelerator

    return Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        cpu=config.cpu,
    )


def release_accelerator(accelerator) -> None:
    """Free the run's references; a single-process run also forgets accelerate's shared state, so the next
    run in this process may choose another precision or device."""
    accelerator.free_memory()
    if accelerator.num_processes == 1:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def compute_dtype(accelerator) -> torch.dtype:
    """The dtype frozen modules (codec decoder, LPIPS) run in: the mixed-precision dtype, else float32."""
    mixed = str(accelerator.mixed_precision)
    return parse_dtype(mixed) if mixed in ("bf16", "fp16") else torch.float32  # "no", "fp8": float32


def codec_config(codec: Any, output_dir: Path) -> dict[str, Any]:
    """The codec's config for the exported enhancer; a fitted pca basis without a file is saved beside the run."""
    config = dict(codec.config())
    if config.get("name") == "pca" and not config.get("basis"):
        path = codec.save(Path(output_dir) / "pca_basis.safetensors")
        config["basis"] = str(Path(path).resolve())
    elif config.get("name") == "pca":
        config["basis"] = str(Path(config["basis"]).resolve())
    return config


def build_enhancer(config: TrainConfig, codec: Any) -> SplatentEnhancer:
    """The enhancer to fine-tune: ``init_from`` a checkpoint, else the base model (``tiny``: seeded random)."""
    settings = dict(timestep=config.timestep, top_k=config.top_k, scale=config.scale)
    channels = int(codec.channels)  # the UNet reads and writes the codec's latents
    if config.init_from:
        model = load_enhancer(config.init_from, **settings)
    elif config.base_model in PRESETS:  # tiny, small: trained from scratch
        model = SplatentEnhancer.preset(config.base_model, seed=config.seed, channels=channels,
                                        scaling_factor=float(codec.scaling_factor), **settings)
    else:
        model = SplatentEnhancer.from_base(config.base_model, channels=channels,
                                           scaling_factor=float(codec.scaling_factor), **settings)
    return model


def adopt_codec(model: SplatentEnhancer, codec: Any, output_dir: Path) -> None:
    """Record the codec in the enhancer's config (what ``enhance`` decodes with); warn on a scale mismatch."""
    model.register_to_config(codec=codec_config(codec, output_dir))
    if model.config.scale and abs(float(model.config.scaling_factor) - float(codec.scaling_factor)) > 1e-6:
        logger.warning("the enhancer scales latents by %.5g but the codec's scaling factor is %.5g; keeping the "
                       "enhancer's", model.config.scaling_factor, codec.scaling_factor)


def configure_for_training(model: SplatentEnhancer, config: TrainConfig, device: torch.device) -> SplatentEnhancer:
    """Trainable float32 UNet on ``device`` with gradient checkpointing, attention kernel, NHWC and compile as asked."""
    model.requires_grad_(False)
    model.unet.requires_grad_(True)
    model.train()
    if config.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    if config.enable_xformers_memory_efficient_attention:
        try:
            import xformers  # noqa: F401

            model.unet.enable_xformers_memory_efficient_attention()
        except ImportError:
            logger.info("xformers is not installed: using PyTorch's scaled-dot-product attention, which has the "
                        "same memory-efficient kernels")
    if device.type == "cuda":
        if config.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # crops keep shapes fixed: tune each convolution once
        if config.use_channels_last(device):
            model.unet.to(memory_format=torch.channels_last)
            model.channels_last = True
    # float32 master weights whatever the checkpoint was stored in (mixed precision autocasts the compute only)
    torch.nn.Module.to(model, device=device, dtype=torch.float32)  # ModelMixin.to warns on every dtype cast
    if config.use_compile(device):
        logger.info("compiling the UNet, the VAE decoder and LPIPS with torch.compile: minutes of warm-up, then "
                    "faster steps (--no-compile to skip)")
        model.unet.compile(mode=config.compile_mode)
    return model


def build_optimizer(params, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with the original's hyper-parameters; the fused CUDA kernel unless ``fused_adam`` is False."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise TrainError("the enhancer has no trainable parameters")
    kwargs = dict(lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                  weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    fused = config.fused_adam if config.fused_adam is not None else device.type == "cuda"
    if fused:
        try:
            return torch.optim.AdamW(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError) as exc:
            logger.info("fused AdamW is unavailable here (%s); using the multi-tensor implementation", exc)
    return torch.optim.AdamW(params, foreach=True, **kwargs)


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, num_processes: int):
    """diffusers' schedule by name. accelerate steps a prepared schedule once per process per optimizer step,
    so warmup and length are counted × ``num_processes`` (as the original does)."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler, optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps * num_processes,
        num_training_steps=config.max_train_steps * num_processes,
        num_cycles=config.lr_num_cycles, power=config.lr_power,
    )


def prepare_frozen(codec: Any, lpips: torch.nn.Module | None, device: torch.device, dtype: torch.dtype,
                   compile: bool = False, channels_last: bool = False, compile_mode: str = "default"
                   ) -> torch.nn.Module | None:
    """Put the codec (float32 for ``pca``) and LPIPS on ``device`` in the compute dtype, NHWC on CUDA with ``channels_last``;
    ``compile`` also compiles a VAE decoder and LPIPS (the loss back-propagates through both every step; compiling
    LPIPS took a CUDA-graph step on an H100 from 99.3 to 95.8 ms)."""
    if channels_last and device.type == "cuda" and hasattr(codec, "channels_last"):  # a VAE decoder, NHWC like the UNet
        codec.channels_last = True
    codec.to(device, dtype if codec.name != "pca" else torch.float32)
    vae = getattr(codec, "vae", None)
    if compile and vae is not None:
        vae.decoder.compile(mode=compile_mode)
    if lpips is not None:
        lpips = lpips.to(device, dtype).eval().requires_grad_(False)
        if device.type == "cuda" and channels_last:
            lpips = lpips.to(memory_format=torch.channels_last)
        if compile:
            lpips.compile(mode=compile_mode)
    return lpips
