"""Undistort a scene into a new pinhole scene folder, with COLMAP's undistorter.

COLMAP models go through ``pycolmap.undistort_images`` (the whole model);
``transforms.json`` scenes go image by image through ``pycolmap.undistort_image``
(:func:`undistort_image`): both choose the new pinhole camera the way COLMAP does
(same focal length, the image grown or shrunk so that no output pixel is blank),
so a scene undistorts the same whichever format it came in. Masks
(``mask_path``) are undistorted with their image's camera.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import SceneError
from .images import load_mask, load_rgb, save_rgb
from .loading import load_scene
from .nerf import write_transforms
from .scene import Scene

logger = logging.getLogger("splatent")

#: Our models as COLMAP's OpenCV family (COLMAP's SIMPLE_RADIAL / RADIAL are OPENCV with p1 = p2 = 0, k2 = 0).
_AS_OPENCV = {"SIMPLE_RADIAL": lambda d: (d[0], 0.0, 0.0, 0.0), "RADIAL": lambda d: (d[0], d[1], 0.0, 0.0)}


def _colmap_camera(camera: Camera):
    import pycolmap

    model, params = camera.model, tuple(camera.distortion)
    if model in _AS_OPENCV:
        model, params = "OPENCV", _AS_OPENCV[model](params)
    return pycolmap.Camera(model=model, width=camera.width, height=camera.height,
                           params=[camera.fx, camera.fy, camera.cx, camera.cy, *params])


def undistorted_camera(camera: Camera) -> Camera:
    """The pinhole camera COLMAP gives ``camera``'s undistorted image (``camera`` itself when it has no distortion)."""
    if camera.is_pinhole:
        return dataclasses.replace(camera, model="PINHOLE", distortion=())
    import pycolmap

    new = pycolmap.undistort_camera(pycolmap.UndistortCameraOptions(), _colmap_camera(camera))
    fx, fy, cx, cy = (float(v) for v in new.params)
    return dataclasses.replace(camera, width=int(new.width), height=int(new.height), fx=fx, fy=fy, cx=cx, cy=cy,
                               model="PINHOLE", distortion=())


def undistort_image(image: np.ndarray, camera: Camera) -> tuple[np.ndarray, Camera]:
    """``[H, W, 3]`` or ``[H, W]`` uint8 image of a distorted camera -> ``(image, camera)`` of
    :func:`undistorted_camera` (bilinear, COLMAP's warp)."""
    if camera.is_pinhole:
        return image, undistorted_camera(camera)
    import pycolmap

    if image.dtype != np.uint8:
        raise SceneError(f"undistort_image takes uint8 images, got {image.dtype}")
    if image.shape[:2] != (camera.height, camera.width):
        raise SceneError(f"image {camera.image_path} is {image.shape[1]}x{image.shape[0]} but its camera is "
                         f"{camera.width}x{camera.height}")
    bitmap = pycolmap.Bitmap.from_array(np.ascontiguousarray(image))
    out, new = pycolmap.undistort_image(pycolmap.UndistortCameraOptions(), bitmap, _colmap_camera(camera))
    result = np.asarray(out.to_array())
    fx, fy, cx, cy = (float(v) for v in new.params)
    return result.reshape(result.shape[:2] + image.shape[2:]), dataclasses.replace(
        camera, width=int(new.width), height=int(new.height), fx=fx, fy=fy, cx=cx, cy=cy, model="PINHOLE",
        distortion=())


def undistort_scene(scene: Scene, output: Path, progress=None) -> Scene:
    """Write a pinhole copy of ``scene`` to ``output`` and return it parsed.

    Args:
        scene: A scene with distorted cameras (a pinhole scene is copied as is: how the stages read a scene
            whose images sit in several folders, as Blender's ``train/`` and ``test/``). Its split hint is kept.
        output: New scene folder (``images/`` + ``transforms.json``, or a COLMAP model).
        progress: Optional callable ``progress(done, total)``.
    """
    output = Path(output)
    if output.resolve() == scene.root.resolve():
        raise SceneError(f"undistort output {output} is the input scene; choose a new folder")
    # COLMAP's undistorter keeps a rig's sub-folders: images in several folders take the per-image path
    if scene.format == "colmap" and len(scene.image_folders) == 1 and _at_model_size(scene):
        return _undistort_colmap(scene, output)

    def undistort_one(cam: Camera) -> Camera:
        dst = output / "images" / f"{cam.stem}.png"
        new = undistorted_camera(cam)
        if not dst.exists():  # resumable: a finished image is kept (save_rgb writes atomically)
            image, new = undistort_image(load_rgb(cam.image_path), cam)
            save_rgb(dst, image, png_compress_level=1)
        new = dataclasses.replace(new, name=dst.name, image_path=dst)
        if cam.mask_path is None:
            return new
        mask_dst = output / "masks" / f"{cam.stem}.png"
        if not mask_dst.exists():
            grey = (load_mask(cam.mask_path, (cam.width, cam.height)) * np.uint8(255)).astype(np.uint8)
            undistorted, _ = undistort_image(grey, cam)
            # Bilinear blends a left-out pixel into its neighbours: keep only what was wholly kept.
            save_rgb(mask_dst, ((undistorted >= 254) * 255).astype(np.uint8))
        return dataclasses.replace(new, mask_path=mask_dst)

    # Threads: image decoding, PNG encoding and numpy's arithmetic release the GIL.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        cameras = []
        for i, cam in enumerate(pool.map(undistort_one, scene.cameras)):
            cameras.append(cam)
            if progress is not None:
                progress(i + 1, len(scene.cameras))
    write_transforms(cameras, output / "transforms.json", points=scene.points,
                     applied_transform=scene.applied_transform, split=scene.split_hint)
    return load_scene(output)


def _at_model_size(scene: Scene) -> bool:
    """Whether a COLMAP scene's images are the size its model was made at. COLMAP's undistorter reads the model's
    intrinsics as they are, and a downscaled folder (``images_4``) makes it abort the process from a worker thread
    (no exception to catch): such a scene goes through the per-image path, with the intrinsics ``load_scene``
    scaled to the files."""
    import pycolmap

    sizes = {(int(c.width), int(c.height)) for c in pycolmap.Reconstruction(str(scene.source)).cameras.values()}
    return all((cam.width, cam.height) in sizes for cam in scene.cameras)


def _undistort_colmap(scene: Scene, output: Path) -> Scene:
    import pycolmap

    image_dir = scene.cameras[0].image_path.parent
    try:
        pycolmap.undistort_images(str(output), str(scene.source), str(image_dir))
    except Exception as exc:  # pycolmap raises RuntimeError with COLMAP's message
        raise SceneError(f"COLMAP undistortion of {scene.source} failed: {exc}".splitlines()[0]) from None
    logger.info("undistorted %d images with COLMAP into %s", len(scene), output)
    return load_scene(output)
