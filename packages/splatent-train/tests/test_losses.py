from __future__ import annotations

import urllib.error

import pytest
import torch

from splatent_train import EnhancerLoss, LpipsUnavailableError, build_lpips, lpips_available
from splatent_train.losses import BACKBONE_URLS, backbone_cache_path


def test_lpips_with_a_random_backbone_scores_and_passes_gradients(random_lpips):
    a = torch.rand(2, 3, 64, 64)
    b = torch.rand(2, 3, 64, 64)
    assert random_lpips(a * 2 - 1, a * 2 - 1).abs().max() < 1e-6
    pred = (b * 2 - 1).requires_grad_(True)
    score = random_lpips(pred, a * 2 - 1).mean()
    assert score > 0
    score.backward()
    assert pred.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in random_lpips.parameters())


def test_offline_without_cache_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    assert not lpips_available("vgg")
    with pytest.raises(LpipsUnavailableError) as err:
        build_lpips("vgg")
    message = str(err.value)
    assert "\n" not in message
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message and "--lambda_lpips 0" in message


def test_cached_backbone_weights_are_loaded_into_the_lpips_trunk(monkeypatch):
    """The torchvision state dict (here a random one standing in for the download) lands in LPIPS's slices."""
    import torchvision

    state = torchvision.models.alexnet().state_dict()
    seen = {}

    def cached(url, **kwargs):
        seen["url"] = url
        assert kwargs.get("weights_only") is True
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", cached)
    model = build_lpips("alex", pretrained=True)
    assert seen["url"] == BACKBONE_URLS["alex"]
    assert torch.equal(model.net.slice1._modules["0"].weight, state["features.0.weight"])
    assert torch.equal(model.net.slice5._modules["10"].bias, state["features.10.bias"])
    assert backbone_cache_path("alex").name == "alexnet-owt-7be5be79.pth"


def test_loss_terms_follow_the_original(random_lpips):
    from splatent_latents import PCACodec

    torch.manual_seed(0)
    codec = PCACodec.fit([torch.rand(3, 32, 32) for _ in range(4)])
    target = torch.randn(2, 4, 4, 4)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_(True)
    images = codec.decode(target)
    l2_only = EnhancerLoss(lambda_l2=1.0, lambda_lpips=0.0, lambda_rgb=0.0, scale_factor=0.5, codec=codec)
    terms = l2_only(pred, target)
    assert torch.allclose(terms.total, ((pred - target) * 0.5).pow(2).mean())
    assert not l2_only.needs_images
    l1 = EnhancerLoss(lambda_l2=2.0, lambda_lpips=0.0, lambda_rgb=0.0, use_l1=True, codec=codec)
    assert torch.allclose(l1(pred, target).total, 2 * (pred - target).abs().mean())
    full = EnhancerLoss(1.0, 2.0, 3.0, codec=codec, lpips=random_lpips)
    terms = full(pred, target, images)
    rgb = ((codec.decode(pred) * 2 - 1) - (images * 2 - 1)).pow(2).mean() * 3
    assert torch.allclose(terms.rgb, rgb, atol=1e-6) and terms.lpips > 0
    assert torch.allclose(terms.total, terms.l2 + terms.lpips + terms.rgb)
    terms.total.backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(LpipsUnavailableError):
        EnhancerLoss(1.0, 1.0, 0.0, codec=codec, lpips=None)


def test_compiling_the_frozen_parts_compiles_lpips_and_keeps_its_scores():
    """``compile`` compiles LPIPS with the VAE decoder (the loss back-propagates through both every step); its scores
    are those of the eager network (``aot_eager``: traced and run through autograd's graph, no code generation)."""
    from splatent_latents import load_codec
    from splatent_train.build import prepare_frozen

    eager_lpips, compiled_lpips = build_lpips("alex", pretrained=False), build_lpips("alex", pretrained=False)
    device = torch.device("cpu")
    kept = prepare_frozen(load_codec("pca"), eager_lpips, device, torch.float32)
    assert kept._compiled_call_impl is None  # nn.Module.compile's hook: not compiled unless asked
    compiled = prepare_frozen(load_codec("pca"), compiled_lpips, device, torch.float32, compile=True)
    assert compiled._compiled_call_impl is not None
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    compiled._compiled_call_impl = torch.compile(compiled._call_impl, backend="aot_eager")
    torch.testing.assert_close(compiled(a, b), kept(a, b))
