from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
FOX = REPO.parent / "shared" / "data" / "fox"


def write_images(folder: Path, n: int = 6, size: tuple[int, int] = (64, 48), seed: int = 0, ext: str = ".png") -> list[Path]:
    """``n`` smooth random RGB images of ``size`` (width, height) named 0000.png, 0001.png, ..."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        coarse = (rng.random((4, 5, 3)) * 255).astype(np.uint8)
        path = folder / f"{i:04d}{ext}"
        Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


def as_tensor(path: Path) -> torch.Tensor:  # [3, H, W] in [0, 1]
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10.0 * torch.log10(((a.float() - b.float()) ** 2).mean()))


@pytest.fixture
def make_images():
    """The image writer, as a fixture (test modules cannot import conftest)."""
    return write_images


@pytest.fixture(name="psnr")
def psnr_fixture():
    return psnr


@pytest.fixture(name="as_tensor")
def as_tensor_fixture():
    return as_tensor


def _fox(scale: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """Fox's 50 photos (1080x1920) at 1/``scale`` size (JPEG draft decoding), cropped: stem -> [3, height, width]."""
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"the fox capture is not at {FOX} (it ships with the CI machine's shared/ folder)")
    images = {}
    for path in sorted((FOX / "images").glob("*.jpg")):
        with Image.open(path) as img:
            img.draft("RGB", (img.width // scale, img.height // scale))
            rgb = np.array(img.convert("RGB"))[:height, :width]
        images[path.stem] = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    return images


@pytest.fixture(scope="session")
def fox_eighth() -> dict[str, torch.Tensor]:
    """Fox's 50 photos at 1/8 size, cropped to 128x240: stem -> [3, 240, 128]."""
    return _fox(8, 240, 128)


@pytest.fixture(scope="session")
def fox_quarter() -> dict[str, torch.Tensor]:
    """Fox's 50 photos at 1/4 size, cropped to 264x480 (``images_4`` as encoded): stem -> [3, 480, 264]."""
    return _fox(4, 480, 264)


@pytest.fixture(scope="session")
def tiny_codec():
    from splatent_latents import load_codec

    return load_codec("tiny-random")


@pytest.fixture(scope="session")
def taef2_codec():
    """The taef2 codec with its packaged weights (CPU, float32); tests must not move or cast it."""
    from splatent_latents import load_codec

    return load_codec("taef2")
