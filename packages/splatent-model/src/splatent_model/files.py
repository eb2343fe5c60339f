"""The enhance stage's file I/O, kept beside :class:`~splatent_model.pipeline.EnhancePipeline`:
finding inputs (``collect_inputs``), pairing references (``match_references``), work items of a
dataset split, reading latents and images on a thread pool (with the next batch prefetched),
writing outputs on another, the resume records and ``metrics.json``, and ``write_video``.

Nothing here runs the model; images are encoded through the callable the stage passes in.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from splatent_data import (
    IMAGE_EXTENSIONS, IMAGE_EXTENSIONS_TEXT, atomic_write_json, latent_image_mismatch, load_rgb, save_rgb,
)

from .errors import EnhanceInputError
from .metrics import mean_metrics

logger = logging.getLogger("splatent")

LATENT_SUFFIXES = (".pt", ".pth", ".npy")
Encode = Callable[[Tensor], Tensor]  # [B, 3, H, W] in [0, 1] -> [B, C, H/8, W/8] latents on the host


# --------------------------------------------------------------------------- work items


@dataclass
class WorkItem:
    """One target to enhance: where its latents come from and where results go."""

    name: str  # output file stem
    target: Path  # the render (latent file or image)
    refs: tuple[Path, ...]
    prompt: str
    ground_truth: Path | None = None  # target_feature (dataset mode)
    gt_image: Path | None = None
    out_size: tuple[int, int] | None = None  # (width, height) to resize the output PNG to
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedItem:
    item: WorkItem
    views: Tensor  # [V, C, h, w] unscaled, target first
    target_latent: Tensor | None = None  # [C, h, w] ground truth
    gt_image: Tensor | None = None  # [3, H, W] in [0, 1]


def dataset_work_items(
    dataset_path: str | Path,
    top_k: int,
    split: str = "test",
    min_k: int = 0,
    prompt: str | None = None,
    scene_id: str | None = None,
    rgb_root: str | Path | None = None,
    images_dir: str = "images_4",
) -> list[WorkItem]:
    """The work items of one split of a dataset JSON: each entry's feature and its references
    ``min_k .. min_k + top_k``, its ``target_feature`` and ground-truth image where they exist.
    ``name`` is the feature's stem, or the entry id when stems repeat."""
    from splatent_data import read_dataset_json, resolve_image_path

    spec = read_dataset_json(dataset_path, check_files=False)
    entries = spec.split(split)
    if scene_id:
        entries = [e for e in entries if scene_id in str(e.feature)]
        if not entries:
            raise EnhanceInputError(f"no '{split}' entry of {dataset_path} has a feature path containing {scene_id!r}")
    if not entries:
        available = sorted({e.split for e in spec.entries})
        raise EnhanceInputError(f"{dataset_path} has no '{split}' entries (it has: {', '.join(available)}); "
                                f"pass --split {available[0]}")
    stems = [e.feature.stem for e in entries]
    use_ids = len(set(stems)) != len(stems)
    items = []
    for e in entries:
        refs = e.ref_features[min_k:min_k + top_k]
        if len(refs) < top_k:
            fewer = (f"pass --min_k {len(e.ref_features) - top_k}" if len(e.ref_features) >= top_k
                     else f"use an enhancer trained with top_k {len(e.ref_features)} or fewer")
            raise EnhanceInputError(
                f"{dataset_path}: entry {e.id!r} has {len(e.ref_features)} references; the model takes top_k={top_k} "
                f"(after min_k={min_k}); rebuild the dataset with `splatent dataset --top_k {top_k + min_k}` "
                f"or {fewer}")
        # the references this run reads (as train checks them): one outside min_k .. min_k + top_k may be gone
        for path, what in ((e.feature, "feature"), *((r, "ref_features") for r in refs)):
            if not path.is_file():
                raise EnhanceInputError(f"{dataset_path}: entry {e.id!r}: {what} {path} does not exist")
        gt = e.target_feature if e.target_feature.is_file() else None
        gt_image = resolve_image_path(e.target_feature, Path(rgb_root) if rgb_root else None, images_dir) if gt else None
        items.append(WorkItem(
            name=e.id if use_ids else e.feature.stem, target=e.feature, refs=tuple(refs),
            prompt=prompt if prompt is not None else e.prompt, ground_truth=gt, gt_image=gt_image,
            extra={"id": e.id, "feature": str(e.feature), "target_feature": str(e.target_feature),
                   "gt_image": str(gt_image) if gt_image else None},
        ))
    return items


def file_work_items(inputs: str | Path, refs: Sequence[str | Path], prompt: str) -> list[WorkItem]:
    """The work items of loose files: each input (:func:`collect_inputs`) with its references
    (:func:`match_references`), named by its stem."""
    files = collect_inputs(inputs)
    matched = match_references(files, refs)
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise EnhanceInputError(f"{inputs} holds several inputs named {dup} (e.g. {dup}.png and {dup}.pt); "
                                f"outputs would overwrite each other: keep one")
    return [WorkItem(name=f.stem, target=f, refs=r, prompt=prompt) for f, r in zip(files, matched)]


# --------------------------------------------------------------------------- inputs


def is_image(path: Path) -> bool:
    return path.suffix in IMAGE_EXTENSIONS or path.suffix.lower() in {e.lower() for e in IMAGE_EXTENSIONS}


def is_latent(path: Path) -> bool:
    return path.suffix.lower() in LATENT_SUFFIXES


def collect_inputs(path: str | Path) -> list[Path]:
    """An image or latent file, or the images and latents directly in a folder (sorted by name)."""
    path = Path(path)
    if path.is_file():
        if not (is_image(path) or is_latent(path)):
            raise EnhanceInputError(f"{path} is neither an image nor a latent (.pt, .pth, .npy)")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and (is_image(p) or is_latent(p)))
        if not files:
            raise EnhanceInputError(f"{path} holds no images ({IMAGE_EXTENSIONS_TEXT}) or latents (.pt, .pth, .npy)")
        return files
    raise EnhanceInputError(f"input {path} does not exist")


def match_references(inputs: list[Path], refs: Sequence[str | Path]) -> list[tuple[Path, ...]]:
    """The references of each input. Each ``--ref_image`` value gives one reference per input:

    * a file: the same reference for every input;
    * a folder: the file with the input's name (stem); if no name matches, a folder with one
      file serves every input and a folder with as many files as inputs pairs them in sorted
      order (the original ``inference_custom.py``'s rule).
    """
    per_input: list[list[Path]] = [[] for _ in inputs]
    for ref in refs:
        ref = Path(ref)
        if ref.is_file():
            for lst in per_input:
                lst.append(ref)
            continue
        files = collect_inputs(ref)
        by_stem: dict[str, Path] = {}
        for f in files:
            by_stem.setdefault(f.stem, f)
        matched = [by_stem.get(p.stem) for p in inputs]
        if all(m is not None for m in matched):
            for lst, m in zip(per_input, matched):
                lst.append(m)
        elif len(files) == 1:
            for lst in per_input:
                lst.append(files[0])
        elif len(files) == len(inputs) and not any(m is not None for m in matched):
            logger.info("no file names in %s match the inputs; pairing them in sorted order", ref)
            for lst, f in zip(per_input, files):
                lst.append(f)
        else:
            missing = next(p for p, m in zip(inputs, matched) if m is None)
            raise EnhanceInputError(f"reference folder {ref} has no file named {missing.stem}.* for input {missing}; "
                                    f"name references like their inputs, or pass one file for all")
    return [tuple(lst) for lst in per_input]


def load_any_latent(path: Path) -> Tensor:  # [C, h, w] float32
    """A latent from ``.pt``/``.pth`` (``splatent_latents.load_latent``: weights only, shape-checked) or ``.npy``."""
    from splatent_latents import load_latent

    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty file
            raise EnhanceInputError(f"cannot read latent {path}: {exc or 'empty file'}") from None
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
            raise EnhanceInputError(f"latent {path} is not one numeric array (an .npz archive renamed .npy?); "
                                    f"save it with numpy.save")
        value = torch.from_numpy(array).float()
        if value.ndim == 4 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 3:
            raise EnhanceInputError(f"latent {path} has shape {tuple(value.shape)}, expected (C, h, w)")
        if not torch.isfinite(value).all():  # as load_latent refuses a .pt
            raise EnhanceInputError(f"latent {path} holds NaN or infinite values")
        return value
    return load_latent(path)


def load_image(path: Path, size: tuple[int, int] | None = None) -> tuple[Tensor, tuple[int, int]]:
    """``[3, H, W]`` in [0, 1] with sides floored to multiples of 8 (LANCZOS, as the original's
    extraction), or resized to ``size`` (w, h); also the file's own (w, h)."""
    from PIL import Image

    rgb = load_rgb(path)
    h, w = rgb.shape[:2]
    tw, th = size if size is not None else (w // 8 * 8, h // 8 * 8)
    if tw < 8 or th < 8:
        raise EnhanceInputError(f"image {path} is {w}x{h}; it must be at least 8x8 pixels")
    if (tw, th) != (w, h):
        rgb = np.asarray(Image.fromarray(rgb).resize((tw, th), Image.LANCZOS))
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0, (w, h)


class ViewLoader:
    """Loads work items on a thread pool; images are encoded with ``encode`` in one batch per size."""

    def __init__(self, encode: Encode, workers: int = 4, with_ground_truth: bool = False) -> None:
        self.encode = encode
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splatent-load")
        self.with_ground_truth = with_ground_truth

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _read(self, item: WorkItem) -> tuple[list[Tensor | tuple], Tensor | None, Tensor | None]:
        """Latents as tensors, images as ``("image", tensor)`` to encode in a batch later."""
        views: list[Tensor | tuple] = []
        target_size = None  # (w, h) in pixels that reference images are resized to
        for i, path in enumerate((item.target, *item.refs)):
            if is_latent(path):
                views.append(load_any_latent(path))
                if i == 0:
                    target_size = (views[0].shape[2] * 8, views[0].shape[1] * 8)
            elif is_image(path):
                img, own = load_image(path, size=target_size)
                if i == 0:
                    target_size = (img.shape[2], img.shape[1])
                    item.out_size = item.out_size or own
                views.append(("image", img))
            else:
                raise EnhanceInputError(f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) "
                                        f"nor a latent ({', '.join(LATENT_SUFFIXES)})")
        target = gt = None
        if self.with_ground_truth and item.ground_truth is not None:
            target = load_any_latent(item.ground_truth)
            if item.gt_image is not None:
                rgb = load_rgb(item.gt_image)
                problem = latent_image_mismatch(rgb.shape[1], rgb.shape[0], target.shape[-1], target.shape[-2])
                if problem:  # scored against a stretched or blurred image, the numbers would be wrong, not low
                    raise EnhanceInputError(f"ground-truth image {item.gt_image} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                            f"{problem}; point --rgb_root/--images_dir at the images the latents came from")
                gt = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0
        return views, target, gt

    def submit(self, items: Sequence[WorkItem]) -> list[Future]:
        return [self.pool.submit(self._read, item) for item in items]

    def collect(self, items: Sequence[WorkItem], futures: list[Future]) -> list[LoadedItem]:
        """Wait for the reads and encode any images (one batch per image size)."""
        raw = [f.result() for f in futures]
        pending: dict[tuple[int, int], list[tuple[int, int, Tensor]]] = {}
        for i, (views, _, _) in enumerate(raw):
            for j, v in enumerate(views):
                if isinstance(v, tuple):
                    pending.setdefault(tuple(v[1].shape[1:]), []).append((i, j, v[1]))
        for group in pending.values():
            latents = self.encode(torch.stack([g[2] for g in group]))
            for (i, j, _), lat in zip(group, latents):
                raw[i][0][j] = lat
        loaded = []
        for item, (views, target, gt) in zip(items, raw):
            shapes = {tuple(v.shape) for v in views}
            if len(shapes) != 1:
                names = ", ".join(f"{p.name} {tuple(v.shape)}" for p, v in zip((item.target, *item.refs), views))
                raise EnhanceInputError(f"the target and references of {item.name} differ in latent shape ({names}); "
                                        f"grid attention needs equal sizes: render or resize them alike")
            if target is not None and tuple(target.shape) != tuple(views[0].shape):
                raise EnhanceInputError(f"ground truth {item.ground_truth} has shape {tuple(target.shape)}, the render "
                                        f"{item.target} {tuple(views[0].shape)}")
            loaded.append(LoadedItem(item, torch.stack(views), target, gt))
        return loaded


def prefetched(loader: ViewLoader, items: Sequence[WorkItem], size: int) -> Iterator[list[LoadedItem]]:
    """Batches of loaded items, the next batch's reads running while the current one computes."""
    chunks = [items[start:start + size] for start in range(0, len(items), size)]
    if not chunks:
        return
    pending = loader.submit(chunks[0])
    for i, chunk in enumerate(chunks):
        current = pending
        if i + 1 < len(chunks):
            pending = loader.submit(chunks[i + 1])
        yield loader.collect(chunk, current)


def same_shape_groups(batch: list[LoadedItem]) -> Iterator[list[LoadedItem]]:
    """Sub-batches sharing view count, latent shape and prompt (what one UNet pass needs)."""
    groups: OrderedDict[tuple, list[LoadedItem]] = OrderedDict()
    for li in batch:
        groups.setdefault((tuple(li.views.shape), li.item.prompt), []).append(li)
    yield from groups.values()


# --------------------------------------------------------------------------- outputs


class Writer:
    """Background writes; the first error is raised at :meth:`close`."""

    def __init__(self, workers: int = 4) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splatent-write")
        self.futures: list[Future] = []

    def submit(self, fn, *args) -> None:
        self.futures = [f for f in self.futures if not f.done() or f.exception() is not None]
        self.futures.append(self.pool.submit(fn, *args))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for f in self.futures:
            f.result()


def save_png(path: Path, image: np.ndarray, size: tuple[int, int] | None) -> None:  # image [H, W, 3] uint8
    """Write ``image``, resized (LANCZOS) to ``size`` (w, h) when given and different."""
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))
    save_rgb(path, image)


def codec_config(codec: Any) -> Any:
    """The codec's config for a manifest, or its class name."""
    try:
        return codec.config()
    except Exception:  # a codec without a config is still usable; the manifest just cannot name it
        return type(codec).__name__


def finished_views(out: Path, settings: dict[str, Any], items: list[WorkItem], save_images: bool, metrics: bool,
                   overwrite: bool) -> dict[str, dict[str, Any]]:
    """Records of views already finished with these settings (their files present); ``{}`` to redo all."""
    manifest, metrics_file = out / "manifest.json", out / "metrics.json"
    if overwrite or not manifest.is_file():
        return {}
    try:
        old = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return {}
    if {k: old.get(k) for k in settings} != settings:
        logger.warning("%s was written with other settings; enhancing every view again", out)
        return {}
    previous: dict[str, dict[str, Any]] = {}
    if metrics and metrics_file.is_file():
        try:
            previous = {r["name"]: r for r in json.loads(metrics_file.read_text()).get("views", [])}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            previous = {}
    done = {}
    stale = []
    for it in items:
        files_ok = (out / f"{it.name}.pt").is_file() and (not save_images or (out / f"{it.name}.png").is_file())
        if not files_ok:
            continue
        if _changed_since(out / f"{it.name}.pt", it):
            stale.append(it.name)
            continue
        if metrics and it.ground_truth is not None:
            if it.name in previous:
                done[it.name] = previous[it.name]
        else:
            done[it.name] = {"name": it.name, "no_metrics": True}
    if stale:
        logger.info("%d view(s) in %s are older than their renders, references or ground truth (first: %s): "
                    "enhancing them again", len(stale), out, stale[0])
    return done


def _changed_since(output: Path, item: WorkItem) -> bool:
    """Whether an input of ``item`` (its render, references, ground truth) was written after ``output``: a
    re-render under the same dataset JSON leaves every setting equal, and its old views must not count as done."""
    made = output.stat().st_mtime_ns
    inputs = (item.target, *item.refs, item.ground_truth, item.gt_image)
    return any(p is not None and Path(p).is_file() and Path(p).stat().st_mtime_ns > made for p in inputs)


def clear_view_outputs(out: Path) -> None:
    """Remove the enhanced views (``.pt`` / ``.png``) and metrics of an earlier run from ``out`` (a folder of this
    stage's own), before a run with other settings writes its manifest."""
    if not out.is_dir():
        return
    for path in [*out.glob("*.pt"), *out.glob("*.png"), out / "metrics.json"]:
        path.unlink(missing_ok=True)


def write_manifest(out: Path, settings: dict[str, Any], views: int, complete: bool) -> None:
    atomic_write_json(out / "manifest.json", {**settings, "views": views, "complete": complete})


def write_metrics(out: Path, settings: dict[str, Any], items: list[WorkItem], records: dict[str, dict]) -> dict:
    """``metrics.json`` of the records of ``items`` (in their order); returns the means."""
    views = [records[it.name] for it in items if it.name in records and not records[it.name].get("no_metrics")]
    summary = mean_metrics(views)
    atomic_write_json(out / "metrics.json", {"settings": settings, "mean": summary, "views": views})
    return summary


def write_video(frames: Sequence[Path], path: str | Path, fps: int = 30) -> Path:
    """An H.264 mp4 of image files in order (imageio-ffmpeg); odd sides are padded by one edge pixel."""
    import imageio.v2 as imageio

    path = Path(path)
    if not frames:
        raise EnhanceInputError("no frames to write a video of")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    first = load_rgb(frames[0])
    h, w = first.shape[0] + first.shape[0] % 2, first.shape[1] + first.shape[1] % 2
    writer = imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=8,
                                ffmpeg_log_level="error", pixelformat="yuv420p")
    try:
        for frame in frames:
            img = load_rgb(frame)
            if img.shape[:2] != first.shape[:2]:
                raise EnhanceInputError(f"video frames must share one size: {frame} is {img.shape[1]}x{img.shape[0]}, "
                                        f"{frames[0]} is {first.shape[1]}x{first.shape[0]}")
            if img.shape[:2] != (h, w):
                img = np.pad(img, ((0, h - img.shape[0]), (0, w - img.shape[1]), (0, 0)), mode="edge")
            writer.append_data(img)
    finally:
        writer.close()
    tmp.replace(path)
    return path


__all__ = [
    "LATENT_SUFFIXES", "LoadedItem", "ViewLoader", "WorkItem", "Writer", "codec_config", "collect_inputs",
    "dataset_work_items", "file_work_items", "finished_views", "is_image", "is_latent", "load_any_latent", "load_image",
    "match_references", "prefetched", "same_shape_groups", "save_png", "write_manifest", "write_metrics", "write_video",
]
