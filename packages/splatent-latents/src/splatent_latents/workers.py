"""Data-loader workers that can neither hang a run nor outlive it (every stage's loaders use these).

* :func:`die_with_parent` is the ``worker_init_fn``: on Linux the kernel kills the worker when the process that
  started it dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of ``splatent extract`` or ``train`` leaves no worker
  behind; PyTorch's own watchdog only notices between batches and a worker blocked writing a batch never does.
* :func:`as_is` is the ``collate_fn`` of loaders whose workers return NumPy arrays: the arrays travel through the
  worker's pipe instead of a shared-memory file (PyTorch's default for tensors), whose creation fails under a
  file-size limit or a full ``/dev/shm`` inside the worker's queue thread, where nothing reports it and the main
  process waits for the batch forever.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(worker_id: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl (another libc): PyTorch's watchdog still ends idle workers
        return
    if parent == 1 or os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def as_is(item: Any) -> Any:
    """A ``collate_fn`` that leaves the dataset's item as it is (no conversion to tensors in the worker)."""
    return item


def tensors_to_arrays(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with every CPU tensor replaced by a NumPy array (for a ``__getstate__``: the arrays pickle into the
    worker's pipe, where a tensor would go to a shared-memory file)."""
    import torch

    return {k: _Array(v.numpy()) if isinstance(v, torch.Tensor) and v.device.type == "cpu" and _numpy_dtype(v) else v
            for k, v in state.items()}


def arrays_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`tensors_to_arrays` (for a ``__setstate__``), without copying."""
    import torch

    return {k: torch.from_numpy(v.array) if isinstance(v, _Array) else v for k, v in state.items()}


class _Array:
    """A NumPy array that was a tensor (so arrays that were arrays stay arrays)."""

    __slots__ = ("array",)

    def __init__(self, array) -> None:
        self.array = array

    def __getstate__(self):
        return self.array

    def __setstate__(self, array) -> None:
        self.array = array


def _numpy_dtype(tensor) -> bool:
    import torch

    return tensor.dtype not in (torch.bfloat16,) and not tensor.requires_grad
