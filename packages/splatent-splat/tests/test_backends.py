import logging

import pytest
import torch

import splatent_splat.backends as backends
from splatent_data import SplatentError
from splatent_splat import rasterize, resolve_backend
from splatent_splat.backends import camera_positions
from splatent_splat.sh import eval_sh


def test_auto_picks_torch_on_cpu_once_with_a_note(caplog, monkeypatch):
    monkeypatch.setattr(backends, "_noted_fallback", False)
    with caplog.at_level(logging.INFO, logger="splatent"):
        assert resolve_backend("auto", "cpu") == "torch"
        assert resolve_backend("auto", "cpu") == "torch"
    notes = [r for r in caplog.records if "pure-PyTorch" in r.getMessage()]
    assert len(notes) == 1
    assert resolve_backend("auto", "cuda") == "gsplat"
    assert resolve_backend("torch", "cuda") == "torch"


def test_gsplat_on_cpu_and_unknown_backends_are_refused():
    with pytest.raises(SplatentError, match="needs a CUDA device"):
        resolve_backend("gsplat", "cpu")
    with pytest.raises(SplatentError, match="unknown rasteriser backend"):
        resolve_backend("vulkan", "cpu")


def test_camera_positions_invert_viewmats():
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, -2.0, 3.0])
    c2w[:3, :3] = torch.linalg.qr(torch.randn(3, 3))[0]
    assert torch.allclose(camera_positions(torch.linalg.inv(c2w)[None])[0], c2w[:3, 3], atol=1e-5)


def test_sh_degree_evaluates_toward_each_camera_like_gsplat():
    n = 20
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * 0.3
    quats = torch.randn(n, 4, generator=g)
    scales = torch.full((n, 3), 0.2)
    opac = torch.full((n,), 0.7)
    coeffs = torch.randn(n, 4, 4, generator=g) * 0.3
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[:, 2, 3] = 3.0
    viewmats[1, 0, 3] = 0.5
    ks = torch.tensor([[10.0, 0, 8], [0, 10.0, 6], [0, 0, 1]]).repeat(2, 1, 1)
    image, _, meta = rasterize(means, quats, scales, opac, coeffs, viewmats, ks, 16, 12, sh_degree=1)
    dirs = means[None] - camera_positions(viewmats)[:, None]
    colors = torch.clamp_min(eval_sh(1, dirs, coeffs) + 0.5, 0)
    expected, _, _ = rasterize(means, quats, scales, opac, colors, viewmats, ks, 16, 12)
    torch.testing.assert_close(image, expected)
    assert meta["backend"] == "torch"
    with pytest.raises(SplatentError, match="absgrad"):
        rasterize(means, quats, scales, opac, colors, viewmats, ks, 16, 12, absgrad=True)
