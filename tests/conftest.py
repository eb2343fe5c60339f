import subprocess
import sys
from pathlib import Path

import pytest
from splatent_pipeline import PipelineConfig
from splatent_data import make_synthetic_scene


BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench"


def _run_bench(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``tools/bench/<script>`` with ``args`` in a child Python; fails the test with its stderr's end unless it exits 0."""
    run = subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="session")
def run_bench():
    """``run_bench(script, *args, timeout=900) -> CompletedProcess``: see :func:`_run_bench`."""
    return _run_bench


def _tiny_pipeline(root: Path) -> PipelineConfig:
    """A 10-view synthetic scene in ``root/scene`` and a CPU pipeline over it that takes seconds: pca codec,
    torch rasteriser, 40 fit steps, the untrained tiny enhancer, no LPIPS."""
    make_synthetic_scene(root / "scene", n_views=10, width=64, height=48)
    return PipelineConfig(scene_path=root / "scene", output_dir=root / "out", codec="pca", steps=40, top_k=3,
                          model_splatent_path="tiny", lpips=False, device="cpu", backend="torch",
                          fit_options={"init_points": 2000, "eval_every": 1000, "tensorboard": False})


@pytest.fixture(scope="session")
def tiny_pipeline():
    """``tiny_pipeline(root) -> PipelineConfig``: see :func:`_tiny_pipeline`."""
    return _tiny_pipeline


@pytest.fixture(scope="session")
def tiny_result(tmp_path_factory) -> Path:
    """The output folder of one finished tiny pipeline (model, renders, enhanced views, eval report), shared by the
    tests that only read it (the report and the viewer in a browser)."""
    import torch

    from splatent_pipeline import run_pipeline

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-result")
    run_pipeline(_tiny_pipeline(root), say=lambda line: None)
    return root / "out"
