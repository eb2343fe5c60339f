"""NeRF / instant-ngp / nerfstudio ``transforms.json``: parse and write.

Handles global or per-frame intrinsics (``fl_x fl_y cx cy w h`` or
``camera_angle_x``/``camera_angle_y``), OpenCV distortion ``k1 k2 p1 p2 [k3]``,
nerfstudio's ``camera_model: OPENCV_FISHEYE`` with ``k1..k4``, file paths with or
without extension, Blender's ``transforms_{train,test}.json`` pairs (frames named after their split,
``test_r_0``, where the splits reuse image names) and nerfstudio's ``{train,val,test}_filenames`` splits
(both read as the scene's ``split_hint``, the latter written back), and nerfstudio's
``ply_file_path`` (sparse points for initialisation, in the poses' frame), per-frame
``mask_path`` (0 where pixels are left out of the fit) and ``applied_transform``
(the transform ns-process-data applied to the original, e.g. COLMAP, world to get the
file's poses: kept on the scene, written back, and undone by ``export-ply --frame original``).
Poses are OpenGL camera-to-world in the file and OpenCV in the returned cameras.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Camera, opengl_to_opencv
from .errors import SceneError
from .fileio import atomic_write_json
from .images import image_stem
from .points_ply import read_points_ply, write_points_ply
from .scene import PointCloud, Scene, attach_images, validate_pose

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y",
                  "k1", "k2", "k3", "k4", "p1", "p2", "camera_model")
BLENDER_SPLITS = ("train", "test")
FILENAME_SPLITS = ("train", "val", "test")


def find_transforms(path: Path) -> Path | None:
    """The pose file for ``path``: itself if a JSON file, else ``transforms.json`` or Blender's pair."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return path
    for name in ("transforms.json", "transforms_train.json"):
        if (path / name).is_file():
            return path / name
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SceneError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix or re-export it") from None
    except UnicodeDecodeError:
        raise SceneError(f"{path} is not UTF-8 text, so not a transforms.json; re-export it") from None
    except OSError as exc:
        raise SceneError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise SceneError(f"{path} must hold a JSON object with a 'frames' list")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneError(f"{path} has no frames; a transforms.json needs a non-empty 'frames' list")
    return data


#: nerfstudio's ``camera_model`` values read as a pinhole camera with OpenCV or fisheye distortion (undistorted
#: before fitting). Any other (``EQUIRECTANGULAR``, ``FISHEYE624``, ...) is refused rather than read as a pinhole.
SUPPORTED_CAMERA_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "PERSPECTIVE", "OPENCV_FISHEYE")


def _distortion(meta: dict[str, Any]) -> tuple[str, tuple[float, ...]]:
    model = str(meta.get("camera_model", "OPENCV")).upper()
    if model not in SUPPORTED_CAMERA_MODELS:
        raise SceneError(
            f"camera_model {model} is not supported (Splatent renders pinhole cameras; it reads "
            f"{', '.join(SUPPORTED_CAMERA_MODELS)}): convert the images to a pinhole or OpenCV camera first "
            f"(e.g. nerfstudio's or COLMAP's image_undistorter)")
    get = lambda k: float(meta.get(k, 0.0))  # noqa: E731
    if model == "OPENCV_FISHEYE":
        params = tuple(get(k) for k in ("k1", "k2", "k3", "k4"))
        return ("OPENCV_FISHEYE", params) if any(params) else ("PINHOLE", ())
    k1, k2, p1, p2, k3 = (get(k) for k in ("k1", "k2", "p1", "p2", "k3"))
    if k3:
        return "FULL_OPENCV", (k1, k2, p1, p2, k3, 0.0, 0.0, 0.0)
    if any((k1, k2, p1, p2)):
        return "OPENCV", (k1, k2, p1, p2)
    return "PINHOLE", ()


def _camera(meta: dict[str, Any], frame_path: str, c2w_gl: np.ndarray, root: Path) -> Camera:
    """A camera with the declared size; ``fx`` is NaN when only ``camera_angle_x`` is
    given without ``w`` (Blender scenes): :func:`_focal_from_angle` fills it in once
    the image file has told the width."""
    w = int(round(float(meta.get("w", 0) or 0)))
    h = int(round(float(meta.get("h", 0) or 0)))
    if w < 0 or h < 0:  # 0 or absent: the image file tells the size; a negative one is a broken file
        raise SceneError(f"frame {frame_path}: image size w={w}, h={h} is negative; fix the transforms file (or drop "
                         f"w and h: the image files tell the size)")
    if "fl_x" in meta:
        fx = float(meta["fl_x"])
        fy = float(meta.get("fl_y", fx))
        for key, value in (("fl_x", fx), ("fl_y", fy)):
            if value <= 0:
                raise SceneError(f"frame {frame_path}: {key} is {value:g}; a focal length must be positive (pixels): "
                                 f"fix the transforms file")
    elif "camera_angle_x" in meta:
        for key in ("camera_angle_x", "camera_angle_y"):  # a field of view in radians: tan(angle / 2) > 0
            if key in meta and not 0.0 < float(meta[key]) < math.pi:
                raise SceneError(f"frame {frame_path}: {key} is {float(meta[key]):g}; a field of view must be "
                                 f"between 0 and pi radians: fix the transforms file")
        fx = 0.5 * w / math.tan(0.5 * float(meta["camera_angle_x"])) if w > 0 else math.nan
        fy = (0.5 * h / math.tan(0.5 * float(meta["camera_angle_y"]))
              if "camera_angle_y" in meta and h > 0 else fx)
    else:
        raise SceneError(f"frame {frame_path}: no focal length (fl_x or camera_angle_x) in the transforms file")
    model, params = _distortion(meta)
    path = Path(frame_path) if Path(frame_path).is_absolute() else (root / frame_path).resolve()
    return Camera(
        name=Path(frame_path).name, image_path=path, width=w, height=h,
        fx=fx, fy=fy, cx=float(meta.get("cx", w / 2)), cy=float(meta.get("cy", h / 2)),
        camtoworld=opengl_to_opencv(c2w_gl), model=model, distortion=params,
    )


def _focal_from_angle(cam: Camera, meta: dict[str, Any]) -> Camera:
    """The focal lengths from the fields of view once the image file has told the size; a given ``cx``, ``cy`` or
    ``camera_angle_y`` is kept (they were overwritten by the centre and ``camera_angle_x``'s focal)."""
    fx = 0.5 * cam.width / math.tan(0.5 * float(meta["camera_angle_x"]))
    fy = 0.5 * cam.height / math.tan(0.5 * float(meta["camera_angle_y"])) if "camera_angle_y" in meta else fx
    return dataclasses.replace(cam, fx=fx, fy=fy, cx=float(meta.get("cx", cam.width / 2.0)),
                               cy=float(meta.get("cy", cam.height / 2.0)))


def _intrinsics(meta: dict[str, Any], where: str) -> dict[str, Any]:
    """``meta`` without its null values (read as absent), each other value but ``camera_model`` a number: a camera
    value that is not (``"w": "40px"``) is one line naming the frame and the key, not a ``float()`` traceback."""
    meta = {k: v for k, v in meta.items() if v is not None}
    for key, value in meta.items():
        if key == "camera_model":
            continue
        try:
            if isinstance(value, bool) or not math.isfinite(float(value)):
                raise ValueError
        except (TypeError, ValueError):
            raise SceneError(f"{where}: {key} must be a number, got {value!r}; fix the transforms file") from None
    return meta


def _frames(path: Path) -> tuple[list[Camera], dict[str, dict[str, Any]], dict[str, list[str]] | None]:
    """Declared cameras, the intrinsics (``camera_angle_x``...) of those without a focal length, the Blender split."""
    files = [path]
    split_hint = None
    if path.name == "transforms_train.json":
        files = [f for f in (path.with_name(f"transforms_{s}.json") for s in BLENDER_SPLITS) if f.is_file()]
        split_hint = {}
    cameras: list[Camera] = []
    angles: dict[str, dict[str, Any]] = {}
    # Blender's own scenes name frames r_0, r_1, ... in every split's folder: there a frame
    # is named after its split too (``test_r_0``), since latents and renders are keyed by name.
    prefix = split_hint is not None and _stems_repeat(files)
    for file in files:
        data = _read_json(file)
        shared = {k: data[k] for k in INTRINSIC_KEYS if k in data}
        names = []
        for i, frame in enumerate(data["frames"]):
            if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
                raise SceneError(f"{file}: frame {i} needs 'file_path' and 'transform_matrix'")
            fp = str(frame["file_path"])
            try:
                pose = np.asarray(frame["transform_matrix"], dtype=np.float64)
            except (TypeError, ValueError):
                raise SceneError(f"{file}: frame {fp} has a transform_matrix that is not a 4x4 list of numbers") from None
            c2w = validate_pose(pose, f"frame {fp}", file)
            meta = _intrinsics({**shared, **{k: frame[k] for k in INTRINSIC_KEYS if k in frame}}, f"{file}: frame {fp}")
            cam = _camera(meta, fp, c2w, file.parent)
            if prefix:
                cam = dataclasses.replace(cam, name=f"{file.stem.removeprefix('transforms_')}_{cam.name}")
            if frame.get("mask_path"):
                mask = Path(str(frame["mask_path"]))
                cam = dataclasses.replace(cam, mask_path=mask if mask.is_absolute() else (file.parent / mask).resolve())
            if math.isnan(cam.fx):
                angles[cam.name] = meta
            cameras.append(cam)
            names.append(cam.name)
        if split_hint is not None:
            split_hint[file.stem.removeprefix("transforms_")] = names
    if split_hint is None:
        split_hint = _filename_split(data, path)
    return cameras, angles, split_hint


def _filename_split(data: dict[str, Any], file: Path) -> dict[str, list[str]] | None:
    """nerfstudio's ``train_filenames`` / ``val_filenames`` / ``test_filenames``: file paths, read as names."""
    split = {}
    for name in FILENAME_SPLITS:
        listed = data.get(f"{name}_filenames")
        if listed is None:
            continue
        if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
            raise SceneError(f"{file}: {name}_filenames must be a list of file paths; fix the transforms file")
        split[name] = [Path(f).name for f in listed]
    return split or None


def _stems_repeat(files: list[Path]) -> bool:
    """Whether two frames of these split files share an image name (without extension)."""
    stems = [image_stem(str(frame.get("file_path", "")))
             for file in files for frame in _read_json(file)["frames"] if isinstance(frame, dict)]
    return len(stems) != len(set(stems))


def parse_transforms(path: Path, images: str | None = None, strict: bool = False) -> Scene:
    """Parse a ``transforms.json`` scene (see module doc). ``images`` and ``strict`` as in ``load_scene``."""
    file = find_transforms(Path(path))
    if file is None:
        raise SceneError(f"no transforms.json in {path}")
    root = file.parent
    declared, angles, split_hint = _frames(file)
    cameras, missing = attach_images(declared, root / images if images else None, strict, file)
    cameras = [_focal_from_angle(c, angles[c.name]) if c.name in angles else c for c in cameras]
    data = _read_json(file)
    ply = data.get("ply_file_path")
    points = read_points_ply(root / str(ply)) if ply else None
    return Scene(root=root, format="transforms", source=file, cameras=cameras, points=points,
                 missing=missing, split_hint=split_hint, applied_transform=_applied_transform(data, file))


#: What nerfstudio assumes for a transforms.json written from COLMAP before it recorded ``applied_transform``.
LEGACY_COLMAP_APPLIED_TRANSFORM = ((0.0, 1.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, -1.0, 0.0))


def _applied_transform(data: dict[str, Any], file: Path) -> np.ndarray | None:
    """``[4, 4]`` original world -> the file's world, as nerfstudio reads it: the recorded
    ``applied_transform`` (3x4 or 4x4), else its legacy one when a ``colmap/sparse/0`` model sits beside the file."""
    value = data.get("applied_transform")
    if value is None:
        if (file.parent / "colmap" / "sparse" / "0").is_dir():
            value = LEGACY_COLMAP_APPLIED_TRANSFORM
        else:
            return None
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-8:
        raise SceneError(f"{file}: applied_transform must be a finite, invertible 3x4 (or 4x4) matrix, got "
                         f"{json.dumps(value)[:80]}; fix it or remove the key")
    return matrix


def write_transforms(cameras: list[Camera], path: Path, points: PointCloud | None = None,
                     applied_transform: np.ndarray | None = None,
                     split: dict[str, list[str]] | None = None) -> None:
    """Write cameras as a nerfstudio-style ``transforms.json`` with per-frame intrinsics.

    ``file_path`` entries are relative to the file's folder (``../images/x.png`` when needed),
    poses are written in OpenGL axes, as every reader of the format expects. ``points`` go to
    ``sparse_pc.ply`` beside it, named by ``ply_file_path`` as nerfstudio does. ``split`` (names or
    stems by split, a scene's ``split_hint``) is written as nerfstudio's ``{split}_filenames``.
    """
    path = Path(path)
    base = path.parent.resolve()
    frames = []
    for cam in cameras:
        frame: dict[str, Any] = {
            "file_path": os.path.relpath(Path(cam.image_path).resolve(), base),
            "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy, "w": cam.width, "h": cam.height,
            "transform_matrix": opengl_to_opencv(cam.camtoworld).tolist(),
        }
        if cam.mask_path is not None:
            frame["mask_path"] = os.path.relpath(Path(cam.mask_path).resolve(), base)
        if cam.model == "OPENCV_FISHEYE":
            frame.update(camera_model="OPENCV_FISHEYE", **dict(zip(("k1", "k2", "k3", "k4"), cam.distortion)))
        elif cam.model in ("OPENCV", "FULL_OPENCV"):
            if any(cam.distortion[5:]):  # transforms.json has no field for the rational terms
                raise SceneError(f"camera {cam.name}: transforms.json holds OpenCV's k1 k2 p1 p2 k3, not FULL_OPENCV's "
                                 f"k4..k6 {tuple(cam.distortion[5:])}; undistort the scene first "
                                 f"(`splatent scene undistort`) or keep it as a COLMAP model")
            frame.update(camera_model="OPENCV", **dict(zip(("k1", "k2", "p1", "p2", "k3"), cam.distortion)))
        elif cam.model in ("SIMPLE_RADIAL", "RADIAL"):
            frame.update(camera_model="OPENCV", **dict(zip(("k1", "k2"), cam.distortion)))
        frames.append(frame)
    meta: dict[str, Any] = {"camera_model": "OPENCV", "frames": frames}
    if applied_transform is not None:
        meta["applied_transform"] = np.asarray(applied_transform, dtype=np.float64)[:3].tolist()
    if split is not None:
        paths = {cam.stem: os.path.relpath(Path(cam.image_path).resolve(), base) for cam in cameras}
        for name, listed in split.items():
            meta[f"{name}_filenames"] = [paths[s] for s in (image_stem(n) for n in listed) if s in paths]
    if points is not None:
        write_points_ply(path.parent / "sparse_pc.ply", points)
        meta["ply_file_path"] = "sparse_pc.ply"
    atomic_write_json(path, meta)
