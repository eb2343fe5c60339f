"""One latent per file: ``<stem>.pt`` holding a float32 tensor ``[C, h, w]``.

``C`` is the codec's channel count (4 for ``sd-vae`` and ``pca``, 32 for
``taef2``); a latents folder's manifest records it.

Files are written atomically (temp file + rename) and read with
``torch.load(..., weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from torch import Tensor

from splatent_data import atomic_write_bytes

from .errors import LatentError

LATENT_SUFFIX = ".pt"


def save_latent(path: str | Path, latent: Tensor) -> None:  # latent: [C, h, w]
    """Write one latent as a standalone float32 tensor (never a view of a larger batch)."""
    if latent.ndim != 3:
        raise LatentError(f"a latent is [channels, h, w], got {list(latent.shape)} for {path}")
    buffer = io.BytesIO()
    # clone(): torch.save writes a view's whole storage, i.e. the full batch.
    torch.save(latent.detach().to("cpu", torch.float32).clone(memory_format=torch.contiguous_format), buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_latent(
    path: str | Path,
    shape: tuple[int, int, int] | None = None,
    channels: int | None = None,
) -> Tensor:  # [C, h, w] float32
    """Read one latent; a leading batch axis of 1 (``[1, C, h, w]``) is dropped.

    Args:
        path: A ``.pt`` file holding one tensor.
        shape: The exact ``(channels, h, w)`` expected, when known.
        channels: The channel count expected otherwise (the manifest's ``channels``); ``None`` takes any.
    """
    path = Path(path)
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LatentError(f"latent file {path} does not exist; run `splatent extract` first") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise LatentError(f"cannot read latent file {path} ({reason}); it must hold one tensor saved with torch.save; delete it and re-extract") from None
    if not isinstance(value, Tensor):
        raise LatentError(f"latent file {path} holds a {type(value).__name__}, not a tensor; delete it and re-extract")
    if value.ndim == 4 and value.shape[0] == 1:
        value = value[0]
    expected = f"({', '.join(map(str, shape))})" if shape else f"({channels or 'C'}, h, w)"
    if value.ndim != 3 or (tuple(value.shape) != tuple(shape) if shape else
                           channels is not None and value.shape[0] != channels):
        raise LatentError(f"latent file {path} has shape {tuple(value.shape)}, expected {expected}; "
                          f"it was written for another image size or by another tool: re-extract it")
    if not value.is_floating_point():
        raise LatentError(f"latent file {path} holds {value.dtype} values, expected floats; re-extract it")
    value = value.float()
    if not torch.isfinite(value).all():
        raise LatentError(f"latent file {path} contains NaN or infinite values; re-extract it (with --dtype float32 if it recurs)")
    return value
