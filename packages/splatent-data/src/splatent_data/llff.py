"""LLFF ``poses_bounds.npy``: parse and write.

The file is an ``N x 17`` array, one row per image in sorted file-name order of
``images/`` (LLFF's ``imgs2poses.py`` writes the rows by ``argsort`` of the COLMAP
image names; its loader pairs them with ``sorted(os.listdir(images))``). Each row
is a ``3 x 5`` matrix ``[R | t | (h, w, f)]`` flattened row by row, then the
near and far depth bounds of that view.

Axes: ``[R | t]`` is camera-to-world, and LLFF wrote it from COLMAP's OpenCV
camera (columns right, down, forward) as the columns ``[down, right, backward]``
(``pose_utils.load_colmap_data``: "switch to [-u, r, -t] from [r, -u, t]").
NeRF's ``load_llff.py`` turns that into OpenGL (right, up, backward) with
``[c1, -c0, c2]``; :func:`opengl_to_opencv` then flips y and z, so the OpenCV
camera is ``[c1, c0, -c2]``.

Intrinsics: ``h, w, f`` describe the photos the poses were computed from, which
are often not the files beside them (``images_4``, re-encoded copies). LLFF
assumes one focal length and a centred principal point; :func:`attach_images`
scales that camera to each file's real size (``fx = f * W / w``, ``fy = f * H / h``,
``cx = W / 2``, ``cy = H / 2``) and refuses a file of another aspect ratio.

A downscaled folder (``images=`` ``"images_4"``) is matched to ``images/`` by file
stem; when its files are named otherwise (LLFF's own ``minify`` writes
``image000.png``) and their count equals the rows, they are paired by sorted
position, as LLFF's loader does. Without an ``images/`` folder, the sorted names of
the chosen folder are the rows' names.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .camera import Camera, opengl_to_opencv
from .errors import SceneError
from .fileio import atomic_write_bytes
from .images import list_images
from .scene import Scene, attach_images, validate_pose

logger = logging.getLogger("splatent")

POSES_BOUNDS = "poses_bounds.npy"
ROW_LENGTH = 17  # 3x5 pose matrix + near + far


def find_poses_bounds(path: Path) -> Path | None:
    """The LLFF pose file for ``path``: itself if a ``.npy`` file, else ``path/poses_bounds.npy``."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npy":
        return path
    if (path / POSES_BOUNDS).is_file():
        return path / POSES_BOUNDS
    return None


def _read_rows(file: Path) -> np.ndarray:
    try:
        arr = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SceneError(f"cannot read {file}: {exc}; re-export it as a float N x {ROW_LENGTH} array") from None
    if arr.ndim == 1 and arr.size == ROW_LENGTH:  # one image, saved without the row axis
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != ROW_LENGTH or arr.shape[0] == 0:
        raise SceneError(
            f"{file} has shape {arr.shape}; poses_bounds.npy must be N x {ROW_LENGTH} (per image a 3x5 "
            f"[R | t | h,w,f] camera-to-world, then near and far bounds); re-export it with LLFF's imgs2poses.py"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise SceneError(f"{file} holds {arr.dtype} values, expected floats")
    return arr.astype(np.float64)


def _llff_to_opencv(pose: np.ndarray) -> np.ndarray:
    """``[3, 4]`` LLFF camera-to-world (columns down, right, backward) -> ``[4, 4]`` OpenCV."""
    c2w_gl = np.eye(4)
    c2w_gl[:3, :4] = np.stack([pose[:, 1], -pose[:, 0], pose[:, 2], pose[:, 3]], axis=1)  # NeRF's load_llff
    return opengl_to_opencv(c2w_gl)


def _opencv_to_llff(c2w: np.ndarray) -> np.ndarray:
    """``[4, 4]`` OpenCV camera-to-world -> ``[3, 4]`` LLFF (inverse of :func:`_llff_to_opencv`)."""
    gl = opengl_to_opencv(c2w)[:3, :4]
    return np.stack([-gl[:, 1], gl[:, 0], gl[:, 2], gl[:, 3]], axis=1)


def _image_paths(root: Path, images: str | None, rows: int, file: Path) -> tuple[list[str], list[Path]]:
    """Names the rows belong to (sorted names of ``images/``) and where each one's file should be."""
    originals = root / "images"
    folder = root / images if images else originals
    named_by = originals if originals.is_dir() else folder
    listed = list_images(named_by)
    if len(listed) != rows:
        raise SceneError(
            f"{file} has {rows} rows but {named_by} holds {len(listed)} images; "
            f"poses_bounds.npy needs one row per image, in sorted file-name order: remove the photos that "
            f"were not posed, or recompute the poses (LLFF's imgs2poses.py, or `splatent scene sfm`)"
        )
    names = [p.name for p in listed]
    paths = [folder / n for n in names]
    if folder != originals and originals.is_dir():
        files = list_images(folder)  # refuses a folder that does not exist, by name
        stems = {p.stem for p in files}
        if len(files) == rows and not any(Path(n).stem in stems for n in names):
            logger.info("%s: file names differ from images/; pairing them with the rows by sorted position", folder)
            paths = files
    return names, paths


def parse_llff(path: Path, images: str | None = None, strict: bool = False) -> Scene:
    """Parse an LLFF scene (see module doc). ``images`` and ``strict`` as in ``load_scene``.

    The scene's ``bounds`` hold each camera's ``(near, far)``; ``declared_sizes`` the
    ``(w, h)`` of the original photos that ``h, w, f`` describe.
    """
    file = find_poses_bounds(Path(path))
    if file is None:
        raise SceneError(f"no {POSES_BOUNDS} in {path}")
    root = file.parent
    rows = _read_rows(file)
    names, paths = _image_paths(root, images, len(rows), file)
    declared: list[Camera] = []
    bounds: dict[str, tuple[float, float]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for name, image_path, row in zip(names, paths, rows):
        m = row[:15].reshape(3, 5)
        h, w, f = m[:, 4]
        if not (np.isfinite([h, w, f]).all() and h >= 1 and w >= 1 and f > 0):
            raise SceneError(f"{file}: the row of {name} has h, w, f = {h:g}, {w:g}, {f:g}; they must be positive")
        near, far = row[15:]
        if not np.isfinite([near, far]).all():
            raise SceneError(f"{file}: the row of {name} has non-finite near/far bounds ({near:g}, {far:g})")
        c2w = _llff_to_opencv(validate_pose(m[:, :4], f"the row of {name}", file)[:3, :4])
        width, height = int(round(w)), int(round(h))
        declared.append(Camera(
            name=name, image_path=image_path, width=width, height=height,
            fx=float(f), fy=float(f), cx=width / 2.0, cy=height / 2.0, camtoworld=c2w,
        ))
        bounds[name] = (float(near), float(far))
        sizes[name] = (width, height)
    cameras, missing = attach_images(declared, None, strict, file)
    kept = {c.name for c in cameras}
    return Scene(
        root=root, format="llff", source=file, cameras=cameras, missing=missing,
        bounds={n: b for n, b in bounds.items() if n in kept},
        declared_sizes={n: s for n, s in sizes.items() if n in kept},
    )


def write_llff(
    cameras: list[Camera],
    path: Path,
    bounds: Mapping[str, tuple[float, float]] | tuple[float, float] | None = None,
) -> Path:
    """Write cameras as an LLFF ``poses_bounds.npy``; returns the file written.

    Args:
        cameras: Pinhole cameras with one focal length and a centred principal point
            (within the one pixel that resizing rounds off); rows are written in
            sorted name order, as LLFF readers expect.
        path: The ``.npy`` file, or the scene folder (``poses_bounds.npy`` in it).
        bounds: ``(near, far)`` per camera name, one pair for all, or ``None`` for one
            generous pair: 1% and 10x the extent of the camera centres (LLFF derives the
            bounds from SfM points, which the cameras alone do not give).
    """
    path = Path(path)
    if path.suffix != ".npy":
        path = path / POSES_BOUNDS
    cams = sorted(cameras, key=lambda c: c.name)
    if not cams:
        raise SceneError("write_llff needs at least one camera")
    rows = []
    for cam in cams:
        if not cam.is_pinhole:
            raise SceneError(f"LLFF stores pinhole cameras only; {cam.name} is {cam.model}: undistort the scene first")
        tol = 1.0 / min(cam.width, cam.height)
        if (abs(cam.fy / cam.fx - 1.0) > tol or abs(cam.cx - cam.width / 2) > 0.5
                or abs(cam.cy - cam.height / 2) > 0.5):
            raise SceneError(
                f"LLFF stores one focal length and a centred principal point; {cam.name} has "
                f"fx={cam.fx:g}, fy={cam.fy:g}, cx={cam.cx:g}, cy={cam.cy:g} for {cam.width}x{cam.height}"
            )
        near, far = _bounds_of(cam, cams, bounds)
        m = np.zeros((3, 5))
        m[:, :4] = _opencv_to_llff(cam.camtoworld)
        m[:, 4] = (cam.height, cam.width, cam.fx)
        rows.append(np.concatenate([m.ravel(), [near, far]]))
    buf = io.BytesIO()
    np.save(buf, np.array(rows, dtype=np.float64))
    atomic_write_bytes(path, buf.getvalue())
    return path


def _bounds_of(cam: Camera, cams: list[Camera], bounds) -> tuple[float, float]:
    if isinstance(bounds, Mapping):
        if cam.name not in bounds:
            raise SceneError(f"write_llff: no bounds given for {cam.name}")
        near, far = bounds[cam.name]
    elif bounds is not None:
        near, far = bounds
    else:
        centers = np.array([c.center for c in cams])
        extent = float(np.linalg.norm(centers.max(0) - centers.min(0))) or 1.0
        near, far = 0.01 * extent, 10.0 * extent
    return float(near), float(far)
