"""Undistort a scene into a new pinhole scene folder.

COLMAP input goes through pycolmap's own undistorter (COLMAP's choice of the
new pinhole camera). Other input (``transforms.json``) goes through
:func:`undistort_image`: the output keeps the size and ``fx, fy, cx, cy`` of the
input, and each output pixel samples the distorted image where the lens model
(:mod:`splatent_data.distortion`, checked against pycolmap) sends it; pixels
that fall outside the input are black.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from .camera import Camera
from .distortion import distort_points
from .errors import SceneError
from .images import load_rgb, save_rgb
from .nerf import write_transforms
from .scene import Scene, load_scene

logger = logging.getLogger("splatent")


def undistort_image(image: np.ndarray, camera: Camera) -> np.ndarray:
    """``[H, W, 3]`` uint8 image of a distorted camera -> the same camera without distortion."""
    if camera.is_pinhole:
        return image
    h, w = image.shape[:2]
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ideal = np.stack([(u.ravel() - camera.cx) / camera.fx, (v.ravel() - camera.cy) / camera.fy], axis=-1)
    src = distort_points(ideal, camera.model, camera.distortion)
    # Back to pixel *index* coordinates (centre of pixel i is i + 0.5) for sampling.
    sx = (src[:, 0] * camera.fx + camera.cx - 0.5).reshape(h, w)
    sy = (src[:, 1] * camera.fy + camera.cy - 0.5).reshape(h, w)
    return bilinear_sample(image, sx, sy)


def bilinear_sample(image: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Sample ``[H, W, C]`` at float index coordinates ``sx, sy [h, w]``; outside is 0."""
    h, w = image.shape[:2]
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    img = image.astype(np.float32)
    out = np.zeros(sx.shape + image.shape[2:], dtype=np.float32)
    for dy, dx, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out += np.where(inside[..., None], img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], 0.0) * wgt
    valid = (sx >= -0.5) & (sx <= w - 0.5) & (sy >= -0.5) & (sy <= h - 0.5)
    out[~valid] = 0.0
    return np.clip(out + 0.5, 0, 255).astype(np.uint8) if image.dtype == np.uint8 else out


def undistort_scene(scene: Scene, output: Path, progress=None) -> Scene:
    """Write a pinhole copy of ``scene`` to ``output`` and return it parsed.

    Args:
        scene: A scene with distorted cameras (a pinhole scene is copied as is).
        output: New scene folder (``images/`` + ``transforms.json``, or a COLMAP model).
        progress: Optional callable ``progress(done, total)``.
    """
    output = Path(output)
    if output.resolve() == scene.root.resolve():
        raise SceneError(f"undistort output {output} is the input scene; choose a new folder")
    if scene.format == "colmap":
        return _undistort_colmap(scene, output)
    cameras: list[Camera] = []
    for i, cam in enumerate(scene.cameras):
        dst = output / "images" / f"{cam.stem}.png"
        if not dst.exists():
            save_rgb(dst, undistort_image(load_rgb(cam.image_path), cam))
        cameras.append(dataclasses.replace(cam, name=dst.name, image_path=dst, model="PINHOLE", distortion=()))
        if progress is not None:
            progress(i + 1, len(scene.cameras))
    write_transforms(cameras, output / "transforms.json", points=scene.points)
    return load_scene(output)


def _undistort_colmap(scene: Scene, output: Path) -> Scene:
    import pycolmap

    image_dir = scene.cameras[0].image_path.parent
    try:
        pycolmap.undistort_images(str(output), str(scene.source), str(image_dir))
    except Exception as exc:  # pycolmap raises RuntimeError with COLMAP's message
        raise SceneError(f"COLMAP undistortion of {scene.source} failed: {exc}".splitlines()[0]) from None
    logger.info("undistorted %d images with COLMAP into %s", len(scene), output)
    return load_scene(output)
