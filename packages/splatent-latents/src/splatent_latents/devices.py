"""The one device and dtype resolver of every package: ``auto`` means CUDA when available, and each dtype has
one table of spellings (``float16``/``fp16``/``half``...), so ``--device`` and ``--dtype`` mean the same in every
command and in accelerate's ``mixed_precision`` names."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

from .errors import LatentError

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def default_dtype(device: torch.device) -> torch.dtype:
    """What ``--dtype auto`` means for a network (the enhancer, a VAE): bfloat16 on CUDA (float16 where bf16
    is unsupported), float32 on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bf16"``, ``"float16"``, ``torch.float32``... as a ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise LatentError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16") from None


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; an unavailable CUDA device is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LatentError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LatentError(f"--device {device} asked for CUDA but this torch ({torch.__version__}) sees no CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LatentError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device, codec_name: str) -> torch.dtype:
    """``"auto"``: bfloat16 for VAEs and taef2 on CUDA (float16 where bf16 is unsupported), else float32.

    bf16 keeps fp32's range, so the encoder cannot overflow; its latents differ
    from fp32 by well under the noise of any later stage. PCA is a few
    multiply-adds per pixel and always runs in float32 unless asked otherwise.
    """
    if str(dtype) != "auto":
        return parse_dtype(dtype)
    return torch.float32 if codec_name == "pca" else default_dtype(device)


#: Threads for a CPU run of many small kernels (a fit's per-view rasterisation): more threads mostly wait on each
#: other, and on a busy machine much worse (a fox fit: 45 steps/s with one thread, 6 with all under contention).
SMALL_KERNEL_THREADS = 1


@contextlib.contextmanager
def cpu_threads(device: torch.device, threads: int | None = None) -> Iterator[int]:
    """Run the block with ``threads`` intra-op threads on the CPU (default: ``OMP_NUM_THREADS`` when the user set
    it, else :data:`SMALL_KERNEL_THREADS`); a CUDA run is left alone. Restores the previous count."""
    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before
        return
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else SMALL_KERNEL_THREADS
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
