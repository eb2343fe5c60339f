"""Images for the encoder: which folder, what size, and decoding on CPU workers.

Images are encoded at their own size rounded *down* to a multiple of 8
(``1081x1921`` is resized to ``1080x1920``), so a latent pixel covers exactly
an 8x8 image block. Grey-scale and palette images are expanded to RGB and
alpha is composited over white (:func:`splatent_data.load_rgb`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from splatent_data import (
    IMAGE_EXTENSIONS_TEXT, IMAGE_READ_ERRORS, SplatentError, image_read_error, list_images, load_rgb,
)

from .errors import LatentError

logger = logging.getLogger("splatent")

DEFAULT_IMAGES = "images_4"
FALLBACK_IMAGES = "images"


def find_image_dir(scene: Path, images: str | Path | None = None) -> Path:
    """The folder whose images to encode.

    ``images`` (``--images``/``--res``) is a folder name under ``scene`` or a path.
    By default ``scene/images_4``, else ``scene/images`` (said in the log), else
    ``scene`` itself when it holds images directly.
    """
    scene = Path(scene)
    if images is not None:
        folder = scene / images  # an absolute ``images`` replaces ``scene``
        if not folder.is_dir():
            raise LatentError(f"image folder {folder} does not exist; pass --images with a folder under {scene} or a path")
        return folder
    if not scene.is_dir():
        what = "is a file, not a folder" if scene.exists() else "does not exist"  # e.g. one photo or transforms.json
        raise LatentError(f"scene folder {scene} {what}; pass the folder that holds {DEFAULT_IMAGES}/ or {FALLBACK_IMAGES}/")
    if (scene / DEFAULT_IMAGES).is_dir():
        return scene / DEFAULT_IMAGES
    if (scene / FALLBACK_IMAGES).is_dir():
        logger.info("no %s/ in %s: encoding %s/ instead (pass --images to choose)", DEFAULT_IMAGES, scene, FALLBACK_IMAGES)
        return scene / FALLBACK_IMAGES
    if list_images(scene):
        logger.info("no %s/ or %s/ in %s: encoding the images in the folder itself", DEFAULT_IMAGES, FALLBACK_IMAGES, scene)
        return scene
    raise LatentError(f"{scene} has no {DEFAULT_IMAGES}/ or {FALLBACK_IMAGES}/ folder and no images; pass --images FOLDER "
                      f"(images in several folders, as Blender's train/ and test/, are gathered into one by "
                      f"`splatent scene undistort {scene} --output COPY`; `splatent pipeline` does it itself)")


@dataclass(frozen=True)
class ImageItem:
    """One image to encode: where it is, its size on disk and the size it is encoded at."""

    stem: str
    path: Path
    width: int
    height: int
    mode: str

    @property
    def encoded_size(self) -> tuple[int, int]:
        """``(height, width)`` rounded down to multiples of 8."""
        return (self.height // 8 * 8, self.width // 8 * 8)

    @property
    def resized(self) -> bool:
        return self.encoded_size != (self.height, self.width)


def probe_images(folder: Path) -> tuple[list[ImageItem], dict[str, str]]:
    """Read every image's header: ``(items, failures by file name)``.

    Refuses an empty folder and two files with one stem (latents are named by stem).
    """
    paths = list_images(folder)
    if not paths:
        raise LatentError(f"no images ({IMAGE_EXTENSIONS_TEXT}) in {folder}; pass --images with the folder that holds them")
    stems = Counter(p.stem for p in paths)
    twins = [p.name for p in paths if stems[p.stem] > 1]
    if twins:
        raise LatentError(f"{folder} holds {' and '.join(twins[:2])}: latents are named by stem, so keep one of them")
    items, failed = [], {}
    for path in paths:
        try:
            with Image.open(path) as img:
                width, height, mode = *img.size, img.mode
        except IMAGE_READ_ERRORS as exc:
            failed[path.name] = image_read_error(path, exc)
            continue
        if width < 8 or height < 8:
            failed[path.name] = f"image {path} is {width}x{height}, smaller than one 8x8 latent pixel; remove it"
            continue
        items.append(ImageItem(path.stem, path, width, height, mode))
    _note_conversions(items)
    return items, failed


def _note_conversions(items: list[ImageItem]) -> None:
    def few(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")

    converted = [f"{i.path.name} ({i.mode})" for i in items if i.mode != "RGB"]
    if converted:
        logger.info("%d image(s) are not RGB and are converted (alpha over white): %s", len(converted), few(converted))
    resized = [i for i in items if i.resized]
    if resized:
        i = resized[0]
        logger.info("%d image(s) have sides that are not multiples of 8 and are resized down (e.g. %s %dx%d -> %dx%d)",
                    len(resized), i.path.name, i.width, i.height, i.encoded_size[1], i.encoded_size[0])


def read_image(item: ImageItem) -> torch.Tensor:  # [3, H8, W8] uint8
    """Decode, convert to RGB and resize to the encoded size; ``SceneError`` names a bad file."""
    rgb = load_rgb(item.path)
    height, width = item.encoded_size
    if rgb.shape[:2] != (height, width):
        rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()  # np.array: PIL's arrays are read-only


def batches_by_size(items: list[ImageItem], batch_size: int | None, pixel_budget: int) -> list[list[int]]:
    """Indices of ``items`` in batches of one encoded size, in name order within a size.

    ``batch_size`` None: as many images as fit ``pixel_budget`` pixels (at least 1, at most 64).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.encoded_size, []).append(index)
    batches = []
    for encoded_size, indices in groups.items():
        size = batch_rows(encoded_size, batch_size, pixel_budget)
        batches += [indices[i:i + size] for i in range(0, len(indices), size)]
    return batches


def batch_rows(encoded_size: tuple[int, int], batch_size: int | None, pixel_budget: int) -> int:
    """Images per batch of one encoded ``(height, width)``: ``batch_size``, or as many as fit ``pixel_budget``."""
    height, width = encoded_size
    return batch_size or max(1, min(64, pixel_budget // (height * width)))


class ImageBatches(torch.utils.data.Dataset):
    """Batches of decoded images, for a ``DataLoader(batch_size=None)`` whose workers decode while the GPU encodes.

    Item ``k`` is batch ``k``: ``(images [B, 3, H, W] uint8, indices of those decoded, {file name: error})``, the
    images a NumPy array: with ``collate_fn=splatent_latents.workers.as_is`` it crosses the worker's pipe rather
    than a shared-memory file (see :mod:`splatent_latents.workers`).
    """

    def __init__(self, items: list[ImageItem], batches: list[list[int]]):
        self.items = items
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> tuple[np.ndarray, list[int], dict[str, str]]:
        images, good, failed = [], [], {}
        for index in self.batches[k]:
            try:
                images.append(read_image(self.items[index]))
                good.append(index)
            except SplatentError as exc:
                failed[self.items[index].path.name] = str(exc)
        height, width = self.items[self.batches[k][0]].encoded_size
        stacked = np.stack([i.numpy() for i in images]) if images else np.empty((0, 3, height, width), np.uint8)
        return stacked, good, failed
