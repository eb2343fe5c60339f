"""Training data: dataset entries as latent grids, ground-truth latents and images, in a resumable order.

An entry of the dataset JSON (``splatent_data.read_dataset_json``) becomes a sample:

* ``views [V, 4, h, w]``: the render (view 0) and its ``top_k`` references
  (``ref_features[min_k : min_k + top_k]``), unscaled latents;
* ``target [C, h, w]``: the ground-truth latent (C the codec's channels);
* ``image [3, 8h, 8w]`` uint8: the ground-truth image, beside ``target_feature`` or
  under ``--rgb_root``, resized to the latent's size × 8 when its sides are not exactly
  that (as ``splatent extract`` resizes before encoding).

Crops are taken in latent pixels, so the image crop is exactly the latent crop × 8
and no latent is ever interpolated. Every view of a sample is cut at the same window.

A broken entry (missing or unreadable file, too few references, image of another
aspect ratio) is never replaced by another one: the loader returns it as a
:class:`EntryProblem`, the loop reports it by id and counts it, and ``--strict`` stops.

Order: :class:`StreamSampler` walks an endless stream of per-epoch permutations
seeded by ``(seed, epoch)``; global sample ``s`` goes to process ``(s // B) % P``,
so one process with batch ``2B`` and two with batch ``B`` see the same global
batches, and a run resumes at sample ``s`` exactly. Random crops are seeded by
``(seed, s)``, independent of workers and processes.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from splatent_data import DatasetEntry, SplatentError, latent_image_mismatch, load_rgb, resolve_image_path
from splatent_latents.workers import arrays_to_tensors, tensors_to_arrays

from .errors import TrainError

logger = logging.getLogger("splatent")

@dataclass(frozen=True)
class EntryProblem:
    """Why an entry cannot be used."""

    id: str
    reason: str


class EntryError(Exception):
    """Internal: raised while loading an entry, turned into an :class:`EntryProblem`."""


# --------------------------------------------------------------------------- entries


def reference_paths(entry: DatasetEntry, top_k: int, min_k: int = 0) -> tuple[Path, ...]:
    """The references a sample uses, or :class:`EntryError` when the entry has too few."""
    refs = entry.ref_features[min_k:min_k + top_k]
    if len(refs) < top_k:
        raise EntryError(f"has {len(entry.ref_features)} references but --top_k {top_k}"
                         + (f" after --min_k {min_k}" if min_k else "")
                         + " needs more; rebuild the dataset with a larger --top_k or train with a smaller one")
    return refs


def image_path(entry: DatasetEntry, rgb_root: Path | None, images_dir: str) -> Path:
    """The ground-truth image of an entry, or :class:`EntryError` naming where it was looked for."""
    path = resolve_image_path(entry.target_feature, rgb_root, images_dir)
    if path is None:
        where = (f"{Path(rgb_root) / entry.target_feature.parent.parent.name / images_dir}" if rgb_root is not None
                 else f"beside {entry.target_feature}")
        raise EntryError(f"has no ground-truth image {entry.target_feature.stem}.png/.jpg {where}; "
                         f"pass --rgb_root, or --gt_from_latents to use the decoded ground-truth latent")
    return path


def check_entries(
    entries: Sequence[DatasetEntry],
    top_k: int,
    min_k: int = 0,
    need_images: bool = True,
    rgb_root: Path | None = None,
    images_dir: str = "images_4",
) -> tuple[list[DatasetEntry], list[EntryProblem]]:
    """Split entries into usable ones and problems found without reading files (existence, reference count)."""
    good, problems = [], []
    for entry in entries:
        try:
            for name, path in (("feature", entry.feature), ("target_feature", entry.target_feature),
                               *(("ref_features", p) for p in reference_paths(entry, top_k, min_k))):
                if not Path(path).is_file():
                    raise EntryError(f"field '{name}' points to {path}, which does not exist")
            if need_images:
                image_path(entry, rgb_root, images_dir)
        except EntryError as exc:
            problems.append(EntryProblem(entry.id, str(exc)))
            continue
        good.append(entry)
    return good, problems


# --------------------------------------------------------------------------- crops


def crop_box(h: int, w: int, size: int, rng: np.random.Generator | None = None) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a ``size``-square window in an ``h × w`` latent (clipped to it).

    Random with ``rng``, centred without; ``size`` 0 is the whole latent.
    """
    ch, cw = (h, w) if size <= 0 else (min(size, h), min(size, w))
    if rng is None:
        return (h - ch) // 2, (w - cw) // 2, ch, cw
    return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw


def crop_latent(x: Tensor, box: tuple[int, int, int, int]) -> Tensor:  # [..., h, w] -> [..., ch, cw]
    top, left, ch, cw = box
    return x[..., top:top + ch, left:left + cw]


def crop_image(x: Tensor, box: tuple[int, int, int, int], factor: int = 8) -> Tensor:  # [..., 8h, 8w]
    """The image window of a latent ``box`` (every coordinate × ``factor``)."""
    top, left, ch, cw = box
    return x[..., top * factor:(top + ch) * factor, left * factor:(left + cw) * factor]


# --------------------------------------------------------------------------- the dataset


def read_image(path: Path, h: int, w: int, factor: int = 8) -> Tensor:  # [3, factor*h, factor*w] uint8
    """An RGB image at the latent's size × ``factor`` (a larger one of the same aspect ratio is resized down); another
    aspect ratio, or a smaller image, is an :class:`EntryError`."""
    try:
        rgb = load_rgb(path)
    except SplatentError as exc:
        raise EntryError(str(exc)) from None
    height, width = rgb.shape[:2]
    th, tw = h * factor, w * factor
    if (height, width) != (th, tw):
        problem = latent_image_mismatch(width, height, w, h, factor)
        if problem:
            raise EntryError(f"image {path} is {width}x{height}, {problem}; point --rgb_root/--images_dir at the "
                             "images the latents came from")
        rgb = np.asarray(Image.fromarray(rgb).resize((tw, th), Image.Resampling.LANCZOS))
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


class EnhancerDataset(torch.utils.data.Dataset):
    """Samples of dataset entries; ``dataset[i]`` (centre crop) or ``dataset[(i, s)]`` (crop seeded by ``s``).

    Args:
        entries: Entries to serve (``check_entries``'s usable ones).
        prompts: The prompt table; a sample carries its prompt's index in it.
        top_k, min_k: Which references (see the module doc).
        crop: Window side in latent pixels (0: whole views).
        load_images: Read ground-truth images (else ``image`` is None).
        rgb_root, images_dir: Where images are (see :func:`splatent_data.resolve_image_path`).
        seed: Seeds random crops with the sample number.
        prompt: Use this prompt for every entry.
    """

    def __init__(
        self,
        entries: Sequence[DatasetEntry],
        prompts: Sequence[str],
        top_k: int,
        min_k: int = 0,
        crop: int = 0,
        load_images: bool = True,
        rgb_root: Path | None = None,
        images_dir: str = "images_4",
        seed: int = 0,
        prompt: str | None = None,
    ) -> None:
        self.entries = list(entries)
        self.prompt_index = {p: i for i, p in enumerate(prompts)}
        self.top_k, self.min_k, self.crop = top_k, min_k, crop
        self.load_images, self.rgb_root, self.images_dir = load_images, rgb_root, images_dir
        self.seed, self.prompt = seed, prompt

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, draw = (key, None) if isinstance(key, (int, np.integer)) else key
        entry = self.entries[int(index)]
        try:
            return {"index": int(index), **self.load(entry, draw)}
        except EntryError as exc:
            return {"index": int(index), "problem": EntryProblem(entry.id, str(exc))}

    def load(self, entry: DatasetEntry, draw: int | None = None) -> dict[str, Any]:
        """The sample of ``entry``; a random crop seeded by ``(seed, draw)``, the centre one when ``draw`` is None."""
        from splatent_latents import LatentError, load_latent

        paths = (entry.feature, *reference_paths(entry, self.top_k, self.min_k))
        try:
            views = [load_latent(p) for p in paths]
            target = load_latent(entry.target_feature)
        except LatentError as exc:
            raise EntryError(str(exc)) from None
        shape = tuple(views[0].shape)
        for name, path, latent in (("target_feature", entry.target_feature, target),
                                   *(("ref_features", p, v) for p, v in zip(paths[1:], views[1:]))):
            if tuple(latent.shape) != shape:
                raise EntryError(f"{name} {path} has shape {tuple(latent.shape)} but the render {entry.feature} has "
                                 f"{shape}; all views of an entry must come from images of one size")
        h, w = shape[-2:]
        image = read_image(image_path(entry, self.rgb_root, self.images_dir), h, w) if self.load_images else None
        rng = None if draw is None else np.random.default_rng((self.seed, int(draw)))
        box = crop_box(h, w, self.crop, rng)
        prompt = self.prompt if self.prompt is not None else entry.prompt
        return {
            "id": entry.id,
            "views": crop_latent(torch.stack(views), box).contiguous(),
            "target": crop_latent(target, box).contiguous(),
            "image": crop_image(image, box).contiguous() if image is not None else None,
            "prompt": self.prompt_index[prompt],
        }


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Samples of one micro-step, plus the entries that could not be loaded.

    Attributes:
        ids: Entry ids, ``B`` of them.
        indices: Their indices in the dataset.
        views: ``[B, V, 4, h, w]`` render first.
        target: ``[B, 4, h, w]`` ground-truth latents.
        images: ``[B, 3, 8h, 8w]`` uint8 ground-truth images, or None.
        prompts: ``[B]`` indices into the prompt table.
        problems: Entries of this batch that were dropped.
    """

    ids: list[str]
    indices: list[int]
    views: Tensor | None
    target: Tensor | None
    images: Tensor | None
    prompts: Tensor | None
    problems: list[EntryProblem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device, non_blocking: bool = True) -> "Batch":
        def move(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.to(device, non_blocking=non_blocking)

        return Batch(self.ids, self.indices, move(self.views), move(self.target), move(self.images),
                     move(self.prompts), self.problems)

    def pin_memory(self) -> "Batch":
        """Page-locked copies, so the copy to the GPU can overlap compute (the DataLoader calls this)."""
        def pin(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.pin_memory()

        return Batch(self.ids, self.indices, pin(self.views), pin(self.target), pin(self.images), pin(self.prompts),
                     self.problems)

    # A batch leaves a data-loader worker through its pipe as NumPy arrays, not through shared-memory files,
    # whose failure (file-size limit, full /dev/shm) is silent and hangs the run (splatent_latents.workers).
    def __getstate__(self) -> dict[str, Any]:
        return tensors_to_arrays(dict(self.__dict__))

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(arrays_to_tensors(state))

    def float_images(self) -> Tensor | None:  # [B, 3, H, W] in [0, 1]
        return None if self.images is None else self.images.float().div_(255.0)


def collate_samples(items: Sequence[dict[str, Any]]) -> Batch:
    """Stack samples; when their sizes differ, each is centre-cropped to the smallest (latents and images alike)."""
    good = [it for it in items if "problem" not in it]
    problems = [it["problem"] for it in items if "problem" in it]
    if not good:
        return Batch([], [], None, None, None, None, problems)
    h = min(it["target"].shape[-2] for it in good)
    w = min(it["target"].shape[-1] for it in good)

    def fit(it: dict[str, Any]) -> dict[str, Any]:
        if it["target"].shape[-2:] == (h, w):
            return it
        box = crop_box(*it["target"].shape[-2:], 0)
        box = (box[0] + (box[2] - h) // 2, box[1] + (box[3] - w) // 2, h, w)
        return {**it, "views": crop_latent(it["views"], box), "target": crop_latent(it["target"], box),
                "image": None if it["image"] is None else crop_image(it["image"], box)}

    good = [fit(it) for it in good]
    has_images = all(it["image"] is not None for it in good)
    return Batch(
        ids=[it["id"] for it in good],
        indices=[it["index"] for it in good],
        views=torch.stack([it["views"] for it in good]),
        target=torch.stack([it["target"] for it in good]),
        images=torch.stack([it["image"] for it in good]) if has_images else None,
        prompts=torch.tensor([it["prompt"] for it in good], dtype=torch.long),
        problems=problems,
    )


# --------------------------------------------------------------------------- order


class StreamSampler(torch.utils.data.Sampler):
    """An endless, resumable stream of ``(index, sample_number)`` for one process.

    Args:
        num_items: Dataset size.
        batch_size: Per-process micro-batch size ``B``.
        seed: Seeds the per-epoch permutations.
        start: Global sample number to start at (resume: samples already seen by all processes).
        rank, world: This process and the number of processes.
        shuffle: Permute each epoch (else dataset order).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int = 0, start: int = 0, rank: int = 0,
                 world: int = 1, shuffle: bool = True) -> None:
        if num_items < 1:
            raise TrainError("the train split has no usable entries")
        self.n, self.batch_size, self.seed, self.start = num_items, batch_size, seed, start
        self.rank, self.world, self.shuffle = rank, world, shuffle

    def order(self, epoch: int) -> np.ndarray:
        """Dataset indices in the order of ``epoch``."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng((self.seed, epoch, 0x5EED)).permutation(self.n)

    def sample_numbers(self) -> Iterator[int]:
        """Global sample numbers this process serves, in order."""
        b, p = self.batch_size, self.world
        first = self.start // (b * p)
        for g in itertools.count(first):
            base = g * b * p + self.rank * b
            for j in range(b):
                if base + j >= self.start:
                    yield base + j

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, order = -1, None
        for s in self.sample_numbers():
            if s // self.n != epoch:
                epoch = s // self.n
                order = self.order(epoch)
            yield int(order[s % self.n]), s


def global_batch_start(samples_seen: int, batch_size: int, world: int) -> int:
    """The first sample of the global batch containing ``samples_seen`` (resume never splits a global batch)."""
    size = batch_size * world
    return samples_seen // size * size


# --------------------------------------------------------------------------- the codec


def resolve_codec(spec: str, entries: Sequence[DatasetEntry], base_model: str | None = None):
    """The latent codec the dataset's latents were written with.

    ``spec`` is ``auto`` (a ``manifest.json`` beside the first entry's ground-truth
    latents, or the render folder's manifest that names the latents folder), a codec name
    or a folder holding a manifest.
    """
    from splatent_latents import CODEC_NAMES, codec_from_manifest, load_codec

    if spec in CODEC_NAMES:
        if spec == "pca":
            raise TrainError("--codec pca needs its basis: pass the latents folder (with manifest.json and "
                             "pca_basis.safetensors) as --codec instead of the name")
        return load_codec(spec)
    if spec != "auto":
        folder = Path(spec).expanduser()
        if not folder.is_dir():
            raise TrainError(f"--codec {spec}: not a codec name ({', '.join(CODEC_NAMES)}) nor a folder")
        found = _codec_in(folder, codec_from_manifest)
        if found is None:
            raise TrainError(f"--codec {folder} holds no manifest.json naming a codec; pass the latents folder "
                             f"`splatent extract` wrote")
        return found
    # the first entry whose files exist tells (one missing file is the entry check's to report and drop)
    present = [e for e in entries if e.target_feature.is_file() and e.feature.is_file()]
    if entries and not present:
        entry = entries[0]
        name = "target_feature" if not entry.target_feature.is_file() else "feature"
        raise TrainError(f"entry {entry.id!r}: {name} {getattr(entry, name)} does not exist, nor do the other "
                         f"entries' files; rebuild the dataset with `splatent dataset` or restore the renders it names")
    for entry in present[:1]:
        for folder in (entry.target_feature.parent, entry.target_feature.parent.parent, entry.feature.parent.parent):
            found = _codec_in(folder, codec_from_manifest)
            if found is not None:
                return found
    first = entries[0].target_feature if entries else "the dataset"
    raise TrainError(f"cannot tell which codec wrote {first}: no manifest.json beside it or in its render folder; "
                     f"pass --codec sd-vae|tiny-random|LATENTS_DIR")


def _codec_in(folder: Path, codec_from_manifest):
    path = folder / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("stage") == "render" and data.get("latents"):
        latents = Path(data["latents"])
        if not (latents / "manifest.json").is_file():
            raise TrainError(f"{path} says its latents came from {latents}, which has no manifest.json any more; "
                             f"pass --codec with the latents folder")
        return codec_from_manifest(latents)
    if "codec" in data and "codec_config" in data and "sizes" in data:
        return codec_from_manifest(folder)
    return None
