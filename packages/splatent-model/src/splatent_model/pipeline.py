"""``EnhancePipeline``: the enhance loop as an object, as a diffusers pipeline is.

It holds its components (the enhancer and the latent codec), the runtime options they were
prepared with, the timestep override and the prompt embeddings it has encoded, and exposes
``encode_prompt``, ``encode_images``, ``decode``, ``score`` and ``__call__``: ``pipe(latents)``
turns ``[B, 1 + k, C, h, w]`` latents (target first) into enhanced latents and decoded images.
The model keeps no runtime switch it does not need to run (see :mod:`splatent_model.runtime`), and
the pipeline reads and writes no files: :mod:`splatent_model.files` finds, loads and writes them,
and the stages in :mod:`splatent_model.inference` join the two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .enhancer import SplatentEnhancer
from .errors import EnhanceInputError
from .metrics import METRIC_KEYS, finite_or_none, latent_psnr, psnr, ssim
from .runtime import RuntimeOptions, decode_images, enhance_latents, prepare_codec, prepare_enhancer, to_uint8

logger = logging.getLogger("splatent")


def codec_for(model: SplatentEnhancer, name: str | None = None, **options: Any) -> Any:
    """The latent codec to encode and decode with: ``name`` (+ options) if given, else the one the
    checkpoint records (SD-Turbo's VAE, taken from the base model's ``vae/``, for checkpoints that
    record none)."""
    from splatent_latents import load_codec  # loading a codec imports its backend (diffusers' VAE, taef2)

    if name is not None:
        config = {"name": name, **options}
    elif model.config.codec:
        config = dict(model.config.codec)
    else:
        config = {"name": "sd-vae", "model": model.config.base_model}
    codec = load_codec(**config)
    if model.config.scale and abs(codec.scaling_factor - float(model.config.scaling_factor)) > 1e-6:
        logger.warning("codec %s scales latents by %g but the enhancer was trained with %g",
                       config.get("name"), codec.scaling_factor, model.config.scaling_factor)
    return codec


@dataclass
class EnhanceOutput:
    """What one :class:`EnhancePipeline` call gives."""

    latents: Tensor  # [B, C, h, w] float32, unscaled codec latents, on the enhancer's device
    images: Tensor | None = None  # [B, 3, 8h, 8w] float32 in [0, 1] on the codec's device; None without decode

    def uint8_images(self) -> Tensor:  # [B, H, W, 3] uint8 on the host
        """The images quantised on the device, so only bytes cross to the host."""
        if self.images is None:
            raise EnhanceInputError("this output was made with decode=False; it has no images")
        return to_uint8(self.images).cpu()


class EnhancePipeline:
    """The enhancer, its codec and how to run them: ``pipe(latents) -> EnhanceOutput``.

    Args:
        enhancer: The model (:meth:`SplatentEnhancer.from_pretrained`); moved and configured in place
            with ``options`` unless ``prepare`` is off.
        codec: The latent codec (``splatent_latents.load_codec``; :func:`codec_for` gives the
            checkpoint's); its channel count must be the enhancer's.
        options: Device, dtype, attention kernel, ``torch.compile``, batch size (:class:`RuntimeOptions`).
        timestep: Overrides the enhancer's fixed timestep.
        prepare: Call :func:`prepare_enhancer` / :func:`prepare_codec` (off: use them as they are).

    The prompt embeddings are encoded once per prompt (from the checkpoint's stored embeddings, else
    with the base model's text encoder, which is then released) and kept on the enhancer's device
    and dtype in :attr:`prompt_embeds`.
    """

    def __init__(self, enhancer: SplatentEnhancer, codec: Any, options: RuntimeOptions | None = None,
                 timestep: int | None = None, prepare: bool = True) -> None:
        enhancer.check_codec(codec)
        self.enhancer = enhancer
        self.codec = codec
        self.options = options or RuntimeOptions()
        self.timestep = timestep
        self.prompt_embeds: dict[str, Tensor] = {}  # prompt -> [1, L, D] on the enhancer's device and dtype
        if prepare:
            prepare_enhancer(enhancer, self.options)
            prepare_codec(codec, self.options)

    @classmethod
    def from_pretrained(cls, path: str, codec: Any = None, options: RuntimeOptions | None = None,
                        timestep: int | None = None, **overrides: Any) -> "EnhancePipeline":
        """The pipeline of a checkpoint (``SplatentEnhancer.from_pretrained(path, **overrides)``) and the
        codec it records (or ``codec``)."""
        enhancer = SplatentEnhancer.from_pretrained(path, **overrides)
        return cls(enhancer, codec if codec is not None else codec_for(enhancer), options, timestep)

    # ----------------------------------------------------------------- components

    @property
    def device(self) -> torch.device:
        return self.enhancer.device

    @property
    def pad_to(self) -> int | None:
        """Batches are padded to this many targets so one compiled graph serves all (compiled runs only)."""
        return self.options.batch_size if getattr(self.enhancer, "compile_mode", None) else None

    def encode_prompts(self, prompts: Sequence[str]) -> None:
        """Embed the prompts not encoded yet, all in one text-encoder load."""
        missing = sorted({p for p in prompts if p not in self.prompt_embeds})
        if not missing:
            return
        self.enhancer.encode_prompts(missing)
        for p in missing:
            self.prompt_embeds[p] = self.enhancer.prompt_cache[p].to(self.enhancer.device, self.enhancer.dtype)

    def encode_prompt(self, prompt: str | None = None) -> Tensor:  # [1, L, D]
        """The embedding of ``prompt`` (default: the enhancer's), encoded on first use."""
        prompt = self.enhancer.config.prompt if prompt is None else prompt
        self.encode_prompts([prompt])
        return self.prompt_embeds[prompt]

    @torch.inference_mode()
    def encode_images(self, images: Tensor) -> Tensor:  # [B, 3, H, W] in [0, 1] -> [B, C, H/8, W/8] float32, host
        """Latents of images (sides multiples of 8), unscaled, on the host."""
        return self.codec.encode(images).float().cpu()

    def decode(self, latents: Tensor) -> Tensor:  # [B, C, h, w] unscaled -> [B, 3, 8h, 8w] float32 in [0, 1]
        """The codec's decode in its own dtype, on its device."""
        return decode_images(self.codec, latents)

    # ----------------------------------------------------------------- the loop

    @torch.inference_mode()
    def __call__(
        self,
        latents: Tensor,  # [B, 1 + k, C, h, w] unscaled, view 0 the target
        prompt: str | None = None,
        prompt_embeds: Tensor | None = None,  # [1 or B, L, D]; default: encode_prompt(prompt)
        decode: bool = True,
    ) -> EnhanceOutput:
        """Enhance the target of each sample, ``options.batch_size`` samples per UNet pass, and decode."""
        if latents.ndim != 5:
            raise EnhanceInputError(f"latents must be [B, V, C, h, w], got shape {tuple(latents.shape)}")
        if latents.shape[0] == 0:
            raise EnhanceInputError("no latents to enhance (batch of 0)")
        embeds = self.encode_prompt(prompt) if prompt_embeds is None else prompt_embeds
        size = self.options.batch_size
        outs, images = [], []
        for start in range(0, latents.shape[0], size):
            chunk_embeds = embeds if embeds.shape[0] == 1 else embeds[start:start + size]
            out = enhance_latents(self.enhancer, latents[start:start + size], chunk_embeds, self.timestep, self.pad_to)
            outs.append(out)
            if decode:
                images.append(self.decode(out))
        return EnhanceOutput(_cat(outs), _cat(images) if decode else None)

    @torch.inference_mode()
    def score(
        self,
        rendered: Tensor,  # [N, C, h, w] the un-enhanced targets
        output: EnhanceOutput,  # of those N targets (with images)
        targets: Tensor,  # [N, C, h, w] ground-truth latents
        gt_images: Sequence[Tensor | None],  # N x [3, H, W] in [0, 1], or None: compare with the decoded target
    ) -> list[dict[str, Any]]:
        """Per view: latent PSNR against the ground-truth latent and image PSNR / SSIM against the
        ground-truth image, of the render (``*_in``) and of the enhanced view (``*_out``), and
        ``gt_source`` (``image`` or ``decoded_target``)."""
        if output.images is None:
            raise EnhanceInputError("scoring needs decoded images; call the pipeline with decode=True")
        device = output.latents.device
        rendered, targets = rendered.to(device), targets.to(device)
        enhanced, img_out = output.latents.float(), output.images.float()
        img_in = self.decode(rendered)
        size = img_out.shape[-2:]
        gts, sources = [], []
        decoded_targets = None
        for n, gt in enumerate(gt_images):
            if gt is not None:
                gt = gt.to(device)[None]
                if gt.shape[-2:] != size:
                    gt = F.interpolate(gt, size=size, mode="area")
                gts.append(gt[0])
                sources.append("image")
            else:
                if decoded_targets is None:
                    decoded_targets = self.decode(targets)
                gts.append(decoded_targets[n])
                sources.append("decoded_target")
        gt_stack = torch.stack(gts)
        values = {
            "latent_psnr_in": latent_psnr(rendered, targets), "latent_psnr_out": latent_psnr(enhanced, targets),
            "psnr_in": psnr(img_in, gt_stack), "psnr_out": psnr(img_out, gt_stack),
            "ssim_in": ssim(img_in, gt_stack), "ssim_out": ssim(img_out, gt_stack),
        }
        values = {k: v.cpu().tolist() for k, v in values.items()}
        return [{"gt_source": sources[n], **{k: finite_or_none(values[k][n]) for k in METRIC_KEYS}}
                for n in range(len(sources))]


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


__all__ = ["EnhanceOutput", "EnhancePipeline", "codec_for"]
