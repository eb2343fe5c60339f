"""Enhancer checkpoints as functions: our folder format, and the original's ``.pkl`` files.

The formats themselves live in :mod:`splatent_model.pretrained` (``PretrainedMixin``, which
:class:`~splatent_model.enhancer.SplatentEnhancer` inherits, as diffusers models inherit ``ModelMixin``);
this module is the function API over them and the ``splatent convert-ckpt`` stage. It imports the
enhancer; the enhancer never imports it.

A checkpoint folder holds::

    config.json                 # SplatentEnhancer config + {"weights": {"file", "delta"}}
    unet/config.json, unet/diffusion_pytorch_model.safetensors   # the UNet as diffusers saves it (full checkpoints)
    unet.safetensors            # only the weights differing from the base (delta; full ones before 0.5)
    prompt_embeds.safetensors   # optional: cached prompt embeddings, so inference needs no text encoder

An original checkpoint is a ``torch.save``'d dict ``{"state_dict_unet": {...}, "optimizer": {...}}``;
it is read with ``torch.load(weights_only=True)`` only, never unpickled freely.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from .configs import SD_TURBO
from .enhancer import SplatentEnhancer
from .errors import CheckpointError, WeightsUnavailableError
from .pretrained import (
    CONFIG_FILE, ORIGINAL_SUFFIXES, PROMPTS_FILE, WEIGHTS_FILE, apply_overrides, read_original_checkpoint,
    read_prompt_embeds,
)

logger = logging.getLogger("splatent")


def save_enhancer(model: SplatentEnhancer, directory: str | os.PathLike, delta: bool = False,
                  dtype: torch.dtype | None = None) -> Path:
    """Write a checkpoint folder (each file atomically); ``model.save_pretrained`` under another name.

    Args:
        model: The enhancer.
        directory: Folder to write (created).
        delta: Store only the UNet weights that differ from the base model's (needs the base weights).
        dtype: Store weights in this dtype (default: as they are).
    """
    return SplatentEnhancer.save_pretrained(model, directory, delta=delta, dtype=dtype)


def load_enhancer(
    source: str | os.PathLike,
    base_model: str | None = None,
    torch_dtype: torch.dtype | None = None,
    **overrides: Any,
) -> SplatentEnhancer:
    """The enhancer in ``source``, whatever it is (``SplatentEnhancer.from_pretrained``):

    * ``tiny``: the seeded CPU-test preset;
    * a checkpoint folder (``config.json`` + ``unet/`` or ``unet.safetensors``);
    * an original checkpoint file (``.pkl``: ``{"state_dict_unet": ...}``), on SD-Turbo's architecture;
    * a base model (hub id or diffusers folder with ``unet/``): untrained, SD-Turbo's own weights.

    Args:
        base_model: Where base weights come from (delta checkpoints, partial ``.pkl``s, the text
            encoder); default: the checkpoint's own ``base_model``, else SD-Turbo.
        torch_dtype: Cast the UNet to this dtype.
        overrides: Config values to change (``timestep``, ``top_k``, ``prompt``, ``scale``, ...).
    """
    return SplatentEnhancer.from_pretrained(source, base_model=base_model, torch_dtype=torch_dtype, **overrides)


def load_original_checkpoint(
    path: str | os.PathLike,
    base_model: str = SD_TURBO,
    unet_config: dict[str, Any] | None = None,
    **config: Any,
) -> SplatentEnhancer:
    """An enhancer from an original ``.pkl``: ``SplatentEnhancer.from_original``, whose docstring says how a complete
    or partial UNet state dict is applied and what ``unet_config`` and ``config`` mean."""
    return SplatentEnhancer.from_original(path, base_model=base_model, unet_config=unet_config, **config)


def convert_original_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    base_model: str = SD_TURBO,
    delta: bool = False,
    dtype: torch.dtype | None = None,
    encode_prompt: bool = True,
    **config: Any,
) -> Path:
    """``splatent convert-ckpt``: an original ``.pkl`` to a checkpoint folder.

    Args:
        src: The original checkpoint.
        dst: The folder to write.
        base_model: Base weights for partial checkpoints, ``--delta`` and the prompt embedding.
        delta: Store only weights differing from the base (small, needs the base to load).
        dtype: Store weights in this dtype.
        encode_prompt: Also store the prompt's embedding when the text encoder can be loaded (so
            inference never needs it); skipped with a note when it cannot.
        config: ``timestep``, ``top_k``, ``prompt``, ``scale`` to record (the original pipeline's by default).
    """
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()) and not (dst / CONFIG_FILE).is_file():
        raise CheckpointError(f"{dst} exists and is not a checkpoint folder; choose an empty or new folder")
    model = load_original_checkpoint(src, base_model=base_model, **config)
    if encode_prompt:
        try:
            model.encode_prompts([model.config.prompt])
        except WeightsUnavailableError as exc:
            logger.warning("prompt embedding not stored (%s); the first enhance loads the text encoder", exc)
    model.save_pretrained(dst, delta=delta, dtype=dtype)
    return dst


__all__ = [
    "CONFIG_FILE", "ORIGINAL_SUFFIXES", "PROMPTS_FILE", "WEIGHTS_FILE", "apply_overrides", "convert_original_checkpoint",
    "load_enhancer", "load_original_checkpoint", "read_original_checkpoint", "read_prompt_embeds", "save_enhancer",
]
