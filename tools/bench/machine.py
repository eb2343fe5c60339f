"""What machine a benchmark ran on: the fields every report's JSON starts with, read one way."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch  # imported where it is needed: a report's head costs no torch import until it is made


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (``platform.processor()`` is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_label(device: str | torch.device) -> str:
    """The GPU's name for a CUDA device, else ``CPU (N cores, T torch threads; model)``."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads; {cpu_model()})"


def machine(device: str | torch.device | None = None) -> dict:
    """Date, device, Python, torch, CUDA, CPU cores and visible GPUs: the head of a benchmark report.
    ``device``: what the benchmark runs on (default: the first GPU where there is one, else the CPU)."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return {"date": time.strftime("%Y-%m-%d"), "device": device_label(device), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_count": os.cpu_count(),
            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0}
