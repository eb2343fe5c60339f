"""The small objects the fitting loop calls: view order, learning rates,
densification, checkpoints and evaluation. Each is tested on its own."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from splatent_data import SplatentError

from .cameras import camera_tensors
from .gaussians import FeatureGaussians
from .losses import psnr, ssim
from .views import View

logger = logging.getLogger("splatent")

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.pt$")


class ViewSampler:
    """Training views in a fresh random order every epoch, as 3DGS visits them."""

    def __init__(self, num_views: int, seed: int = 0) -> None:
        if num_views < 1:
            raise SplatentError("no training views: the split leaves every view for testing")
        self.num_views = num_views
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []
        self.position = 0

    def next(self) -> int:
        if self.position >= len(self.order):
            self.order = torch.randperm(self.num_views, generator=self.generator).tolist()
            self.position = 0
        self.position += 1
        return self.order[self.position - 1]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": list(self.order), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = [int(i) for i in state["order"]]
        self.position = int(state["position"])


@dataclass
class LearningRates:
    """gsplat's simple_trainer schedule: Adam per parameter; the means' rate,
    proportional to the scene scale, decays exponentially to ``means_final`` x
    its start by the last step; the others stay constant.

    As ``FitConfig.lr`` it holds the rates; ``fit_scene`` fills in ``scene_scale`` and ``steps`` for the run."""

    means: float = 1.6e-4
    means_final: float = 0.01
    scales: float = 5e-3
    quats: float = 1e-3
    opacities: float = 5e-2
    features: float = 2.5e-3
    features_rest: float = 2.5e-3 / 20
    scene_scale: float = 1.0
    steps: int = 10_000

    def initial(self, name: str) -> float:
        return {
            "means": self.means * self.scene_scale, "scales": self.scales, "quats": self.quats,
            "opacities": self.opacities, "feat0": self.features, "featN": self.features_rest,
            "rgb0": self.features, "rgbN": self.features_rest,
        }[name]

    def means_decay(self, step: int) -> float:
        """The factor on the means' initial rate at ``step``."""
        return self.means_final ** min(1.0, step / max(1, self.steps))

    def means_at(self, step: int) -> float:
        return self.initial("means") * self.means_decay(step)

    def make_optimizers(self, gaussians: FeatureGaussians, fused: bool = False) -> dict[str, torch.optim.Optimizer]:
        """One Adam per parameter (gsplat's strategies need exactly one group each); ``fused``: PyTorch's fused
        CUDA kernel (one launch per parameter and step instead of a handful; the same update)."""
        return {
            name: torch.optim.Adam([{"params": param, "lr": self.initial(name), "name": name}], eps=1e-15,
                                   **({"fused": True} if fused else {}))
            for name, param in gaussians.params.items()
        }

    def make_scheduler(self, optimizers: dict[str, torch.optim.Optimizer], start_step: int = 0
                       ) -> torch.optim.lr_scheduler.LambdaLR:
        """The means' decay as a torch scheduler (:meth:`means_at` per step), positioned at ``start_step`` so a
        resumed fit continues the schedule; step it after each optimiser step. The other rates stay constant."""
        means = optimizers["means"]
        means.param_groups[0]["initial_lr"] = self.initial("means")
        return torch.optim.lr_scheduler.LambdaLR(means, self.means_decay, last_epoch=start_step - 1)


@dataclass
class StrategyConfig:
    """How Gaussians are added and removed (``FitConfig.strategy``); ``None``: the strategy's default.

    ``name``: ``default`` (3DGS's adaptive density control), ``mcmc`` (3DGS-MCMC, CUDA only) or ``none``.
    """

    name: str = "default"
    refine_start: int = 500
    refine_stop: int | None = None  # half the steps (at most 15 000); MCMC: 5/6 (at most 25 000)
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 2e-4
    prune_opa: float = 0.005
    max_gaussians: int = 1_000_000
    opacity_reg: float | None = None  # 0.01 for MCMC
    scale_reg: float | None = None  # 0.01 for MCMC

    def resolved(self, steps: int) -> "StrategyConfig":
        """A copy with every ``None`` replaced by the strategy's default for a run of ``steps``, validated."""
        if self.name not in ("default", "mcmc", "none"):  # before the scene is loaded, not after initialisation
            raise SplatentError(f"unknown densification strategy {self.name!r}; use default, mcmc or none")
        mcmc = self.name == "mcmc"
        stop = self.refine_stop
        if stop is None:
            stop = min(25_000, steps * 5 // 6) if mcmc else min(15_000, steps // 2)
        return dataclasses.replace(
            self, refine_stop=stop,
            opacity_reg=self.opacity_reg if self.opacity_reg is not None else (0.01 if mcmc else 0.0),
            scale_reg=self.scale_reg if self.scale_reg is not None else (0.01 if mcmc else 0.0),
        )


@dataclass
class Densifier:
    """Densification and pruning through gsplat's strategies.

    ``default`` is gsplat's :class:`~gsplat.strategy.DefaultStrategy` (3DGS's
    clone/split/prune/opacity-reset). Its tensor surgery is plain PyTorch, so
    the torch backend runs the very same schedule on CPU from the same
    ``means2d`` gradients and ``radii``. ``mcmc`` is gsplat's
    :class:`~gsplat.strategy.MCMCStrategy`; its relocation kernel is CUDA-only.

    gsplat 1.5.3's DefaultStrategy never resets opacities (``step % reset_every
    == 0 & step > 0`` parses as a chained comparison that is always false);
    3DGS resets them every ``reset_every`` steps while refining, so this does.
    """

    strategy: str = "default"
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 2e-4
    prune_opa: float = 0.005
    max_gaussians: int = 1_000_000
    scene_scale: float = 1.0
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.strategy == "default":
            from gsplat.strategy import DefaultStrategy

            self.impl = DefaultStrategy(
                prune_opa=self.prune_opa, grow_grad2d=self.grow_grad2d, refine_start_iter=self.refine_start,
                refine_stop_iter=self.refine_stop, refine_every=self.refine_every, reset_every=self.reset_every,
            )
            self.state = self.impl.initialize_state(scene_scale=self.scene_scale)
        elif self.strategy == "mcmc":
            from gsplat.strategy import MCMCStrategy

            self.impl = MCMCStrategy(
                cap_max=self.max_gaussians, refine_start_iter=self.refine_start, refine_stop_iter=self.refine_stop,
                refine_every=self.refine_every, min_opacity=self.prune_opa,
            )
            self.state = self.impl.initialize_state()
        elif self.strategy != "none":
            raise SplatentError(f"unknown densification strategy {self.strategy!r}; use default, mcmc or none")

    @classmethod
    def from_config(cls, config: StrategyConfig, scene_scale: float) -> "Densifier":
        """The strategy of a resolved :class:`StrategyConfig` (its regularisers are the loss's business)."""
        return cls(strategy=config.name, refine_start=config.refine_start, refine_stop=config.refine_stop,
                   refine_every=config.refine_every, reset_every=config.reset_every, grow_grad2d=config.grow_grad2d,
                   prune_opa=config.prune_opa, max_gaussians=config.max_gaussians, scene_scale=scene_scale)

    def check(self, gaussians: FeatureGaussians, optimizers: dict, backend: str) -> None:
        if self.strategy == "mcmc" and backend != "gsplat":
            raise SplatentError("--strategy mcmc needs gsplat's CUDA kernels; use --strategy default on the torch backend")
        if self.strategy != "none":
            self.impl.check_sanity(gaussians.params, optimizers)

    def pre_backward(self, gaussians: FeatureGaussians, optimizers: dict, step: int, info: dict) -> None:
        if self.strategy == "default":
            self.impl.step_pre_backward(gaussians.params, optimizers, self.state, step, info)

    def post_backward(self, gaussians: FeatureGaussians, optimizers: dict, step: int, info: dict, lr_means: float) -> None:
        if self.strategy == "default":
            self.impl.step_post_backward(gaussians.params, optimizers, self.state, step, info, packed=info["packed"])
            if 0 < step < self.refine_stop and step % self.reset_every == 0:
                from gsplat.strategy.ops import reset_opa

                reset_opa(gaussians.params, optimizers, self.state, value=self.prune_opa * 2.0)
        elif self.strategy == "mcmc":
            self.impl.step_post_backward(gaussians.params, optimizers, self.state, step, info, lr=lr_means)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = dict(state)


def regularisation(gaussians: FeatureGaussians, opacity_reg: float, scale_reg: float) -> Tensor | float:
    """MCMC's L1 pressure on opacities and scales (zero weights: nothing)."""
    loss: Tensor | float = 0.0
    if opacity_reg > 0:
        loss = loss + opacity_reg * torch.sigmoid(gaussians.params["opacities"]).mean()
    if scale_reg > 0:
        loss = loss + scale_reg * torch.exp(gaussians.params["scales"]).mean()
    return loss


@torch.no_grad()
def evaluate(
    gaussians: FeatureGaussians, views: list[View], data_range: float, channel: str = "feature",
    backend: str = "auto", **options,
) -> dict[str, Any]:
    """Mean PSNR and SSIM of ``views`` (data space, ``data_range``), per-view PSNR, and ``preview``: the first
    view's render beside its ground truth, ``[3, h, 2w]`` in [0, 1] (a latent's first three channels, each
    stretched over the ground truth's range: a false-colour picture for TensorBoard)."""
    per_view: dict[str, float] = {}
    ssims = []
    preview = None
    for view in views:
        viewmats, ks = camera_tensors([view.camera], gaussians.device)
        image, _, _ = gaussians.render(viewmats, ks, view.camera.width, view.camera.height, channel=channel,
                                       backend=backend, **options)
        pred = image[0].permute(2, 0, 1)[None]
        target = view.target[None].to(pred)
        if channel == "rgb" or gaussians.feature_kind == "rgb":
            pred = pred.clamp(0.0, 1.0)
        if preview is None:
            preview = _preview(pred[0].detach(), target[0])
        per_view[view.stem] = float(psnr(pred, target, data_range)[0])
        ssims.append(float(ssim(pred, target, data_range=data_range)[0]))
    if not per_view:
        return {"psnr": None, "ssim": None, "per_view": {}, "preview": None}
    finite = [v for v in per_view.values() if math.isfinite(v)]
    return {
        "psnr": sum(finite) / max(1, len(finite)) if finite else float("inf"),
        "ssim": sum(ssims) / len(ssims),
        "per_view": per_view,
        "preview": preview,
    }


def _preview(pred: Tensor, target: Tensor) -> Tensor:  # [C, h, w] x2 -> [3, h, 2w] in [0, 1]
    pair = torch.cat([pred, target], dim=-1)[:3].float()
    if pair.shape[0] < 3:
        pair = pair[:1].expand(3, -1, -1)
    lo = target[:3].float().flatten(1).min(1).values.reshape(-1, 1, 1)[: pair.shape[0]]
    hi = target[:3].float().flatten(1).max(1).values.reshape(-1, 1, 1)[: pair.shape[0]]
    return ((pair - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1).cpu()


def checkpoint_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "checkpoints"


def list_checkpoints(model_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint, oldest first."""
    folder = checkpoint_dir(model_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


def save_checkpoint(model_dir: Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoints/step_XXXXXX.pt`` atomically; keep the newest ``keep``."""
    folder = checkpoint_dir(model_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:06d}.pt"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    for _, old in list_checkpoints(model_dir)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling code (``weights_only=True``)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for bad files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        if "Weights only load failed" in reason:
            reason = "damaged, or it holds objects a weights-only load refuses (a full load could run code)"
        raise SplatentError(
            f"cannot read checkpoint {path}: {reason}; delete it to resume from an older one"
        ) from None
