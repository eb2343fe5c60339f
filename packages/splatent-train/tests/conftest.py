"""Fixtures: the degraded synthetic dataset (:mod:`splatent_train.testing`) and a download-free LPIPS."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from splatent_train.testing import build_degraded_dataset


@pytest.fixture(scope="session")
def degraded_dataset(tmp_path_factory) -> Path:
    """The dataset JSON of :func:`build_degraded_dataset` (24 views of 128x96: latents 16x12)."""
    return build_degraded_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def random_lpips():
    """LPIPS (AlexNet trunk, the package's linear layers) with a seeded random backbone: no download."""
    from splatent_train import build_lpips

    return build_lpips("alex", pretrained=False)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine train several times faster on one thread than on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
