"""Loading SD-Turbo components from the hub or a local folder, with one clear line when offline."""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from urllib.parse import urlparse
from typing import Any, Callable, TypeVar

from .configs import PRESETS, SD_TURBO
from .errors import WeightsUnavailableError

logger = logging.getLogger("splatent")

T = TypeVar("T")


def is_preset(base_model: str) -> bool:
    """``tiny`` or ``small``: an architecture built in code, seeded, with no hub weights to load."""
    return str(base_model) in PRESETS


def from_base(loader: Callable[..., T], base_model: str, subfolder: str, what: str, **kwargs: Any) -> T:
    """``loader(base_model, subfolder=subfolder, **kwargs)`` with a one-line error when the files are unreachable.

    ``base_model`` is a hub id (``stabilityai/sd-turbo``) or a local folder laid out
    like it (``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``).
    """
    local = Path(str(base_model)).expanduser()
    if local.is_dir():
        if not (local / subfolder).is_dir():
            raise WeightsUnavailableError(
                f"{local} has no {subfolder}/ folder; pass a diffusers-layout copy of {SD_TURBO} "
                f"(with unet/, text_encoder/, tokenizer/, scheduler/)")
        base_model = str(local)
    elif str(base_model).startswith((".", "/", "~")):
        raise WeightsUnavailableError(f"base model folder {base_model} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return loader(base_model, subfolder=subfolder, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        first_error = exc
    try:
        if local.is_dir() or not _hub_reachable():
            raise first_error
        with warnings.catch_warnings():  # diffusers passes hub arguments the hub client deprecates
            warnings.simplefilter("ignore", UserWarning)
            return loader(base_model, subfolder=subfolder, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:  # hub errors are OSError subclasses; bad ids ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailableError(
            f"cannot load the {what} of '{base_model}' ({first[:160]}); it is not in the local Hugging Face "
            f"cache and the hub is unreachable: run `huggingface-cli download {SD_TURBO}` on a connected "
            f"machine (or set HF_HOME to a cache that has it), or pass a local copy with --base-model") from None


def _hub_reachable() -> bool:
    """False when offline mode is set or the hub's host does not resolve (and no proxy could reach it).

    Saves the hub client's half-minute of retries on a machine without network.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def load_base_unet(base_model: str, torch_dtype=None):
    """SD-Turbo's pretrained ``UNet2DConditionModel`` (weights needed)."""
    from diffusers import UNet2DConditionModel

    kwargs = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    return from_base(UNet2DConditionModel.from_pretrained, base_model, "unet", "UNet", **kwargs)


def load_base_scheduler_config(base_model: str) -> dict[str, Any] | None:
    """The base model's scheduler config, or None when it cannot be read (the built-in one is then used)."""
    from diffusers import DDPMScheduler

    try:
        return dict(from_base(DDPMScheduler.load_config, base_model, "scheduler", "scheduler config"))
    except WeightsUnavailableError as exc:
        logger.debug("using the built-in SD-Turbo schedule: %s", exc)
        return None
