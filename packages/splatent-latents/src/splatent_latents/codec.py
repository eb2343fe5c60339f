"""``LatentCodec``: images in [0, 1] to 1/8-resolution latents and back.

A codec says its channel count (:attr:`LatentCodec.channels`: 4 for ``sd-vae``
and ``pca``, 32 for ``taef2``); manifests record it and readers take it from there.

Latents are always handled *unscaled* (what the encoder emits). A diffusion
model multiplies them by :attr:`LatentCodec.scaling_factor` to reach roughly
unit variance; nothing on disk is scaled.

The implementations (:mod:`.vae`, :mod:`.pca`, :mod:`.taef2`) subclass it and
:func:`splatent_latents.registry.load_codec` builds one by name; this module
imports none of them. The device and dtype helpers every stage shares are in
:mod:`.devices`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from .errors import LatentError



class LatentCodec(ABC):
    """Encode images to latents and decode latents to images.

    Subclasses set :attr:`name` and implement the abstract methods. ``encode``
    and ``decode`` move their input to the codec's device and dtype, return
    tensors in that dtype, and track gradients like any module (stage
    functions wrap them in ``torch.inference_mode``).
    """

    name: str
    channels: int = 4  # latent channels; implementations set their own (taef2: 32)
    downsample: int = 8

    @property
    @abstractmethod
    def scaling_factor(self) -> float:
        """Multiply unscaled latents by this for roughly unit standard deviation."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abstractmethod
    def encode(
        self,
        images: Tensor,  # [B, 3, H, W] float in [0, 1], H and W multiples of 8
        sample: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> Tensor:  # [B, channels, H/8, W/8] unscaled
        """Latents of ``images``: the posterior mean, or a draw when ``sample`` (one generator per image).

        Codecs without a posterior (``pca``, ``taef2``) raise :class:`LatentError` when ``sample`` is set."""

    @abstractmethod
    def decode(self, latents: Tensor) -> Tensor:  # [B, channels, h, w] unscaled -> [B, 3, 8h, 8w] in [0, 1]
        """Images of ``latents``, clamped to [0, 1]."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able options that rebuild this codec with ``load_codec(**config)``."""

    @abstractmethod
    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "LatentCodec":
        """Move to ``device`` / cast to ``dtype`` in place; returns ``self``."""

    def check_images(self, images: Tensor) -> None:
        """Refuse a batch that is not ``[B, 3, H, W]`` with sides divisible by :attr:`downsample`."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise LatentError(f"{self.name} encodes images of shape [B, 3, H, W], got {list(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise LatentError(
                f"{self.name} needs image sides divisible by {self.downsample}, got {w}x{h}; "
                f"resize to {w // self.downsample * self.downsample}x{h // self.downsample * self.downsample}"
            )

    def check_latents(self, latents: Tensor) -> None:
        """Refuse a batch that is not ``[B, channels, h, w]``."""
        if latents.ndim != 4 or latents.shape[1] != self.channels:
            raise LatentError(f"{self.name} decodes latents of shape [B, {self.channels}, h, w], got {list(latents.shape)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()}, device={self.device}, dtype={self.dtype})"
