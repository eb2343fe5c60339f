"""Fixtures shared by the pipeline package's tests."""

from __future__ import annotations

import pytest
import torch

from splatent_data import make_synthetic_scene
from splatent_pipeline import PipelineConfig, run_pipeline


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny pca fit of a 10-view synthetic scene, rendered (``out/``: model, renders, data): one per test module,
    so a module may write beside it."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fitted")
    make_synthetic_scene(root / "scene", n_views=10, width=64, height=48)
    run_pipeline(PipelineConfig(scene_path=root / "scene", output_dir=root / "out", codec="pca", steps=30,
                                lpips=False, device="cpu", backend="torch", stop_after="render",
                                fit_options={"init_points": 2000, "eval_every": 1000, "tensorboard": False}),
                 say=lambda _: None)
    return root / "out"
