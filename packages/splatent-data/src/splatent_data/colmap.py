"""COLMAP models through pycolmap: parse and write.

Reads binary or text models, the old layout (``cameras``/``images``/``points3D``)
and the newer one with ``rigs``/``frames``, camera models ``SIMPLE_PINHOLE``,
``PINHOLE``, ``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV`` (and ``OPENCV_FISHEYE``,
``FULL_OPENCV``), and keeps only registered images; the photos in the image
folder that the model does not place are listed as ``Scene.unregistered``.
COLMAP's cameras already use OpenCV axes and world-to-camera poses; we store
their inverse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import SceneError
from .images import list_images
from .scene import PointCloud, Scene, attach_images

MODEL_FILES = ("cameras", "images", "points3D")
MODEL_DIRS = ("sparse/0", "sparse", "", "colmap/sparse/0")

# COLMAP params layout -> (fx, fy, cx, cy, distortion model, distortion params)
def _intrinsics(model: str, p: np.ndarray) -> tuple[float, float, float, float, str, tuple[float, ...]]:
    p = [float(x) for x in p]
    if model == "SIMPLE_PINHOLE":
        return p[0], p[0], p[1], p[2], "PINHOLE", ()
    if model == "PINHOLE":
        return p[0], p[1], p[2], p[3], "PINHOLE", ()
    if model == "SIMPLE_RADIAL":
        return p[0], p[0], p[1], p[2], "SIMPLE_RADIAL", (p[3],)
    if model == "RADIAL":
        return p[0], p[0], p[1], p[2], "RADIAL", (p[3], p[4])
    if model in ("OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV"):
        return p[0], p[1], p[2], p[3], model, tuple(p[4:])
    raise ValueError(model)


def _has_model(folder: Path) -> bool:
    return any((folder / f"{name}{ext}").is_file() for name in MODEL_FILES for ext in (".bin", ".txt"))


def find_model(path: Path) -> Path | None:
    """The COLMAP model folder under ``path`` (``sparse/0``, ``sparse``, or ``path`` itself)."""
    for sub in MODEL_DIRS:
        folder = Path(path) / sub
        if folder.is_dir() and _has_model(folder):
            return folder
    return None


def _check_complete(model_dir: Path) -> None:
    for ext in (".bin", ".txt"):
        present = [n for n in MODEL_FILES if (model_dir / f"{n}{ext}").is_file()]
        if present and len(present) < len(MODEL_FILES):
            lacking = [f"{n}{ext}" for n in MODEL_FILES if n not in present]
            raise SceneError(
                f"COLMAP model {model_dir} lacks {', '.join(lacking)}; copy the whole model folder "
                f"(cameras, images, points3D) or re-export it with `colmap model_converter`"
            )


def _pose(image) -> np.ndarray:
    cam_from_world = image.cam_from_world
    if callable(cam_from_world):  # a method since pycolmap 3.12 (rigs and frames)
        cam_from_world = cam_from_world()
    w2c = np.eye(4)
    w2c[:3, :4] = np.asarray(cam_from_world.matrix(), dtype=np.float64)
    return np.linalg.inv(w2c)


def _root_of(model_dir: Path) -> Path:
    """The scene folder: the one holding ``sparse/`` (or, for nerfstudio's ``SCENE/colmap/sparse/0`` beside
    ``SCENE/images``, the one holding ``colmap/``), else the model folder itself."""
    for parent in (model_dir, *model_dir.parents):
        if parent.name == "sparse":
            root = parent.parent
            if root.name == "colmap" and not (root / "images").is_dir() and (root.parent / "images").is_dir():
                return root.parent
            return root
    return model_dir


def unregistered_photos(image_dir: Path, cameras: list[Camera]) -> list[str]:
    """Names of the image files in ``image_dir`` that none of ``cameras`` uses.

    For a model from structure from motion these are the photos it could not register.
    """
    if not Path(image_dir).is_dir():
        return []
    used = {c.image_path for c in cameras}
    return [p.name for p in list_images(image_dir) if p not in used]


def parse_colmap(path: Path, images: str | None = None, strict: bool = False) -> Scene:
    """Parse a COLMAP scene: ``path`` is the scene folder or the model folder itself.

    Images are read from ``<root>/images`` (or ``<root>/<images>``, e.g. ``images_4``,
    with intrinsics scaled to the files' real size). Image files there that the model
    does not register become ``Scene.unregistered``.
    """
    import pycolmap

    path = Path(path)
    model_dir = find_model(path)
    if model_dir is None:
        raise SceneError(f"no COLMAP model in {path}: expected sparse/0/cameras.bin, images.bin, points3D.bin (or .txt)")
    _check_complete(model_dir)
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as exc:  # pycolmap raises plain RuntimeError/ValueError for corrupt files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SceneError(f"cannot read COLMAP model {model_dir} (cameras.bin, images.bin, points3D.bin or their .txt): "
                         f"{reason}; the files are damaged or not COLMAP's format: re-export the model "
                         f"(colmap model_converter) or re-run `splatent scene sfm`") from None
    root = _root_of(model_dir)
    image_dir = root / (images or "images")
    declared: list[Camera] = []
    for image in sorted(rec.images.values(), key=lambda im: im.name):
        if not image.has_pose:
            continue
        cam = rec.cameras[image.camera_id]
        model = cam.model.name if hasattr(cam.model, "name") else str(cam.model)
        try:
            fx, fy, cx, cy, dmodel, dparams = _intrinsics(model, np.asarray(cam.params))
        except ValueError:
            raise SceneError(
                f"{model_dir}: camera model {model} is not supported; undistort with "
                f"`colmap image_undistorter` or use SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV"
            ) from None
        declared.append(Camera(
            name=image.name, image_path=image_dir / image.name, width=int(cam.width), height=int(cam.height),
            fx=fx, fy=fy, cx=cx, cy=cy, camtoworld=_pose(image), model=dmodel, distortion=dparams,
        ))
    if not declared:
        raise SceneError(f"COLMAP model {model_dir} has no registered images; re-run the reconstruction")
    cameras, missing = attach_images(declared, image_dir, strict, model_dir)
    points = None
    if rec.num_points3D() > 0:
        pts = [rec.points3D[pid] for pid in sorted(rec.points3D)]  # by id: the file's order
        points = PointCloud(
            xyz=np.array([p.xyz for p in pts], dtype=np.float64),
            rgb=np.array([p.color for p in pts], dtype=np.uint8),
        )
    return Scene(root=root, format="colmap", source=model_dir, cameras=cameras, points=points, missing=missing,
                 unregistered=unregistered_photos(image_dir, cameras))


def write_colmap(
    cameras: list[Camera],
    model_dir: Path,
    points: PointCloud | None = None,
    binary: bool = True,
) -> None:
    """Write cameras (and points) as a COLMAP model with pycolmap, one COLMAP camera per image."""
    import pycolmap

    rec = pycolmap.Reconstruction()
    for i, cam in enumerate(cameras, start=1):
        if cam.model == "PINHOLE":
            params = [cam.fx, cam.fy, cam.cx, cam.cy]
        elif cam.model in ("SIMPLE_RADIAL", "RADIAL"):
            params = [cam.fx, cam.cx, cam.cy, *cam.distortion]
        else:
            params = [cam.fx, cam.fy, cam.cx, cam.cy, *cam.distortion]
        pc = pycolmap.Camera(model=cam.model, width=cam.width, height=cam.height, params=params, camera_id=i)
        rec.add_camera_with_trivial_rig(pc)
        image = pycolmap.Image(name=cam.name, camera_id=i, image_id=i)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam.worldtocam[:3, :4]))
    if points is not None:
        colours = points.rgb if points.rgb is not None else np.full((len(points), 3), 128, np.uint8)
        for xyz, rgb in zip(points.xyz, colours):
            rec.add_point3D(np.asarray(xyz, dtype=np.float64), pycolmap.Track(), np.asarray(rgb, dtype=np.uint8))
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (rec.write_binary if binary else rec.write_text)(str(model_dir))
