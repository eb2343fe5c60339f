"""FID (Fréchet Inception distance), the fourth metric of the paper's Table 1 (the original code never computed
it), through torchmetrics' ``FrechetInceptionDistance`` and torch-fidelity's Inception-v3 (2048-d pool features).

The Inception weights come the library's own way (torch-fidelity downloads them once into torch's hub cache)
but are read weights-only: a checkpoint that would run code is refused. Offline without them, :func:`build_fid`
raises one clear :class:`SplatentError` and the evaluation reports its other metrics. FID over a scene's few test
views is a noisy number (2048-d statistics from a handful of images); the paper pools whole benchmarks.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from splatent_data import SplatentError

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Every ``torch.load`` in the block reads tensors only (torch-fidelity asks for full unpickling)."""
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def cached_weights() -> Path:
    """Where torch-fidelity's download of the Inception weights is cached (torch.hub's checkpoints folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def build_fid(device: torch.device | str = "cpu", weights: str | Path | None = None, download: bool = True):
    """torchmetrics' ``FrechetInceptionDistance(feature=2048, normalize=True)`` on ``device``.

    Args:
        weights: A local copy of torch-fidelity's Inception weights (default: its download, cached by torch.hub).
        download: Fetch the weights when they are not cached; without it, a missing cache is refused at once
            (building the network first would cost seconds for nothing).
    """
    if weights is None and not download and not cached_weights().is_file():
        raise SplatentError(f"FID not computed: its Inception weights are not cached ({cached_weights()}); "
                            f"`splatent eval --fid` downloads them once (network needed) or --fid_weights PATH reads a copy")
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ModuleNotFoundError as exc:  # pragma: no cover - a dependency of splatent-pipeline
        raise SplatentError(f"FID needs torchmetrics and torch-fidelity ({exc}); pip install torchmetrics torch-fidelity") from None
    if weights is not None and not Path(weights).is_file():
        raise SplatentError(f"FID: no Inception weights at {weights}; pass torch-fidelity's {WEIGHTS_NAME}")
    try:
        with _weights_only_loads():
            metric = FrechetInceptionDistance(feature=2048, normalize=True,
                                              feature_extractor_weights_path=str(weights) if weights else None)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:  # offline, refused pickle, damage
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise SplatentError(f"FID not computed: its Inception weights ({WEIGHTS_NAME}) could not be loaded ({reason}); "
                            f"fetch them once with network access (torch-fidelity caches them) or pass their path")
    return metric.to(device)


@torch.no_grad()
def fid_scores(metric, real: list[Tensor], fakes: dict[str, list[Tensor]]) -> dict[str, float]:
    """FID of each image set in ``fakes`` against ``real`` (``[3, H, W]`` images in [0, 1], sizes may differ):
    one number per key, the real images' features computed once. Needs at least two images per set."""
    if len(real) < 2:
        raise SplatentError(f"FID needs at least 2 images per set, got {len(real)}")
    metric.reset_real_features = True
    metric.reset()
    metric.reset_real_features = False  # later resets keep the photos' statistics
    for image in real:
        metric.update(image[None].to(metric.device).float().clamp(0, 1), real=True)
    out = {}
    for kind, images in fakes.items():
        if len(images) < 2:
            continue
        metric.reset()
        for image in images:
            metric.update(image[None].to(metric.device).float().clamp(0, 1), real=False)
        out[kind] = float(metric.compute())
    return out
