"""Running the enhancer fast: device, bf16, attention kernel, channels_last, fused
QKV projections and an optional ``torch.compile`` (CUDA-graph) path, plus the batched
latents → enhanced latents → uint8 images step that inference and the benchmark share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .enhancer import SplatentEnhancer
from .errors import EnhanceInputError

logger = logging.getLogger("splatent")

ATTENTION = ("sdpa", "xformers", "default")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class RuntimeOptions:
    """How to run the enhancer (and the codec's decoder).

    Attributes:
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        attention: ``sdpa`` (PyTorch scaled-dot-product: flash / memory-efficient kernels),
            ``xformers`` (needs the package) or ``default`` (diffusers' choice).
        channels_last: NHWC convolutions (faster in half precision on GPUs); ``None``: on CUDA only.
        fuse_qkv: One matmul for Q, K and V of each self-attention (K, V of cross-attention).
        compile: ``None``/``False`` (eager) or a ``torch.compile`` mode: ``default``,
            ``reduce-overhead`` (CUDA graphs), ``max-autotune``; ``True`` means ``reduce-overhead``
            on CUDA and ``default`` on CPU. Batches are padded to ``batch_size`` so one graph serves all.
        compile_backend: ``torch.compile`` backend (``inductor``; ``aot_eager`` traces without generating code).
        batch_size: Targets per UNet pass.
    """

    device: str = "auto"
    dtype: str = "auto"
    attention: str = "sdpa"
    channels_last: bool | None = None
    fuse_qkv: bool = True
    compile: bool | str | None = None
    compile_backend: str = "inductor"
    batch_size: int = 8

    def resolved_device(self) -> torch.device:
        """``splatent_latents.resolve_device`` (the one resolver), its refusals as this stage's input errors."""
        from splatent_latents import LatentError, resolve_device

        try:
            return resolve_device(self.device)
        except LatentError as exc:
            raise EnhanceInputError(str(exc)) from None

    def resolved_dtype(self, device: torch.device) -> torch.dtype:
        """``splatent_latents``' dtype table (the one table); ``auto`` is its ``default_dtype``."""
        from splatent_latents import LatentError, default_dtype, parse_dtype

        if self.dtype == "auto":
            return default_dtype(device)
        try:
            return parse_dtype(self.dtype)
        except LatentError:
            raise EnhanceInputError(f"unknown --dtype {self.dtype!r}; use auto, float32, bfloat16 or float16") from None

    def compile_mode(self, device: torch.device) -> str | None:
        if self.compile in (None, False, "", "none", "off"):
            return None
        if self.compile is True:
            return "reduce-overhead" if device.type == "cuda" else "default"
        if self.compile not in COMPILE_MODES:
            raise EnhanceInputError(f"unknown compile mode {self.compile!r}; use {', '.join(COMPILE_MODES)}")
        return str(self.compile)


def prepare_enhancer(model: SplatentEnhancer, options: RuntimeOptions) -> SplatentEnhancer:
    """Move and configure ``model`` for inference, in place; returns it.

    The prompt embedding cache is kept; weights are frozen. Fused projections add
    layers that :func:`splatent_model.checkpoint.save_enhancer` leaves out.
    """
    if getattr(model, "runtime_options", None) == options:
        return model
    device = options.resolved_device()
    dtype = options.resolved_dtype(device)
    if options.batch_size < 1:
        raise EnhanceInputError(f"--batch-size must be at least 1, got {options.batch_size}")
    model.eval().requires_grad_(False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes per run: let cuDNN pick its fastest convolutions
    torch.nn.Module.to(model, device=device, dtype=dtype)  # ModelMixin.to warns on every dtype cast
    set_attention(model, options.attention)
    if options.fuse_qkv and options.attention != "xformers":
        try:
            model.unet.fuse_qkv_projections()
        except (ValueError, AttributeError, RuntimeError) as exc:  # e.g. added-KV attention
            logger.debug("QKV projections not fused: %s", exc)
    channels_last = device.type == "cuda" if options.channels_last is None else options.channels_last
    if channels_last:
        model.unet.to(memory_format=torch.channels_last)
    model.channels_last = channels_last
    mode = options.compile_mode(device)
    if mode is not None:
        kwargs = {"mode": mode} if options.compile_backend == "inductor" else {}
        model.unet.compile(backend=options.compile_backend, dynamic=False, **kwargs)
    model.compile_mode = mode
    model.runtime_options = options
    return model


def set_attention(model: SplatentEnhancer, attention: str) -> None:
    """Pick the UNet's attention kernel: ``sdpa``, ``xformers`` or ``default``."""
    if attention not in ATTENTION:
        raise EnhanceInputError(f"unknown --attention {attention!r}; use {', '.join(ATTENTION)}")
    if attention == "xformers":
        try:
            import xformers  # noqa: F401
        except ImportError:
            raise EnhanceInputError("--attention xformers: the xformers package is not installed; "
                                    "`pip install xformers` or use --attention sdpa") from None
        model.unet.enable_xformers_memory_efficient_attention()
    elif attention == "sdpa":
        from diffusers.models.attention_processor import AttnProcessor2_0

        model.unet.set_attn_processor(AttnProcessor2_0())
    else:
        model.unet.set_default_attn_processor()


def prepare_codec(codec: Any, options: RuntimeOptions, compile_decoder: bool | None = None) -> Any:
    """Put the codec on the enhancer's device and dtype (``VaeCodec.to`` picks NHWC on CUDA);
    ``compile_decoder`` (default: with ``options.compile``) compiles an ``AutoencoderKL`` decoder."""
    device = options.resolved_device()
    dtype = options.resolved_dtype(device)
    codec.to(device, dtype if getattr(codec, "name", "") != "pca" else torch.float32)
    if compile_decoder is None:
        compile_decoder = options.compile_mode(device) is not None
    vae = getattr(codec, "vae", None)
    if compile_decoder and vae is not None and hasattr(vae, "decoder"):
        vae.decoder.compile(dynamic=False)
    return codec


def mark_step() -> None:
    """Tell CUDA-graph trees a new inference step begins (outputs of the last one may be reused)."""
    marker = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)
    if marker is not None:
        marker()


@torch.inference_mode()
def enhance_latents(
    model: SplatentEnhancer,
    latents: Tensor,  # [B, V, C, h, w] unscaled, view 0 the target
    prompt_embeds: Tensor | None = None,  # [1 or B, L, D]
    timestep: int | None = None,
    pad_to: int | None = None,
) -> Tensor:  # [B, C, h, w] float32, on the model's device
    """The enhanced targets of a batch; pads to ``pad_to`` samples (for one compiled graph) and crops back."""
    b = latents.shape[0]
    latents = latents.to(model.device, non_blocking=True)
    if pad_to is not None and b < pad_to:
        latents = torch.cat([latents, latents[-1:].expand(pad_to - b, *latents.shape[1:])])
    if getattr(model, "compile_mode", None) is not None:
        mark_step()
    out = model(latents, prompt_embeds=prompt_embeds, timestep=timestep)
    return out[:b].clone()


@torch.inference_mode()
def decode_images(codec: Any, latents: Tensor) -> Tensor:  # [B, C, h, w] unscaled -> [B, 3, 8h, 8w] float32 in [0, 1]
    """The codec's decode in its own dtype, on its device."""
    return codec.decode(latents.to(codec.device, codec.dtype)).float()


def to_uint8(images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, H, W, 3] uint8
    """Quantise on the device, so only bytes cross to the host."""
    return images.mul(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
