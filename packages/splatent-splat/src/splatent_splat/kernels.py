"""gsplat's CUDA extension: build it ahead of time and say where it is cached.

gsplat 1.5 ships as source and JIT-compiles its extension (``gsplat_cuda``) on
first use through ``torch.utils.cpp_extension`` (``gsplat/cuda/_backend.py``),
into ``$TORCH_EXTENSIONS_DIR/<python+cuda tag>/gsplat_cuda`` (by default under
``~/.cache/torch_extensions``). That takes one to a few minutes, silently
inside the first rasterisation; ``build_gsplat_kernels`` does it up front
(``splatent fit --build-kernels``) and ``ensure_gsplat_kernels`` says what is
happening before a fit triggers it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from splatent_data import SplatentError

logger = logging.getLogger("splatent")

EXTENSION_NAME = "gsplat_cuda"


@dataclass(frozen=True)
class KernelBuild:
    """Where gsplat's extension lives and what loading it took."""

    path: Path | None
    seconds: float
    status: str  # "prebuilt" (a wheel with gsplat.csrc), "cached" (JIT build found) or "built"

    def describe(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return {"prebuilt": f"gsplat's CUDA extension is prebuilt{where}",
                "cached": f"gsplat's CUDA extension is cached{where} (loaded in {self.seconds:.1f} s)",
                "built": f"built gsplat's CUDA extension in {self.seconds:.1f} s; cached{where}"}[self.status]


def gsplat_cache_dir() -> Path | None:
    """The folder gsplat's JIT build writes to (``None`` if torch cannot say)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory
    except ImportError:  # a private helper; absent in some torch versions
        return None
    return Path(_get_build_directory(EXTENSION_NAME, verbose=False))


def _prebuilt() -> bool:
    return importlib.util.find_spec("gsplat.csrc") is not None


def is_cached() -> bool:
    """True when gsplat needs no compilation (prebuilt, or a finished JIT build exists)."""
    if _prebuilt():
        return True
    folder = gsplat_cache_dir()
    return folder is not None and (folder / f"{EXTENSION_NAME}.so").is_file()


def build_gsplat_kernels(max_jobs: int | None = None) -> KernelBuild:
    """Compile (or load) gsplat's CUDA extension now and report where it is cached.

    Args:
        max_jobs: Parallel compile jobs (``MAX_JOBS``); default: all CPU cores
            (gsplat's own default is 10).
    """
    if not torch.cuda.is_available():
        raise SplatentError("building gsplat's kernels needs a CUDA GPU; on this machine use --backend torch")
    if max_jobs or not os.environ.get("MAX_JOBS"):
        os.environ["MAX_JOBS"] = str(max_jobs or os.cpu_count() or 4)
    status = "prebuilt" if _prebuilt() else ("cached" if is_cached() else "built")
    t0 = time.perf_counter()
    from gsplat.cuda._backend import _C

    seconds = time.perf_counter() - t0
    if _C is None:
        raise SplatentError(
            "gsplat could not build its CUDA extension: no CUDA toolkit (nvcc) found; "
            "install the toolkit matching PyTorch's CUDA or set CUDA_HOME"
        )
    path = Path(getattr(_C, "__file__", "")).parent if getattr(_C, "__file__", None) else gsplat_cache_dir()
    return KernelBuild(path=path, seconds=seconds, status=status)


def ensure_gsplat_kernels() -> KernelBuild:
    """Load gsplat's extension before a fit, announcing a first-time build."""
    if not is_cached():
        logger.info(
            "building gsplat's CUDA kernels (first use only, 1-3 minutes; "
            "`splatent fit --build-kernels` does this ahead of time)"
        )
    build = build_gsplat_kernels()
    if build.status == "built":
        logger.info("%s", build.describe())
    return build
