"""The original's losses, and LPIPS built without surprises.

``total = lambda_l2 · L2(pred, target) + lambda_lpips · LPIPS(dec(pred), gt) + lambda_rgb · MSE(dec(pred), gt)``

* L2 (L1 with ``use_l1``) is taken between latents in the UNet's space (× the scaling
  factor when ``--scale``), as the original compares its scaled tensors; the lambdas
  therefore keep the original's balance.
* LPIPS and the RGB MSE compare the codec's decoding of the prediction with the
  ground-truth image, both in [-1, 1] (the original's range).

LPIPS (the ``lpips`` package) ships its own linear-layer weights; the VGG/AlexNet
backbone comes from torchvision's download. :func:`build_lpips` fetches that first,
so a machine that is offline and has no cached copy gets one line saying where to put
the file, not a urllib traceback; ``pretrained=False`` keeps a seeded random backbone
(tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import LpipsUnavailableError

logger = logging.getLogger("splatent")

# torchvision's ImageNet weights of the LPIPS backbones (what ``lpips`` downloads through torchvision).
BACKBONE_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
}


def backbone_cache_path(net: str) -> Path:
    """Where torchvision keeps (or would keep) the backbone weights of ``net``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_URLS[net].rsplit("/", 1)[-1]


def lpips_available(net: str = "vgg") -> bool:
    """True when the backbone weights are cached, so :func:`build_lpips` needs no network."""
    return backbone_cache_path(net).is_file()


def build_lpips(net: str = "vgg", pretrained: bool = True, seed: int = 0, off_switch: str = "--lambda_lpips 0") -> nn.Module:
    """An ``lpips.LPIPS`` (frozen, eval mode) on the CPU: the one LPIPS loader, for the loss and the metric.

    Args:
        net: ``vgg`` (the original's loss) or ``alex`` (the usual metric).
        pretrained: ImageNet backbone from torchvision's cache or download; False: a backbone
            drawn from ``seed`` (same architecture and cost, meaningless values).
        off_switch: The option that turns LPIPS off, named when the weights cannot be had.
    """
    import lpips

    if net not in BACKBONE_URLS:
        raise LpipsUnavailableError(f"--lpips_net {net!r} is not one of {', '.join(BACKBONE_URLS)}")
    backbone = _backbone_state(net, off_switch) if pretrained else None
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on lpips's legacy ``pretrained=`` argument
        torch.manual_seed(seed)
        # pnet_rand: build the trunk without torchvision's download; its weights are loaded below.
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    if backbone is not None:
        _load_backbone(model, backbone)
    return model.eval().requires_grad_(False)


def _backbone_state(net: str, off_switch: str) -> dict[str, Tensor]:
    url = BACKBONE_URLS[net]
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True, map_location="cpu",
                                                  weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:  # urllib's URLError is an OSError
        reason = " ".join(str(getattr(exc, "reason", exc)).split())[:120]
        raise LpipsUnavailableError(
            f"cannot get the {net.upper()} weights LPIPS needs ({reason}): download {url} on a connected machine "
            f"into {backbone_cache_path(net)} (or set TORCH_HOME to a cache that has it), or pass {off_switch}"
        ) from None


def _load_backbone(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy torchvision's ``features.<i>.*`` weights into LPIPS's ``slice<k>.<i>.*`` layers."""
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    loaded = 0
    for slice_module in model.net.children():
        names = {n for n, _ in slice_module.named_children()}
        part = {k: v for k, v in features.items() if k.split(".", 1)[0] in names}
        slice_module.load_state_dict(part, strict=True)
        loaded += len(part)
    if loaded == 0:
        raise LpipsUnavailableError("the LPIPS backbone weights did not match its layers; reinstall lpips and torchvision")


@dataclass
class LossTerms:
    """One micro-step's weighted loss terms (scalars); ``total`` is what is back-propagated."""

    total: Tensor
    l2: Tensor
    lpips: Tensor
    rgb: Tensor

    def stacked(self) -> Tensor:  # [4] detached
        return torch.stack([self.total, self.l2, self.lpips, self.rgb]).detach().float()


NAMES = ("loss", "loss_l2", "loss_lpips", "loss_rgb")


@dataclass
class EnhancerLoss:
    """The training objective. ``codec`` decodes predictions; ``lpips`` is needed when ``lambda_lpips`` > 0.

    Attributes:
        lambda_l2, lambda_lpips, lambda_rgb: Weights.
        use_l1: L1 instead of L2 between latents.
        scale_factor: Latents are compared after multiplying by it (the UNet's space).
        codec: A ``splatent_latents.LatentCodec`` (frozen).
        lpips: An ``lpips.LPIPS`` (frozen) or None.
    """

    lambda_l2: float = 1.0
    lambda_lpips: float = 2.0
    lambda_rgb: float = 1.0
    use_l1: bool = False
    scale_factor: float = 1.0
    codec: Any = None
    lpips: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.lambda_lpips > 0 and self.lpips is None:
            raise LpipsUnavailableError("lambda_lpips > 0 needs an LPIPS network (build_lpips)")

    @property
    def needs_images(self) -> bool:
        return self.lambda_lpips > 0 or self.lambda_rgb > 0

    def __call__(
        self,
        pred: Tensor,  # [B, 4, h, w] predicted latents, unscaled
        target: Tensor,  # [B, 4, h, w] ground-truth latents, unscaled
        images: Tensor | None = None,  # [B, 3, 8h, 8w] ground truth in [0, 1]
    ) -> LossTerms:
        s = self.scale_factor
        distance = F.l1_loss if self.use_l1 else F.mse_loss
        l2 = distance(pred.float() * s, target.float() * s) * self.lambda_l2
        zero = l2.new_zeros(())
        lpips_term = rgb = zero
        if self.needs_images:
            if images is None:
                raise LpipsUnavailableError("the LPIPS and RGB losses need ground-truth images; the batch has none")
            decoded = decode_for_loss(self.codec, pred) * 2.0 - 1.0
            gt = images.to(decoded.device, decoded.dtype) * 2.0 - 1.0
            if self.lambda_lpips > 0:
                lpips_term = self.lpips(decoded, gt).mean().float() * self.lambda_lpips
            if self.lambda_rgb > 0:
                rgb = F.mse_loss(decoded.float(), gt.float()) * self.lambda_rgb
        return LossTerms(total=l2 + lpips_term + rgb, l2=l2, lpips=lpips_term, rgb=rgb)


def decode_for_loss(codec: Any, latents: Tensor) -> Tensor:  # [B, 4, h, w] -> [B, 3, 8h, 8w] in [0, 1]
    """The codec's decoding with gradients to ``latents`` (the codec itself is frozen)."""
    return codec.decode(latents.to(codec.dtype))
