"""The ``enhance`` stage: batched enhancement of a dataset split or of loose files.

Both stages read their inputs into work items (:mod:`splatent_model.files`), run them through an
:class:`~splatent_model.pipeline.EnhancePipeline` in batches of equal shape, and hand writing to a
small thread pool so the GPU never waits on PNG compression or file I/O; the next batch's reads
run while the current one computes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from splatent_latents import ProgressCallback

from .enhancer import SplatentEnhancer
from .errors import EnhanceInputError
from .files import (
    LoadedItem, ViewLoader, WorkItem, Writer, codec_config, collect_inputs, dataset_work_items, file_work_items,
    clear_view_outputs, finished_views, match_references, prefetched, same_shape_groups, save_png, write_manifest,
    write_metrics, write_video,
)
from .grid import grid_shape
from .metrics import mean_metrics
from .pipeline import EnhanceOutput, EnhancePipeline, codec_for
from .runtime import RuntimeOptions

logger = logging.getLogger("splatent")

Progress = ProgressCallback  # progress(views done, views total): splatent_latents' one protocol


@dataclass
class EnhanceResult:
    """What a run did: views enhanced now, views found done, output folder, mean metrics."""

    output_dir: Path
    enhanced: int
    skipped: int
    seconds: float
    metrics: dict[str, float | None] = field(default_factory=dict)
    video: Path | None = None

    @property
    def count(self) -> int:
        """Views in the output folder for this run's inputs (enhanced now + found done)."""
        return self.enhanced + self.skipped

    @property
    def views_per_second(self) -> float:
        return self.enhanced / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class DatasetEnhanceOptions:
    """What :func:`enhance_dataset` enhances and writes (how it runs is :class:`RuntimeOptions`).

    Attributes:
        split: The dataset split to enhance.
        timestep: Overrides the enhancer's fixed timestep.
        min_k: Skip the first ``min_k`` references of each entry (the original's ``--min_k``).
        prompt: Use this prompt instead of each entry's.
        scene_id: Only entries whose feature path contains this string.
        rgb_root: Ground-truth images at ``rgb_root/<scene>/<images_dir>/<stem>.png``.
        images_dir: The image folder name under ``rgb_root`` scenes.
        save_images: Write decoded PNGs.
        metrics: Score each view with ground truth (``metrics.json``).
        overwrite: Re-enhance every view.
        workers: Threads reading inputs and writing outputs.
        method_name: A label recorded in the manifest (the original's ``--method_name``).
    """

    split: str = "test"
    timestep: int | None = None
    min_k: int = 0
    prompt: str | None = None
    scene_id: str | None = None
    rgb_root: str | Path | None = None
    images_dir: str = "images_4"
    save_images: bool = True
    metrics: bool = True
    overwrite: bool = False
    workers: int = 4
    method_name: str | None = None


@dataclass
class FilesEnhanceOptions:
    """What :func:`enhance_files` enhances and writes (how it runs is :class:`RuntimeOptions`).

    Attributes:
        prompt: The prompt (default: the checkpoint's).
        timestep: Overrides the enhancer's fixed timestep.
        save_latents: Also write the enhanced ``<stem>.pt`` latents.
        save_images: Write decoded ``<stem>.png`` images.
        video: Also write ``output.mp4`` of the outputs in name order.
        fps: Frame rate of the video.
        workers: Threads reading inputs and writing outputs.
    """

    prompt: str | None = None
    timestep: int | None = None
    save_latents: bool = False
    save_images: bool = True
    video: bool = False
    fps: int = 30
    workers: int = 4


def _with_fields(config: Any, cls: type, fields: dict[str, Any], function: str) -> Any:
    """``config`` (or the defaults) with keyword ``fields`` over it: the keyword form of earlier releases."""
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
    return dataclasses.replace(config or cls(), **fields)


# --------------------------------------------------------------------------- the loop over files


def run_enhancement(
    pipe: EnhancePipeline,
    items: Sequence[WorkItem],
    output_dir: Path,
    save_images: bool = True,
    save_latents: bool = True,
    metrics: bool = False,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
    workers: int = 4,
) -> tuple[int, float]:
    """Enhance ``items`` into ``output_dir`` (``<name>.png``, ``<name>.pt``); returns (views, seconds).

    With ``metrics``, each item's record (``name``, the item's ``extra`` and
    :meth:`EnhancePipeline.score`'s values) goes to ``on_record``.
    """
    from splatent_latents import save_latent

    output_dir.mkdir(parents=True, exist_ok=True)
    pipe.encode_prompts(sorted({it.prompt for it in items}))
    loader = ViewLoader(pipe.encode_images, workers=workers, with_ground_truth=metrics)
    writer = Writer(workers)
    done, total = 0, len(items)
    start = time.perf_counter()
    try:
        for batch in prefetched(loader, items, pipe.options.batch_size):
            for group in same_shape_groups(batch):
                out = pipe(torch.stack([li.views for li in group]), prompt=group[0].item.prompt,
                           decode=save_images or metrics)
                records = _records(pipe, group, out) if metrics else [None] * len(group)
                images = out.uint8_images().numpy() if save_images else None
                latents = out.latents.float().cpu()
                for k, li in enumerate(group):
                    if save_latents:
                        writer.submit(save_latent, output_dir / f"{li.item.name}.pt", latents[k])
                    if save_images:
                        writer.submit(save_png, output_dir / f"{li.item.name}.png", images[k], li.item.out_size)
                    if records[k] is not None and on_record is not None:
                        on_record(records[k])
                done += len(group)
                if progress is not None:
                    progress(done, total)
    finally:
        loader.close()
        writer.close()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return done, time.perf_counter() - start


def _records(pipe: EnhancePipeline, group: list[LoadedItem], out: EnhanceOutput) -> list[dict[str, Any] | None]:
    """The metric records of the group's items that have a ground-truth latent (``None`` for the others)."""
    idx = [i for i, li in enumerate(group) if li.target_latent is not None]
    if not idx:
        return [None] * len(group)
    scored = pipe.score(torch.stack([group[i].views[0] for i in idx]),
                        EnhanceOutput(out.latents[idx], out.images[idx]),
                        torch.stack([group[i].target_latent for i in idx]), [group[i].gt_image for i in idx])
    records: list[dict[str, Any] | None] = [None] * len(group)
    for i, values in zip(idx, scored):
        item = group[i].item
        records[i] = {"name": item.name, **item.extra, **values}
    return records


# --------------------------------------------------------------------------- dataset mode


def _settings(model: SplatentEnhancer, source: str, timestep: int | None, extra: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the one that wrote the folder (``manifest.json``)."""
    return {
        "model": source, "base_model": model.config.base_model,
        "timestep": int(model.config.timestep if timestep is None else timestep),
        "top_k": int(model.config.top_k), "scale": bool(model.config.scale),
        "scaling_factor": float(model.config.scaling_factor), **extra,
    }


def enhance_dataset(
    dataset_path: str | Path,
    output_dir: str | Path,
    model: SplatentEnhancer,
    codec: Any,
    config: DatasetEnhanceOptions | None = None,
    *,
    options: RuntimeOptions | None = None,
    model_source: str = "",
    progress: Progress | None = None,
    **fields: Any,
) -> EnhanceResult:
    """Enhance every entry of one split of a dataset JSON.

    Writes ``output_dir/enhanced/<name>.pt`` (enhanced latent, unscaled), ``<name>.png``
    (decoded), ``manifest.json`` (settings) and, where ground truth exists,
    ``metrics.json``: per view latent PSNR against ``target_feature`` and image
    PSNR / SSIM of the enhanced and the un-enhanced render against the ground-truth
    image (next to ``target_feature`` or under ``rgb_root/<scene>/<images_dir>``; the
    decoded ``target_feature`` when there is no image, marked ``gt_source``).
    ``<name>`` is the feature's file stem, or the entry id when stems repeat.

    Resumable: views already written with the same settings are skipped.

    Args:
        model: The enhancer (:func:`splatent_model.load_enhancer`); prepared here with ``options``.
        codec: The latent codec for decoding (``splatent_latents.load_codec``).
        config: What to enhance and write (:class:`DatasetEnhanceOptions`).
        options: How to run (:class:`RuntimeOptions`).
        model_source: The model's path or id, recorded in the manifest.
        progress: Called with (views done, views total).
        fields: Any :class:`DatasetEnhanceOptions` field (``split="val"``, ``min_k=1``,
            ``overwrite=True``, ...), over ``config``'s: the keyword form of earlier releases.
    """
    cfg = _with_fields(config, DatasetEnhanceOptions, fields, "enhance_dataset")
    top_k = int(model.config.top_k)
    grid_shape(top_k + 1)
    items = dataset_work_items(dataset_path, top_k, split=cfg.split, min_k=cfg.min_k, prompt=cfg.prompt,
                               scene_id=cfg.scene_id, rgb_root=cfg.rgb_root, images_dir=cfg.images_dir)
    out = Path(output_dir) / "enhanced"
    # everything that changes a view's output or its metrics: names are stems under scene_id, and the ground
    # truth (rgb_root, images_dir) changes the scores
    settings = _settings(model, model_source, cfg.timestep,
                         {"dataset": str(Path(dataset_path).resolve()), "split": cfg.split, "min_k": cfg.min_k,
                          "prompt": cfg.prompt, "codec": codec_config(codec), "method": cfg.method_name,
                          "scene_id": cfg.scene_id, "images_dir": cfg.images_dir,
                          "rgb_root": str(Path(cfg.rgb_root).resolve()) if cfg.rgb_root else None})
    records = finished_views(out, settings, items, cfg.save_images, cfg.metrics, cfg.overwrite)
    if not records:  # nothing to reuse: files here were made otherwise, and a resume must not take them as done
        clear_view_outputs(out)
    todo = [it for it in items if it.name not in records]
    if len(todo) < len(items):
        logger.info("%d of %d views already enhanced in %s; enhancing the other %d",
                    len(items) - len(todo), len(items), out, len(todo))
    pipe = EnhancePipeline(model, codec, options, timestep=cfg.timestep)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, settings, len(items), complete=False)

    def record(r: dict[str, Any]) -> None:
        records[r["name"]] = r
        if len(records) % 64 == 0:
            write_metrics(out, settings, items, records)

    done, seconds = run_enhancement(pipe, todo, out, save_images=cfg.save_images, save_latents=True,
                                    metrics=cfg.metrics, on_record=record, progress=progress, workers=cfg.workers)
    summary = write_metrics(out, settings, items, records) if cfg.metrics else {}
    write_manifest(out, settings, len(items), complete=True)
    return EnhanceResult(out, done, len(items) - len(todo), seconds, summary)


# --------------------------------------------------------------------------- custom mode


def enhance_files(
    inputs: str | Path,
    refs: Sequence[str | Path],
    output_dir: str | Path,
    model: SplatentEnhancer,
    codec: Any,
    config: FilesEnhanceOptions | None = None,
    *,
    options: RuntimeOptions | None = None,
    progress: Progress | None = None,
    **fields: Any,
) -> EnhanceResult:
    """Enhance loose files, like the original ``inference_custom.py``.

    Each input (an image, encoded with ``codec`` first, or a latent file) is tiled
    with its references (see :func:`match_references`) and enhanced. Writes
    ``<stem>.png`` (at the input image's size; latents: the decoded size), ``<stem>.pt``
    with ``save_latents``, and ``output.mp4`` of all outputs in name order with ``video``.

    ``config`` says what to write (:class:`FilesEnhanceOptions`; its fields also work as keywords,
    ``save_latents=True``), ``options`` how to run (:class:`RuntimeOptions`); ``progress(done, total)``.
    """
    cfg = _with_fields(config, FilesEnhanceOptions, fields, "enhance_files")
    if cfg.video and not cfg.save_images:
        raise EnhanceInputError("--video is made from the output PNGs; drop --no-save-images")
    if not (cfg.save_images or cfg.save_latents):
        raise EnhanceInputError("nothing to write: pass --save-latents or keep the PNGs")
    items = file_work_items(inputs, refs, model.config.prompt if cfg.prompt is None else cfg.prompt)
    grid_shape(1 + len(refs))
    if refs and len(refs) != int(model.config.top_k):
        logger.warning("the model was trained with top_k=%d references; enhancing with %d",
                       model.config.top_k, len(refs))
    out = Path(output_dir)
    suffixes = [suffix for suffix, on in ((".png", cfg.save_images), (".pt", cfg.save_latents)) if on]
    written = {(out / f"{it.name}{suffix}").resolve() for it in items for suffix in suffixes}
    clash = sorted(written & {Path(p).resolve() for it in items for p in (it.target, *it.refs)}, key=str)
    if clash:  # an output named like an input in the same folder would replace it before others read it
        raise EnhanceInputError(f"--output_dir {out} would overwrite the input {clash[0]}; choose another folder")
    pipe = EnhancePipeline(model, codec, options, timestep=cfg.timestep)
    done, seconds = run_enhancement(pipe, items, out, save_images=cfg.save_images, save_latents=cfg.save_latents,
                                    progress=progress, workers=cfg.workers)
    video_path = write_video([out / f"{it.name}.png" for it in items], out / "output.mp4", cfg.fps) if cfg.video else None
    return EnhanceResult(out, done, 0, seconds, video=video_path)


__all__ = [
    "DatasetEnhanceOptions", "EnhanceResult", "FilesEnhanceOptions", "Progress", "WorkItem", "codec_for", "collect_inputs", "enhance_dataset",
    "enhance_files", "match_references", "mean_metrics", "run_enhancement", "write_video",
]
