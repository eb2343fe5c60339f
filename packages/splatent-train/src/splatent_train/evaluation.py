"""Evaluation: how much the enhancer improves on the render it was given.

Every metric is computed twice per view, for the enhanced latent and for the
un-enhanced render (the enhancer's input), against the same ground truth:

* ``latent_l2``, ``latent_psnr``: between latents (PSNR peak = the target's own range,
  :func:`splatent_model.latent_psnr`);
* ``psnr``, ``ssim``, ``lpips``: between the codec's decoding and the ground-truth image
  (LPIPS only when an LPIPS network is given).

Keys are ``<metric>_enhanced`` and ``<metric>_render``; :func:`summarize` adds the mean
``<metric>_gain`` (enhanced - render; for ``latent_l2`` and ``lpips`` lower is better).
:func:`compare_views` is what ``splatent eval`` can call on any batch; :class:`Evaluator`
runs it over the test split during training, sharded over processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from splatent_latents.workers import die_with_parent
from splatent_model import latent_psnr, psnr, ssim

from .data import Batch, EnhancerDataset, EntryProblem, collate_samples

logger = logging.getLogger("splatent")

METRICS = ("latent_l2", "latent_psnr", "psnr", "ssim", "lpips")
LOWER_IS_BETTER = ("latent_l2", "lpips")


def latent_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:  # [B, 4, h, w] x2 -> {name: [B]}
    """Mean squared error and PSNR between latents, per sample."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return {"latent_l2": mse, "latent_psnr": latent_psnr(pred, target)}


def image_metrics(
    images: Tensor,  # [B, 3, H, W] in [0, 1]
    gt_images: Tensor,  # [B, 3, H, W] in [0, 1]
    lpips: nn.Module | None = None,
) -> dict[str, Tensor]:  # {name: [B]}
    """PSNR, SSIM and (with ``lpips``) LPIPS per image, in float32."""
    images, gt_images = images.float().clamp(0, 1), gt_images.float().clamp(0, 1)
    out = {"psnr": psnr(images, gt_images), "ssim": ssim(images, gt_images)}
    if lpips is not None:
        dtype = next(lpips.parameters()).dtype
        out["lpips"] = lpips(images.to(dtype) * 2 - 1, gt_images.to(dtype) * 2 - 1).flatten().float()
    return out


@torch.no_grad()
def compare_views(
    enhanced: Tensor,  # [B, 4, h, w] enhanced latents
    render: Tensor,  # [B, 4, h, w] the renders they came from
    target: Tensor,  # [B, 4, h, w] ground-truth latents
    codec: Any,
    gt_images: Tensor | None = None,  # [B, 3, 8h, 8w] in [0, 1]; None: the decoded target
    lpips: nn.Module | None = None,
    render_metrics: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:  # {"<metric>_enhanced" / "<metric>_render": [B]}
    """Every metric of the enhanced latent and of the render against the same ground truth.

    ``render_metrics`` (``{metric: [B]}``) skips recomputing the render's side.
    """
    if gt_images is None:
        gt_images = decode(codec, target)
    out = {}
    sides = {"enhanced": enhanced} if render_metrics is not None else {"enhanced": enhanced, "render": render}
    for side, latents in sides.items():
        metrics = {**latent_metrics(latents, target), **image_metrics(decode(codec, latents), gt_images, lpips)}
        out.update({f"{k}_{side}": v for k, v in metrics.items()})
    if render_metrics is not None:
        out.update({f"{k}_render": v for k, v in render_metrics.items()})
    return out


def decode(codec: Any, latents: Tensor) -> Tensor:  # [B, 4, h, w] -> [B, 3, 8h, 8w] float32 in [0, 1]
    return codec.decode(latents.to(codec.device, codec.dtype)).float()


def summarize(records: Iterable[dict[str, float]]) -> dict[str, float]:
    """Means over views of every ``*_enhanced`` / ``*_render`` key (non-finite values, e.g. the PSNR of identical
    images, left out), plus ``*_gain`` and ``views``."""
    records = list(records)
    keys = sorted({k for r in records for k, v in r.items()
                   if isinstance(v, (int, float)) and k.endswith(("_enhanced", "_render"))})
    means = {}
    for key in keys:
        values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if values:
            means[key] = float(np.mean(values))
    for metric in METRICS:
        if f"{metric}_enhanced" in means and f"{metric}_render" in means:
            means[f"{metric}_gain"] = means[f"{metric}_enhanced"] - means[f"{metric}_render"]
    means["views"] = len(records)
    return means


class PromptTable:
    """The prompt embeddings of a run, ``[P, L, D]`` on one device; a batch indexes it."""

    def __init__(self, prompts: Sequence[str], embeds: Tensor) -> None:  # embeds [P, L, D]
        self.prompts, self.embeds = list(prompts), embeds

    @classmethod
    def from_model(cls, model, prompts: Sequence[str], device: torch.device) -> "PromptTable":
        model.encode_prompts(list(prompts))
        return cls(prompts, torch.cat([model.prompt_cache[p].float() for p in prompts]).to(device))

    def __call__(self, indices: Tensor) -> Tensor:  # [B] -> [B, L, D]
        return self.embeds[indices.to(self.embeds.device)]


@dataclass
class EvalReport:
    """Means over the evaluated views (:func:`summarize`), per-view records and dropped entries."""

    step: int
    means: dict[str, float]
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[EntryProblem] = field(default_factory=list)

    def line(self) -> str:
        m = self.means
        parts = [f"eval step {self.step} ({m.get('views', 0)} views)"]
        for key, label, unit in (("latent_psnr", "latent PSNR", " dB"), ("psnr", "PSNR", " dB"),
                                 ("ssim", "SSIM", ""), ("lpips", "LPIPS", "")):
            if f"{key}_enhanced" in m:
                parts.append(f"{label} {m[f'{key}_enhanced']:.3f} vs render {m[f'{key}_render']:.3f}{unit} "
                             f"({m[f'{key}_gain']:+.3f})")
        return "; ".join(parts)


class Evaluator:
    """Scores the enhancer on (up to ``max_views`` of) the test split; the render's scores are cached.

    Args:
        dataset: The test split (centre crops).
        codec: Decodes latents; lives on the training device.
        prompts: The run's :class:`PromptTable`.
        lpips: LPIPS network for the ``lpips`` metric, or None.
        max_views: Evaluate the first this many entries.
        batch_size, num_workers: Loading.
    """

    def __init__(self, dataset: EnhancerDataset, codec: Any, prompts: PromptTable, lpips: nn.Module | None = None,
                 max_views: int = 100, batch_size: int = 1, num_workers: int = 0) -> None:
        self.dataset, self.codec, self.prompts, self.lpips = dataset, codec, prompts, lpips
        self.max_views, self.batch_size, self.num_workers = max_views, batch_size, num_workers
        self.render_cache: dict[str, dict[str, float]] = {}

    def batches(self, indices: Sequence[int]) -> Iterable[Batch]:
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, sampler=list(indices),
                                           collate_fn=collate_samples, num_workers=self.num_workers,
                                           worker_init_fn=die_with_parent if self.num_workers else None)

    @torch.no_grad()
    def run(self, model, accelerator, step: int) -> EvalReport:
        """Evaluate on every process (each its share), gather the records on all of them."""
        from accelerate.utils import gather_object

        count = min(len(self.dataset), self.max_views)
        mine = list(range(count))[accelerator.process_index::accelerator.num_processes]
        was_training = model.training
        model.eval()
        records: list[dict[str, Any]] = []
        problems: list[EntryProblem] = []
        try:
            for batch in self.batches(mine):
                problems += batch.problems
                if not len(batch):
                    continue
                batch = batch.to(accelerator.device)
                with accelerator.autocast():
                    enhanced = model(batch.views, prompt_embeds=self.prompts(batch.prompts))
                cached = all(i in self.render_cache for i in batch.ids)
                render_metrics = None
                if cached:
                    render_metrics = {k: torch.tensor([self.render_cache[i][k] for i in batch.ids])
                                      for k in self.render_cache[batch.ids[0]]}
                metrics = compare_views(enhanced.float(), batch.views[:, 0], batch.target, self.codec,
                                        batch.float_images(), self.lpips, render_metrics)
                values = {k: v.float().cpu().tolist() for k, v in metrics.items()}
                for j, (entry_id, index) in enumerate(zip(batch.ids, batch.indices)):
                    record = {"id": entry_id, "index": index, **{k: v[j] for k, v in values.items()}}
                    records.append(record)
                    if not cached:
                        self.render_cache[entry_id] = {k.removesuffix("_render"): v for k, v in record.items()
                                                       if k.endswith("_render")}
        finally:
            model.train(was_training)
        if accelerator.num_processes > 1:
            records = gather_object(records)
            problems = gather_object(problems)
        records.sort(key=lambda r: r["index"])
        return EvalReport(step=step, means=summarize(records), records=records, problems=problems)

    @torch.no_grad()
    def grid(self, model, device: torch.device, count: int, autocast=None) -> np.ndarray | None:
        """``[rows·H, (3 + k)·W, 3]`` uint8: render | enhanced | ground truth | references, one row per entry."""
        rows = []
        was_training = model.training
        model.eval()
        try:
            for index in range(min(count, len(self.dataset))):
                batch = collate_samples([self.dataset[index]])
                if not len(batch):
                    continue
                batch = batch.to(device)
                with autocast() if autocast is not None else contextlib.nullcontext():
                    enhanced = model(batch.views, prompt_embeds=self.prompts(batch.prompts)).float()
                gt = batch.float_images()
                gt = decode(self.codec, batch.target) if gt is None else gt
                tiles = [decode(self.codec, batch.views[:, 0]), decode(self.codec, enhanced), gt,
                         *(decode(self.codec, batch.views[:, v]) for v in range(1, batch.views.shape[1]))]
                rows.append(torch.cat([t[0] for t in tiles], dim=2))
        finally:
            model.train(was_training)
        if not rows:
            return None
        width = min(r.shape[2] for r in rows)
        image = torch.cat([r[:, :, :width] for r in rows if r.shape[1] == rows[0].shape[1]], dim=1)
        return image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

