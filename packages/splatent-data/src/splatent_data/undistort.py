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
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .camera import Camera
from .distortion import distort_points
from .errors import SceneError
from .images import load_rgb, save_rgb
from .nerf import write_transforms
from .loading import load_scene
from .scene import Scene

logger = logging.getLogger("splatent")


def undistort_image(image: np.ndarray, camera: Camera) -> np.ndarray:
    """``[H, W, C]`` image of a distorted camera -> the same camera without distortion (same dtype)."""
    if camera.is_pinhole:
        return image
    h, w = image.shape[:2]
    index, weight = _undistortion_map(camera.model, tuple(camera.distortion), camera.fx, camera.fy, camera.cx,
                                      camera.cy, w, h)
    flat = image.reshape(h * w, -1).astype(np.float32)
    out = np.zeros((h * w, flat.shape[1]), dtype=np.float32)
    for k in range(4):
        out += flat[index[k]] * weight[k]
    out = out.reshape(image.shape[:2] + image.shape[2:])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8) if image.dtype == np.uint8 else out


@functools.lru_cache(maxsize=2)  # 32 bytes a pixel: 66 MB for a 1080p camera
def _undistortion_map(model: str, distortion: tuple[float, ...], fx: float, fy: float, cx: float, cy: float,
                      w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear taps of every output pixel: flat source indices ``[4, h*w]`` (int32) and weights ``[4, h*w, 1]``
    (0 for taps outside the image). Computed once per camera model: a capture's cameras share one."""
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ideal = np.stack([(u.ravel() - cx) / fx, (v.ravel() - cy) / fy], axis=-1)
    src = distort_points(ideal, model, distortion)
    # Back to pixel *index* coordinates (centre of pixel i is i + 0.5) for sampling.
    sx, sy = src[:, 0] * fx + cx - 0.5, src[:, 1] * fy + cy - 0.5
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    ax, ay = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    valid = (sx >= -0.5) & (sx <= w - 0.5) & (sy >= -0.5) & (sy <= h - 0.5)
    index = np.empty((4, h * w), dtype=np.int32)
    weight = np.empty((4, h * w, 1), dtype=np.float32)
    taps = ((0, 0, (1 - ax) * (1 - ay)), (0, 1, ax * (1 - ay)), (1, 0, (1 - ax) * ay), (1, 1, ax * ay))
    for k, (dy, dx, wgt) in enumerate(taps):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h) & valid
        index[k] = np.clip(yi, 0, h - 1) * w + np.clip(xi, 0, w - 1)
        weight[k, :, 0] = np.where(inside, wgt, 0.0)
    index.setflags(write=False)
    weight.setflags(write=False)
    return index, weight


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

    def undistort_one(cam: Camera) -> Camera:
        dst = output / "images" / f"{cam.stem}.png"
        if not dst.exists():  # resumable: a finished image is kept (save_rgb writes atomically)
            save_rgb(dst, undistort_image(load_rgb(cam.image_path), cam), png_compress_level=1)
        return dataclasses.replace(cam, name=dst.name, image_path=dst, model="PINHOLE", distortion=())

    # Threads: image decoding, PNG encoding and numpy's arithmetic release the GIL.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        cameras = []
        for i, cam in enumerate(pool.map(undistort_one, scene.cameras)):
            cameras.append(cam)
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
