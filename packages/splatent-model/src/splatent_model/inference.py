"""The ``enhance`` stage: batched enhancement of a dataset split or of loose files.

Both modes turn work items (a target latent and its reference latents) into
batches of equal shape, run them through :func:`splatent_model.runtime.enhance_latents`,
decode on the device, and hand writing to a small thread pool so the GPU never
waits on PNG compression or file I/O.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splatent_data import IMAGE_EXTENSIONS, atomic_write_json, load_rgb, save_rgb

from .enhancer import SplatentEnhancer
from .errors import EnhanceInputError
from .grid import grid_shape
from .metrics import finite_or_none, latent_psnr, psnr, ssim
from .runtime import RuntimeOptions, decode_images, enhance_latents, prepare_codec, prepare_enhancer, to_uint8

logger = logging.getLogger("splatent")

Progress = Callable[[int, int], None]  # (views done, views total)
LATENT_SUFFIXES = (".pt", ".pth", ".npy")
METRIC_KEYS = ("latent_psnr_in", "latent_psnr_out", "psnr_in", "psnr_out", "ssim_in", "ssim_out")


# --------------------------------------------------------------------------- the codec


def codec_for(model: SplatentEnhancer, name: str | None = None, **options: Any) -> Any:
    """The latent codec to encode and decode with: ``name`` (+ options) if given, else the one the
    checkpoint records (SD-Turbo's VAE, taken from the base model's ``vae/``, for checkpoints that
    record none)."""
    from splatent_latents import load_codec

    if name is not None:
        config = {"name": name, **options}
    elif model.config.codec:
        config = dict(model.config.codec)
    else:
        config = {"name": "sd-vae", "model": model.config.base_model}
    codec = load_codec(**config)
    if model.config.scale and abs(codec.scaling_factor - float(model.config.scaling_factor)) > 1e-6:
        logger.warning("codec %s scales latents by %g but the enhancer was trained with %g",
                       config.get("name"), codec.scaling_factor, model.config.scaling_factor)
    return codec


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


# --------------------------------------------------------------------------- loading


def load_any_latent(path: Path) -> Tensor:  # [C, h, w] float32
    """A latent from ``.pt``/``.pth`` (``splatent_latents.load_latent``: weights only, shape-checked) or ``.npy``."""
    from splatent_latents import load_latent

    if path.suffix.lower() == ".npy":
        try:
            value = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        except (ValueError, OSError) as exc:
            raise EnhanceInputError(f"cannot read latent {path}: {exc}") from None
        if value.ndim == 4 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 3:
            raise EnhanceInputError(f"latent {path} has shape {tuple(value.shape)}, expected (C, h, w)")
        return value
    return load_latent(path)


def _image_tensor(path: Path, size: tuple[int, int] | None = None) -> tuple[Tensor, tuple[int, int]]:
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


def is_image(path: Path) -> bool:
    return path.suffix in IMAGE_EXTENSIONS or path.suffix.lower() in {e.lower() for e in IMAGE_EXTENSIONS}


def is_latent(path: Path) -> bool:
    return path.suffix.lower() in LATENT_SUFFIXES


class ViewLoader:
    """Loads work items on a thread pool; images are encoded with the codec (on its device) when batched."""

    def __init__(self, codec: Any, workers: int = 4, with_ground_truth: bool = False) -> None:
        self.codec = codec
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
                img, own = _image_tensor(path, size=target_size)
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
                gt = torch.from_numpy(np.array(load_rgb(item.gt_image))).permute(2, 0, 1).float() / 255.0
        return views, target, gt

    def submit(self, items: Sequence[WorkItem]) -> list[Future]:
        return [self.pool.submit(self._read, item) for item in items]

    def collect(self, items: Sequence[WorkItem], futures: list[Future]) -> list[LoadedItem]:
        """Wait for the reads and encode any images (one codec batch per image size)."""
        raw = [f.result() for f in futures]
        pending: dict[tuple[int, int], list[tuple[int, int, Tensor]]] = {}
        for i, (views, _, _) in enumerate(raw):
            for j, v in enumerate(views):
                if isinstance(v, tuple):
                    pending.setdefault(tuple(v[1].shape[1:]), []).append((i, j, v[1]))
        for group in pending.values():
            with torch.inference_mode():
                latents = self.codec.encode(torch.stack([g[2] for g in group])).float().cpu()
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


def _chunks(items: Sequence[WorkItem], size: int) -> Iterator[Sequence[WorkItem]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _prefetched(loader: ViewLoader, items: Sequence[WorkItem], size: int) -> Iterator[list[LoadedItem]]:
    """Batches of loaded items, the next batch's reads running while the current one computes."""
    chunks = list(_chunks(items, size))
    if not chunks:
        return
    pending = loader.submit(chunks[0])
    for i, chunk in enumerate(chunks):
        current = pending
        if i + 1 < len(chunks):
            pending = loader.submit(chunks[i + 1])
        yield loader.collect(chunk, current)


def _groups(batch: list[LoadedItem]) -> Iterator[list[LoadedItem]]:
    """Sub-batches sharing view count, latent shape and prompt (what one UNet pass needs)."""
    groups: OrderedDict[tuple, list[LoadedItem]] = OrderedDict()
    for li in batch:
        groups.setdefault((tuple(li.views.shape), li.item.prompt), []).append(li)
    yield from groups.values()


# --------------------------------------------------------------------------- the core loop


class _Writer:
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


def _save_png(path: Path, image: np.ndarray, size: tuple[int, int] | None) -> None:  # image [H, W, 3] uint8
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        from PIL import Image

        image = np.asarray(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))
    save_rgb(path, image)


def run_enhancement(
    model: SplatentEnhancer,
    codec: Any,
    items: Sequence[WorkItem],
    output_dir: Path,
    options: RuntimeOptions,
    save_images: bool = True,
    save_latents: bool = True,
    metrics: bool = False,
    timestep: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
    workers: int = 4,
) -> tuple[int, float]:
    """Enhance ``items`` into ``output_dir`` (``<name>.png``, ``<name>.pt``); returns (views, seconds).

    With ``metrics``, each item's record (PSNR/SSIM in and out, see :mod:`splatent_model.metrics`)
    goes to ``on_record``.
    """
    from splatent_latents import save_latent

    model.check_codec(codec)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.encode_prompts(sorted({it.prompt for it in items}))
    loader = ViewLoader(codec, workers=workers, with_ground_truth=metrics)
    writer = _Writer(workers)
    done, total = 0, len(items)
    start = time.perf_counter()
    pad_to = options.batch_size if getattr(model, "compile_mode", None) else None
    try:
        for batch in _prefetched(loader, items, options.batch_size):
            for group in _groups(batch):
                latents = torch.stack([li.views for li in group])
                out = enhance_latents(model, latents, model.prompt_embeds(group[0].item.prompt), timestep, pad_to)
                decoded = decode_images(codec, out) if (save_images or metrics) else None
                records = _metrics(codec, group, out, decoded) if metrics else [None] * len(group)
                images = to_uint8(decoded).cpu().numpy() if save_images else None
                out_cpu = out.float().cpu()
                for k, li in enumerate(group):
                    if save_latents:
                        writer.submit(save_latent, output_dir / f"{li.item.name}.pt", out_cpu[k])
                    if save_images:
                        writer.submit(_save_png, output_dir / f"{li.item.name}.png", images[k], li.item.out_size)
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


@torch.inference_mode()
def _metrics(codec: Any, group: list[LoadedItem], enhanced: Tensor, enhanced_images: Tensor) -> list[dict[str, Any] | None]:
    """Per-view PSNR / SSIM of the enhanced and the un-enhanced render against ground truth."""
    has_gt = [li.target_latent is not None for li in group]
    if not any(has_gt):
        return [None] * len(group)
    idx = [i for i, h in enumerate(has_gt) if h]
    device = enhanced.device
    rendered = torch.stack([group[i].views[0] for i in idx]).to(device)
    out = enhanced[idx].float()
    target = torch.stack([group[i].target_latent for i in idx]).to(device)
    lat_in, lat_out = latent_psnr(rendered, target), latent_psnr(out, target)
    img_in = decode_images(codec, rendered)
    img_out = enhanced_images[idx].float()
    size = img_out.shape[-2:]
    gts, sources = [], []
    decoded_targets = None
    for n, i in enumerate(idx):
        gt = group[i].gt_image
        if gt is not None:
            gt = gt.to(device)[None]
            if gt.shape[-2:] != size:
                gt = F.interpolate(gt, size=size, mode="area")
            gts.append(gt[0])
            sources.append("image")
        else:
            if decoded_targets is None:
                decoded_targets = decode_images(codec, target)
            gts.append(decoded_targets[n])
            sources.append("decoded_target")
    gt = torch.stack(gts)
    values = {
        "latent_psnr_in": lat_in, "latent_psnr_out": lat_out,
        "psnr_in": psnr(img_in, gt), "psnr_out": psnr(img_out, gt),
        "ssim_in": ssim(img_in, gt), "ssim_out": ssim(img_out, gt),
    }
    values = {k: v.cpu().tolist() for k, v in values.items()}
    records: list[dict[str, Any] | None] = [None] * len(group)
    for n, i in enumerate(idx):
        item = group[i].item
        records[i] = {
            "name": item.name, **item.extra,
            "gt_source": sources[n],
            **{k: finite_or_none(values[k][n]) for k in METRIC_KEYS},
        }
    return records


def mean_metrics(records: Iterable[dict[str, Any]]) -> dict[str, float | None]:
    """Mean of each metric over the records that have it."""
    out: dict[str, float | None] = {}
    records = list(records)
    for key in METRIC_KEYS:
        vals = [r[key] for r in records if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
    out["views"] = len(records)
    return out


# --------------------------------------------------------------------------- dataset mode


def _settings(model: SplatentEnhancer, source: str, timestep: int | None, extra: dict[str, Any]) -> dict[str, Any]:
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
    split: str = "test",
    options: RuntimeOptions | None = None,
    model_source: str = "",
    timestep: int | None = None,
    min_k: int = 0,
    rgb_root: str | Path | None = None,
    images_dir: str = "images_4",
    prompt: str | None = None,
    save_images: bool = True,
    metrics: bool = True,
    scene_id: str | None = None,
    overwrite: bool = False,
    workers: int = 4,
    method_name: str | None = None,
    progress: Progress | None = None,
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
        min_k: Skip the first ``min_k`` references of each entry (the original's ``--min_k``).
        prompt: Use this prompt instead of each entry's.
        scene_id: Only entries whose feature path contains this string.
        overwrite: Re-enhance every view.
        workers: Threads reading inputs and writing outputs.
        method_name: A label recorded in the manifest (the original's ``--method_name``).
    """
    from splatent_data import read_dataset_json, resolve_image_path

    options = options or RuntimeOptions()
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
    top_k = int(model.config.top_k)
    grid_shape(top_k + 1)
    stems = [e.feature.stem for e in entries]
    use_ids = len(set(stems)) != len(stems)
    items = []
    for e in entries:
        for path, what in ((e.feature, "feature"), *((r, "ref_features") for r in e.ref_features)):
            if not path.is_file():
                raise EnhanceInputError(f"{dataset_path}: entry {e.id!r}: {what} {path} does not exist")
        refs = e.ref_features[min_k:min_k + top_k]
        if len(refs) < top_k:
            raise EnhanceInputError(
                f"{dataset_path}: entry {e.id!r} has {len(e.ref_features)} references; the model takes top_k={top_k} "
                f"(after min_k={min_k}); rebuild the dataset with `splatent dataset --top_k {top_k + min_k}` "
                f"or pass --top_k {len(e.ref_features) - min_k}")
        gt = e.target_feature if e.target_feature.is_file() else None
        gt_image = resolve_image_path(e.target_feature, Path(rgb_root) if rgb_root else None, images_dir) if gt else None
        items.append(WorkItem(
            name=e.id if use_ids else e.feature.stem, target=e.feature, refs=tuple(refs),
            prompt=prompt if prompt is not None else e.prompt, ground_truth=gt, gt_image=gt_image,
            extra={"id": e.id, "feature": str(e.feature), "target_feature": str(e.target_feature),
                   "gt_image": str(gt_image) if gt_image else None},
        ))
    out = Path(output_dir) / "enhanced"
    settings = _settings(model, model_source, timestep,
                         {"dataset": str(Path(dataset_path).resolve()), "split": split, "min_k": min_k,
                          "prompt": prompt, "codec": _codec_config(codec), "method": method_name})
    records = _resume(out, settings, items, save_images, metrics, overwrite)
    todo = [it for it in items if it.name not in records]
    if len(todo) < len(items):
        logger.info("%d of %d views already enhanced in %s; enhancing the other %d",
                    len(items) - len(todo), len(items), out, len(todo))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "manifest.json", {**settings, "views": len(items), "complete": False})

    def record(r: dict[str, Any]) -> None:
        records[r["name"]] = r
        if len(records) % 64 == 0:
            _write_metrics(out, settings, items, records)

    prepare_enhancer(model, options)
    prepare_codec(codec, options)
    done, seconds = run_enhancement(model, codec, todo, out, options, save_images=save_images, save_latents=True,
                                    metrics=metrics, timestep=timestep, on_record=record, progress=progress,
                                    workers=workers)
    summary = _write_metrics(out, settings, items, records) if metrics else {}
    atomic_write_json(out / "manifest.json", {**settings, "views": len(items), "complete": True})
    return EnhanceResult(out, done, len(items) - len(todo), seconds, summary)


def _codec_config(codec: Any) -> Any:
    try:
        return codec.config()
    except Exception:  # a codec without a config is still usable; the manifest just cannot name it
        return type(codec).__name__


def _resume(out: Path, settings: dict[str, Any], items: list[WorkItem], save_images: bool, metrics: bool,
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
    for it in items:
        files_ok = (out / f"{it.name}.pt").is_file() and (not save_images or (out / f"{it.name}.png").is_file())
        if not files_ok:
            continue
        if metrics and it.ground_truth is not None:
            if it.name in previous:
                done[it.name] = previous[it.name]
        else:
            done[it.name] = {"name": it.name, "no_metrics": True}
    return done


def _write_metrics(out: Path, settings: dict[str, Any], items: list[WorkItem], records: dict[str, dict]) -> dict:
    views = [records[it.name] for it in items if it.name in records and not records[it.name].get("no_metrics")]
    summary = mean_metrics(views)
    atomic_write_json(out / "metrics.json", {"settings": settings, "mean": summary, "views": views})
    return summary


# --------------------------------------------------------------------------- custom mode


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
            raise EnhanceInputError(f"{path} holds no images or latents (.png, .jpg, .pt, .npy)")
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


def enhance_files(
    inputs: str | Path,
    refs: Sequence[str | Path],
    output_dir: str | Path,
    model: SplatentEnhancer,
    codec: Any,
    prompt: str | None = None,
    options: RuntimeOptions | None = None,
    timestep: int | None = None,
    save_latents: bool = False,
    save_images: bool = True,
    video: bool = False,
    fps: int = 30,
    workers: int = 4,
    progress: Progress | None = None,
) -> EnhanceResult:
    """Enhance loose files, like the original ``inference_custom.py``.

    Each input (an image, encoded with ``codec`` first, or a latent file) is tiled
    with its references (see :func:`match_references`) and enhanced. Writes
    ``<stem>.png`` (at the input image's size; latents: the decoded size), ``<stem>.pt``
    with ``save_latents``, and ``output.mp4`` of all outputs in name order with ``video``.
    """
    options = options or RuntimeOptions()
    if video and not save_images:
        raise EnhanceInputError("--video is made from the output PNGs; drop --no-save-images")
    if not (save_images or save_latents):
        raise EnhanceInputError("nothing to write: pass --save-latents or keep the PNGs")
    files = collect_inputs(inputs)
    matched = match_references(files, refs)
    grid_shape(1 + len(refs))
    if refs and len(refs) != int(model.config.top_k):
        logger.warning("the model was trained with top_k=%d references; enhancing with %d",
                       model.config.top_k, len(refs))
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise EnhanceInputError(f"{inputs} holds several inputs named {dup} (e.g. {dup}.png and {dup}.pt); "
                                f"outputs would overwrite each other: keep one")
    prompt = model.config.prompt if prompt is None else prompt
    items = [WorkItem(name=f.stem, target=f, refs=r, prompt=prompt) for f, r in zip(files, matched)]
    out = Path(output_dir)
    prepare_enhancer(model, options)
    prepare_codec(codec, options)
    done, seconds = run_enhancement(model, codec, items, out, options, save_images=save_images,
                                    save_latents=save_latents, timestep=timestep, progress=progress, workers=workers)
    video_path = write_video([out / f"{it.name}.png" for it in items], out / "output.mp4", fps) if video else None
    return EnhanceResult(out, done, 0, seconds, video=video_path)


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
    "EnhanceResult", "WorkItem", "codec_for", "collect_inputs", "enhance_dataset", "enhance_files", "match_references",
    "mean_metrics", "run_enhancement", "write_video",
]
