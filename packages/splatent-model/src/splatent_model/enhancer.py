"""``SplatentEnhancer``: SD-Turbo's UNet run once over a grid of the target and its references.

A diffusers-style model (``ModelMixin`` + ``ConfigMixin``): the config says which
base model, timestep, reference count, layout, prompt and latent scaling it was
trained with, and a checkpoint folder (``config.json`` + diffusers' ``unet/``) is
the unit of exchange. ``save_pretrained`` / ``from_pretrained`` / ``from_original`` come from
:class:`~splatent_model.pretrained.PretrainedMixin`, as a diffusers model's come from ``ModelMixin``, so
this module never imports :mod:`splatent_model.checkpoint`. The noise schedule enters only through ᾱ_t of the fixed
timestep, in :func:`splatent_model.step.one_step_denoise`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor

from .base import is_preset, load_base_scheduler_config, load_base_unet
from .configs import (
    DEFAULT_PROMPT, DEFAULT_TIMESTEP, PRESETS, SD_SCALING_FACTOR, SD_TURBO, SMALL, TINY, sd_turbo_scheduler_config,
    sd_turbo_unet_config,
)
from .errors import CheckpointError, EnhanceInputError
from .grid import grid_shape, tile_views, untile_views
from .pretrained import PretrainedMixin
from .pretrained import on_meta as _on_meta  # tools/bench/enhance.py builds random SD-Turbo parts with it
from .step import alpha_bar, identity_output, make_scheduler, one_step_denoise, scheduler_clip

logger = logging.getLogger("splatent")

LAYOUTS = ("grid",)
#: Codecs whose latent space is learned and fixed: an enhancer trained on one is meaningless on another.
LEARNED_CODECS = ("sd-vae", "taef2")
TINY_SEED = 0
#: Whether a preset trained from scratch is residual (:class:`SplatentEnhancer`'s ``residual``) unless asked
#: otherwise. ``small``, the preset that learns real scenes, starts as the identity; ``tiny``, the CPU-test preset,
#: keeps the method's plain one-step update so the tests exercise it.
PRESET_RESIDUAL = {TINY: False, SMALL: True}


class SplatentEnhancer(PretrainedMixin, ModelMixin, ConfigMixin):
    """The single-step enhancer. Call it on ``[B, 1 + k, C, h, w]`` latents, target first.

    ``C`` is the codec's latent channel count (4 for SD's VAE, 32 for ``taef2``); the UNet's
    ``in_channels`` / ``out_channels`` equal it and the config records it (:attr:`channels`).

    Args:
        unet_config: ``UNet2DConditionModel`` config (default: SD-Turbo's).
        scheduler_config: ``DDPMScheduler`` config giving ᾱ_t (default: SD-Turbo's).
        base_model: Hub id or folder the weights start from (``stabilityai/sd-turbo``), or ``tiny``.
        timestep: The fixed timestep t the rendered latent is treated as x_t at.
        top_k: Reference views per target the model was trained with.
        layout: How views are combined; ``grid`` (row-major tiles, target top-left).
        prompt: The text prompt it was trained with.
        scale: Multiply input latents by ``scaling_factor`` and divide outputs by it.
        scaling_factor: The codec's latent scaling factor (0.18215 for SD's VAE).
        codec: Config of the latent codec (``splatent_latents.load_codec(**codec)``) for encode/decode.
        residual: The UNet predicts a correction of the render: its output is added to the one whose
            one-step x0 is x_t itself (:func:`~splatent_model.step.identity_output`), so x0 = x_t - sqrt((1-ᾱ)/ᾱ)
            UNet(x_t) for ε-prediction. With a zero-initialised output convolution the untrained enhancer returns
            its input. Off for SD-Turbo, whose pretrained denoiser is the starting point; on for the ``small``
            preset trained from scratch, which otherwise starts by scaling its input by 1/sqrt(ᾱ_t) (1.19 at
            t = 300) and spends its first thousands of steps learning the identity.
    """

    config_name = "config.json"
    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        unet_config: dict[str, Any] | None = None,
        scheduler_config: dict[str, Any] | None = None,
        base_model: str = SD_TURBO,
        timestep: int = DEFAULT_TIMESTEP,
        top_k: int = 3,
        layout: str = "grid",
        prompt: str = DEFAULT_PROMPT,
        scale: bool = True,
        scaling_factor: float = SD_SCALING_FACTOR,
        codec: dict[str, Any] | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise CheckpointError(f"unknown layout {layout!r}; supported: {', '.join(LAYOUTS)}")
        grid_shape(top_k + 1)
        self.unet = UNet2DConditionModel.from_config(dict(unet_config or sd_turbo_unet_config()))
        with torch.device("cpu"):  # the schedule stays real even when the UNet is built on the meta device
            self.scheduler = make_scheduler(dict(scheduler_config or sd_turbo_scheduler_config()))
        alpha_bar(self.scheduler, timestep)
        self.prompt_cache: dict[str, Tensor] = {}
        self._prompt_encoder = None
        self.channels_last = False  # set by splatent_model.runtime.prepare_enhancer
        self.compile_mode: str | None = None
        self.runtime_options = None

    # ----------------------------------------------------------------- construction

    @classmethod
    def from_base(cls, base_model: str = SD_TURBO, torch_dtype: torch.dtype | None = None, channels: int | None = None,
                  **config: Any) -> "SplatentEnhancer":
        """An untrained enhancer: the base model's pretrained UNet and schedule (``tiny``: seeded random).

        ``channels`` other than the base UNet's (a 32-channel codec on SD-Turbo's 4-channel UNet) replaces
        its input and output convolutions (see :func:`adapt_unet_channels`); the rest stays pretrained.
        """
        if is_preset(base_model):
            return cls.preset(str(base_model), **({"channels": channels} if channels is not None else {}), **config)
        unet = load_base_unet(base_model, torch_dtype=torch_dtype)
        if channels is not None:
            adapt_unet_channels(unet, int(channels))
        scheduler = config.pop("scheduler_config", None) or load_base_scheduler_config(base_model) \
            or sd_turbo_scheduler_config()
        with _on_meta():
            model = cls(unet_config=dict(unet.config), scheduler_config=scheduler, base_model=str(base_model), **config)
        model.unet = unet
        return model

    @classmethod
    def tiny(cls, seed: int = TINY_SEED, channels: int = 4, **config: Any) -> "SplatentEnhancer":
        """The CPU-test preset: a ~0.8M-parameter UNet for ``channels``-channel latents, seeded, with the
        SD-Turbo schedule."""
        return cls.preset(TINY, seed=seed, channels=channels, **config)

    @classmethod
    def preset(cls, name: str, seed: int = TINY_SEED, channels: int = 4, **config: Any) -> "SplatentEnhancer":
        """A seeded, untrained preset (:data:`splatent_model.configs.PRESETS`: ``tiny``, ``small``) for
        ``channels``-channel latents, with the SD-Turbo schedule. ``residual`` defaults to
        :data:`PRESET_RESIDUAL`; a residual preset's output convolution starts at zero (the identity)."""
        if name not in PRESETS:
            raise CheckpointError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
        config.setdefault("codec", {"name": "tiny-random"})
        config.setdefault("residual", PRESET_RESIDUAL.get(name, False))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(unet_config=PRESETS[name](channels), base_model=name, **config)
        if model.config.residual:
            torch.nn.init.zeros_(model.unet.conv_out.weight)
            torch.nn.init.zeros_(model.unet.conv_out.bias)
        return model

    def base_unet_state(self) -> dict[str, Tensor]:
        """The base model's UNet weights, which a delta checkpoint is stored against (adapted input and output
        convolutions differ in shape, so a delta always stores them)."""
        base = self.config.base_model
        if is_preset(base):
            return SplatentEnhancer.preset(str(base), channels=self.channels,
                                           residual=bool(self.config.residual)).unet.state_dict()
        return load_base_unet(base).state_dict()

    # ----------------------------------------------------------------- properties

    @property
    def scale_factor(self) -> float:
        """What input latents are multiplied by before the UNet (1 when ``scale`` is off)."""
        return float(self.config.scaling_factor) if self.config.scale else 1.0

    @property
    def num_views(self) -> int:
        return int(self.config.top_k) + 1

    @property
    def channels(self) -> int:
        """Latent channels the UNet takes and returns (the codec's)."""
        return int(self.unet.config.in_channels)

    def check_codec(self, codec: Any, source: str = "the enhancer") -> None:
        """Refuse a codec whose latents have another channel count than the UNet was built for, or another learned
        latent space than it was trained on (``sd-vae`` and ``taef2`` latents mean different things at equal
        channel counts; ``tiny-random``, the test codec, is never refused by name)."""
        trained_name = (self.config.codec or {}).get("name")
        codec_name = getattr(codec, "name", None)
        if trained_name in LEARNED_CODECS and codec_name in LEARNED_CODECS and trained_name != codec_name:
            raise EnhanceInputError(
                f"{source} was trained on {trained_name} latents but the latents here are {codec_name}'s; pass "
                f"--codec {trained_name} (and latents extracted with it) or use an enhancer trained on {codec_name}")
        codec_channels = int(getattr(codec, "channels", self.channels))
        if codec_channels != self.channels:
            trained = (self.config.codec or {}).get("name", "another codec")
            raise EnhanceInputError(
                f"{source} takes {self.channels}-channel latents ({trained}) but codec {getattr(codec, 'name', '?')} "
                f"gives {codec_channels}-channel ones; use an enhancer trained on {getattr(codec, 'name', 'this')} "
                f"latents (`splatent train` records the codec) or the codec it was trained with")

    # ----------------------------------------------------------------- prompts

    def prompt_embeds(self, prompt: str | None = None) -> Tensor:
        """The cached embedding of ``prompt`` (default: the config's), ``[1, L, D]`` on the UNet's device and dtype.

        Computed once with the base model's text encoder when not cached yet (and
        not stored in the checkpoint folder).
        """
        prompt = self.config.prompt if prompt is None else prompt
        if prompt not in self.prompt_cache:
            self.encode_prompts([prompt])
        embeds = self.prompt_cache[prompt]
        if embeds.device != self.device or embeds.dtype != self.dtype:
            embeds = embeds.to(self.device, self.dtype)
            self.prompt_cache[prompt] = embeds
        return embeds

    def encode_prompts(self, prompts: list[str], release: bool = True) -> None:
        """Embed the prompts not cached yet with the base model's text encoder, then (``release``) free it."""
        missing = sorted({p for p in prompts if p not in self.prompt_cache})
        if not missing:
            return
        if self._prompt_encoder is None:
            from .prompt import PromptEncoder

            device = self.device if self.device.type != "meta" else torch.device("cpu")
            self._prompt_encoder = PromptEncoder.from_base(self.config.base_model, device=device)
        embeds = self._prompt_encoder.encode(missing)
        expected = self.unet.config.cross_attention_dim
        if embeds.shape[-1] != expected:
            raise CheckpointError(
                f"the text encoder of {self.config.base_model} gives {embeds.shape[-1]}-d embeddings but the UNet "
                f"cross-attends to {expected}-d ones; use the base model the checkpoint was trained from")
        for prompt, e in zip(missing, embeds):
            self.prompt_cache[prompt] = e[None].detach()
        if release:
            self._prompt_encoder = None

    def set_prompt_encoder(self, encoder) -> None:
        """Use an already loaded :class:`~splatent_model.prompt.PromptEncoder` (kept until released)."""
        self._prompt_encoder = encoder

    # ----------------------------------------------------------------- the model

    def denoise_grid(self, grid: Tensor, prompt_embeds: Tensor, timestep: int | None = None) -> Tensor:
        """One UNet pass and one scheduler step on tiled, scaled latents.

        Args:
            grid: ``[B, C, H, W]`` x_t (float32 or the UNet's dtype).
            prompt_embeds: ``[1 or B, L, D]``.
            timestep: Overrides the config's.

        Returns:
            ``[B, C, H, W]`` x0 in float32.
        """
        t = int(self.config.timestep if timestep is None else timestep)
        x_t = grid.to(self.dtype)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        embeds = prompt_embeds.to(self.dtype).expand(grid.shape[0], -1, -1)
        # filled on the device: torch.tensor(t, device=...) copies from the host and waits for the GPU's queue, which
        # made every compiled training step wait for the previous one (~10 ms of idle GPU a step on an H100)
        t_tensor = torch.full((), t, device=grid.device, dtype=torch.long)
        model_output = self.unet(x_t, t_tensor, encoder_hidden_states=embeds, return_dict=False)[0]
        alpha_bar_t, prediction_type = alpha_bar(self.scheduler, t), self.scheduler.config.prediction_type
        if self.config.residual:
            model_output = model_output.float() + identity_output(grid, alpha_bar_t, prediction_type)
        return one_step_denoise(grid, model_output, alpha_bar_t, prediction_type, scheduler_clip(self.scheduler))

    def forward(
        self,
        latents: Tensor,  # [B, V, C, h, w] unscaled codec latents, view 0 the target
        prompt_embeds: Tensor | None = None,  # [1 or B, L, D]; default: the config prompt's
        timestep: int | None = None,
        all_views: bool = False,
    ) -> Tensor:
        """Enhance the target view of each sample.

        The ``V`` views are tiled into one ``rows × cols`` latent (see
        :mod:`splatent_model.grid`), multiplied by the scaling factor when ``scale``
        is set, denoised in one UNet pass and one scheduler step, divided back and
        cut into tiles.

        Returns:
            ``[B, C, h, w]`` the enhanced target in unscaled codec latents (float32), or
            ``[B, V, C, h, w]`` every tile with ``all_views``.
        """
        if latents.ndim != 5:
            raise EnhanceInputError(f"latents must be [B, V, C, h, w], got shape {tuple(latents.shape)}")
        if latents.shape[2] != self.unet.config.in_channels:
            raise EnhanceInputError(
                f"latents have {latents.shape[2]} channels but the enhancer's UNet takes {self.channels}; "
                f"use an enhancer trained on latents of this codec")
        if prompt_embeds is None:
            prompt_embeds = self.prompt_embeds()
        num_views = latents.shape[1]
        grid = tile_views(latents.float() * self.scale_factor)
        x0 = self.denoise_grid(grid, prompt_embeds, timestep)
        views = untile_views(x0, num_views) / self.scale_factor
        return views if all_views else views[:, 0]


def adapt_unet_channels(unet: UNet2DConditionModel, channels: int) -> UNet2DConditionModel:
    """Give a pretrained UNet ``channels``-channel input and output convolutions, in place.

    SD-Turbo's UNet reads and writes SD's 4 latent channels; another codec's latents (``taef2``: 32)
    need new first and last convolutions. Everything between stays pretrained. The new input
    convolution keeps PyTorch's default initialisation; the new output convolution starts at zero
    (as ControlNet's zero convolutions), so the untrained model predicts no noise and its one-step x0
    is the input over sqrt(ᾱ_t) rather than random output from an untrained projection.
    """
    if int(unet.config.in_channels) == channels and int(unet.config.out_channels) == channels:
        return unet
    old_in, old_out = unet.conv_in, unet.conv_out
    conv_in = torch.nn.Conv2d(channels, old_in.out_channels, old_in.kernel_size, padding=old_in.padding,
                              device=old_in.weight.device, dtype=old_in.weight.dtype)
    conv_out = torch.nn.Conv2d(old_out.in_channels, channels, old_out.kernel_size, padding=old_out.padding,
                               device=old_out.weight.device, dtype=old_out.weight.dtype)
    torch.nn.init.zeros_(conv_out.weight)
    torch.nn.init.zeros_(conv_out.bias)
    unet.conv_in, unet.conv_out = conv_in, conv_out
    unet.register_to_config(in_channels=channels, out_channels=channels)
    logger.info("the base UNet takes %d-channel latents: its input and output convolutions were replaced for "
                "%d channels (trained from scratch, the rest stays pretrained)", old_in.in_channels, channels)
    return unet
