"""Finding, sizing and reading image files, with one clear error per bad file."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import SceneError

logger = logging.getLogger("splatent")

# Formats Pillow decodes that photo captures come in (TIFF, WebP and BMP too: a scene whose frames name a .tif must
# not lose those frames silently); both cases, as file systems are case-sensitive.
IMAGE_EXTENSIONS = tuple(e for ext in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")
                         for e in (ext, ext.upper()))


# The extensions as a user types them, for messages.
IMAGE_EXTENSIONS_TEXT = ", ".join(e for e in IMAGE_EXTENSIONS if e.islower())

# What Pillow raises on a file it cannot decode. DecompressionBombError is not an OSError: Pillow raises it past
# twice ``Image.MAX_IMAGE_PIXELS`` (about 179 MP), a huge panorama or a corrupt header claiming one.
IMAGE_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError)


def image_read_error(path: Path, exc: BaseException, verb: str = "read") -> str:
    """The one line for an image Pillow could not open (``exc`` one of ``IMAGE_READ_ERRORS``)."""
    if isinstance(exc, Image.DecompressionBombError):
        return (f"image {path} is too large for Pillow to open ({exc}); downscale it (an images_2/ or images_4/ "
                "folder) or remove it")
    return f"cannot {verb} image {path}: {exc}; re-export the file or remove it"


def image_stem(name: str | Path) -> str:
    """The key of an image name: without its folder, and without its extension where that is an image one
    (``images/0001.jpg`` -> ``0001``; ``frame.0001``, a pose file's name without extension, stays whole)."""
    path = Path(str(name))
    return path.stem if path.suffix in IMAGE_EXTENSIONS else path.name


def view_order(view: str) -> tuple:
    """Sort key of a view name with its numbers read as numbers: ``frame_2`` before ``frame_10`` (as the eye reads
    them, and as an unpadded capture was taken; a plain sort puts 10 and 11 between 1 and 2)."""
    return tuple((0, int(part), part) if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", view))


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(f"image folder {folder} does not exist; pass the folder that holds the photos")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_EXTENSIONS)


def find_image(folder: Path, name: str) -> Path | None:
    """The file for ``name`` in ``folder``: the exact name, else any image with the same stem.

    Pose files often name ``images/0001.jpg`` while a downscaled folder holds
    ``images_4/0001.png``, or omit the extension altogether (NeRF synthetic).
    """
    folder = Path(folder)
    exact = folder / name
    if exact.is_file():
        return exact
    stem = image_stem(name)
    for ext in IMAGE_EXTENSIONS:
        candidate = folder / (stem + ext)
        if candidate.is_file():
            return candidate
    return None


def read_image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image, reading only its header."""
    try:
        with Image.open(path) as img:
            return img.size
    except IMAGE_READ_ERRORS as exc:
        raise SceneError(image_read_error(path, exc)) from None


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image to ``[H, W, 3]`` uint8 RGB.

    Grey-scale and palette images are expanded; an alpha channel is composited
    over white (the NeRF-synthetic convention) and noted once in the log. 16-bit
    grey (``I;16``, or ``I`` as Pillow reads 16-bit PNGs) is scaled to 8 bits (Pillow's
    own ``convert`` clips it, turning most photos white); CMYK and YCbCr go through
    Pillow's conversion; 32-bit float images are refused (their value range is unknown).
    """
    try:
        with Image.open(path) as img:
            img.load()  # force a full decode so truncated files fail here, by name
            if img.mode.startswith("I"):  # I;16, I;16B, I;16L, I: integer grey, 16 bits in practice
                grey = np.asarray(img).astype(np.float64)
                grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            if img.mode == "F":
                raise SceneError(f"{path} is a 32-bit float image, whose value range is unknown; convert it to "
                                 "8- or 16-bit PNG or JPEG")
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                logger.debug("%s has an alpha channel: composited over white", path.name)
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except IMAGE_READ_ERRORS as exc:
        raise SceneError(image_read_error(path, exc, verb="decode")) from None


def save_rgb(path: Path, image: np.ndarray, png_compress_level: int = 6) -> None:
    """Write ``[H, W, 3]`` uint8 (or float in [0, 1]) RGB atomically (temp file + rename).

    ``png_compress_level`` 1 writes a PNG about 4x faster and 20-40% larger: for intermediate files."""
    path = Path(path)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The process id keeps two writers of one file apart; a failed save (full disk) leaves no temporary behind.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fmt = _pil_format(path)
    options = {"compress_level": png_compress_level} if fmt == "PNG" else {}
    try:
        Image.fromarray(arr).save(tmp, format=fmt, **options)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _pil_format(path: Path) -> str:
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")


# How far an image's aspect ratio may stray from its latent's x8 and still be that image resized (rounding of
# downscaled folders): 2%.
ASPECT_TOLERANCE = 0.02


def latent_image_mismatch(width: int, height: int, latent_width: int, latent_height: int, factor: int = 8) -> str | None:
    """Why a ``width`` x ``height`` image cannot be the ground truth of a latent (``None`` where it can).

    The latents' own image is at least ``factor`` x the latent's size (extraction rounds down to a multiple of
    ``factor``): a smaller one is another folder's, and upsampling it gives a blurred target; another aspect ratio is
    another image. A larger one of the same ratio (the full-size photo) is resized down by the caller.
    """
    tw, th = latent_width * factor, latent_height * factor
    if (width, height) == (tw, th) or (width // factor, height // factor) == (latent_width, latent_height):
        return None
    if abs(width / height - tw / th) > ASPECT_TOLERANCE * (tw / th):
        return f"another aspect ratio than its latent {latent_width}x{latent_height} (x{factor} = {tw}x{th})"
    if width < tw or height < th:
        return (f"smaller than its latent {latent_width}x{latent_height} x{factor} = {tw}x{th}: not the images the "
                f"latents came from (a more downscaled folder?), and upsampled it would be a blurred target")
    return None


def load_mask(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a mask to ``[H, W]`` bool, True where the pixel counts (nerfstudio's ``mask_path`` convention).

    A grey (or palette, or RGB: its first channel) image, 0 where pixels are left out. Values below 128 count as
    0, so binary masks read as nerfstudio reads them and JPEG noise around 0 does not bring a pixel back.
    ``size`` (``(width, height)``) resizes it first (nearest neighbour: a mask has no in-between values).
    """
    try:
        with Image.open(path) as img:
            img.load()
            grey = img.getchannel(0) if img.mode in ("RGB", "RGBA") else img.convert("L")
            if size is not None and grey.size != tuple(size):
                grey = grey.resize(tuple(size), Image.Resampling.NEAREST)
            return np.asarray(grey, dtype=np.uint8) >= 128
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise SceneError(f"cannot decode mask {path}: {exc}; re-export the file or remove its mask_path") from None
