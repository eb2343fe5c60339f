from __future__ import annotations

import pytest
import torch

from splatent_model import SplatentEnhancer


@pytest.fixture(scope="session")
def tiny_model() -> SplatentEnhancer:
    """The seeded tiny enhancer with its prompt embedded (shared: tests must not modify it)."""
    model = SplatentEnhancer.tiny().eval()
    model.encode_prompts([model.config.prompt])
    return model


@pytest.fixture
def fresh_tiny() -> SplatentEnhancer:
    model = SplatentEnhancer.tiny().eval()
    model.encode_prompts([model.config.prompt])
    return model


@pytest.fixture
def latents() -> torch.Tensor:  # [B=2, V=4, 4, 8, 8]
    return torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (runs in the GPU batch)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
