import pytest
import torch

from splatent_data import SplatentError
from splatent_splat import build_gsplat_kernels, gsplat_cache_dir
from splatent_splat.agreement import random_scene, render_with
from splatent_splat.kernels import KernelBuild


def test_cache_dir_is_torch_extensions_gsplat_folder():
    folder = gsplat_cache_dir()
    assert folder is None or folder.name == "gsplat_cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_building_kernels_without_cuda_is_refused_clearly():
    with pytest.raises(SplatentError, match="needs a CUDA GPU"):
        build_gsplat_kernels()


def test_build_report_wording(tmp_path):
    assert "built gsplat's CUDA extension in 85.0 s" in KernelBuild(tmp_path, 85.0, "built").describe()
    assert "cached" in KernelBuild(tmp_path, 0.2, "cached").describe()


def test_agreement_harness_runs_on_cpu():
    scene = random_scene(num_gaussians=200, width=24, height=18, channels=3, sh_degree=1, device="cpu")
    out = render_with("torch", scene)
    assert out["image"].shape == (3, 18, 24, 3)
    assert all(g is not None and torch.isfinite(g).all() for g in out["grads"].values())
    assert out["alpha"].max() > 0.5
