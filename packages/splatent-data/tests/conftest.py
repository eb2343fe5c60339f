from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatent_data import Camera, look_at

REPO = Path(__file__).resolve().parents[3]
FOX = REPO.parent / "shared" / "data" / "fox"


def ring_cameras(root: Path, n: int = 12, size: tuple[int, int] = (40, 30), radius: float = 4.0,
                 model: str = "PINHOLE", distortion: tuple[float, ...] = (), write: bool = True,
                 folder: str = "images", ext: str = ".png") -> list[Camera]:
    """``n`` cameras on a ring around the origin, looking at it, with small image files."""
    w, h = size
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        center = [radius * np.cos(a), radius * np.sin(a), 0.5 + 0.1 * np.sin(3 * a)]
        path = root / folder / f"{i:04d}{ext}"
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (w, h), (i * 10 % 255, 80, 160)).save(path)
        cams.append(Camera(name=path.name, image_path=path, width=w, height=h, fx=0.9 * w, fy=0.92 * w,
                           cx=w / 2 + 0.25, cy=h / 2 - 0.5, camtoworld=look_at(center, [0, 0, 0]),
                           model=model, distortion=distortion))
    return cams


@pytest.fixture
def fox() -> Path:
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"the fox capture is not at {FOX} (it ships with the CI machine's shared/ folder)")
    return FOX


@pytest.fixture
def make_ring():
    """The ring-of-cameras builder, as a fixture (test modules cannot import conftest)."""
    return ring_cameras
