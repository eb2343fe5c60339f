"""The ``Scene``: every input format parsed into one list of :class:`Camera`.

The parsers (:mod:`.nerf`, :mod:`.colmap`, :mod:`.llff`) build it and
:func:`splatent_data.loading.load_scene` picks one; this module imports none of
them. Parsers produce cameras with the *declared* image size;
:func:`attach_images` then finds each image file (``images_4`` and other
downscaled folders included), reads its real size and scales the intrinsics to
it, so nothing downstream assumes a size.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import SceneError
from .images import find_image, read_image_size

logger = logging.getLogger("splatent")

@dataclass(frozen=True)
class PointCloud:
    """Sparse points for initialisation: ``xyz [N, 3]`` float64 and ``rgb [N, 3]`` uint8 (``None`` if uncoloured)."""

    xyz: np.ndarray
    rgb: np.ndarray | None

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


@dataclass
class Scene:
    """Posed images of one scene, all in the conventions of :mod:`splatent_data.camera`.

    Attributes:
        root: The scene folder.
        format: ``"transforms"``, ``"colmap"`` or ``"llff"``.
        source: The pose file or COLMAP model folder that was parsed.
        cameras: Usable cameras (image present), sorted by name.
        points: Sparse points, when the scene has them (COLMAP; ``ply_file_path`` of a transforms.json).
        missing: Names listed by the pose file whose image file does not exist.
        unregistered: Image files in the image folder that the pose file does not place
            (for a COLMAP model: the photos structure from motion could not register);
            ``None`` where the format is not checked for them (transforms.json, LLFF).
        split_hint: A train/test split the format itself carries (Blender's
            ``transforms_train.json`` / ``transforms_test.json``, nerfstudio's ``train_filenames`` /
            ``test_filenames``), names by split, else ``None``.
        bounds: ``(near, far)`` scene depth bounds per camera name, when the format
            stores them (LLFF), else ``None``.
        declared_sizes: ``(width, height)`` per camera name that the pose file's
            intrinsics describe, when these are other photos than the files (LLFF's
            ``h, w, f`` are those of the original photos), else ``None``.
        applied_transform: ``[4, 4]`` from the original capture's world (e.g. COLMAP's) to the poses' world, when
            the format records one (nerfstudio's ``applied_transform``), else ``None`` (the same world).
    """

    root: Path
    format: str
    source: Path
    cameras: list[Camera]
    points: PointCloud | None = None
    missing: list[str] = field(default_factory=list)
    unregistered: list[str] | None = None
    split_hint: dict[str, list[str]] | None = None
    bounds: dict[str, tuple[float, float]] | None = None
    declared_sizes: dict[str, tuple[int, int]] | None = None
    applied_transform: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def stems(self) -> list[str]:
        return [c.stem for c in self.cameras]

    def camera(self, key: str) -> Camera:
        """The camera whose name or stem is ``key``."""
        for cam in self.cameras:
            if key in (cam.name, cam.stem):
                return cam
        raise KeyError(key)

    @property
    def masked(self) -> int:
        """How many cameras have a mask."""
        return sum(c.mask_path is not None for c in self.cameras)

    @property
    def is_pinhole(self) -> bool:
        return all(c.is_pinhole for c in self.cameras)

    @property
    def image_folders(self) -> list[Path]:
        """The folders the images sit in: one for most captures, one per split for Blender's own scenes."""
        return sorted({c.image_path.parent for c in self.cameras})

    @property
    def needs_working_copy(self) -> bool:
        """Whether the stages read a copy of this scene (:func:`splatent_data.undistort_scene`) instead of it:
        distorted cameras (the rasteriser is pinhole), or images in several folders (latents are encoded
        from one folder, named by stem)."""
        return not self.is_pinhole or len(self.image_folders) > 1

    @property
    def sizes(self) -> Counter:
        """How many images have each ``(width, height)``."""
        return Counter((c.width, c.height) for c in self.cameras)

    def require_pinhole(self, stage: str) -> None:
        """Refuse distorted cameras for a stage that models only pinhole projection."""
        if not self.is_pinhole:
            models = sorted({c.model for c in self.cameras if not c.is_pinhole})
            raise SceneError(
                f"{stage} needs pinhole cameras but {self.source} has {'/'.join(models)} distortion; "
                f"run `splatent scene undistort {self.root} --output UNDISTORTED` first"
            )


def attach_images(
    cameras: list[Camera],
    image_dir: Path | None,
    strict: bool,
    source: Path,
) -> tuple[list[Camera], list[str]]:
    """Find each camera's image, read its size, scale intrinsics to it.

    Args:
        cameras: Cameras with declared size; ``image_path`` is where the pose file points.
        image_dir: Look here (by file stem) instead, e.g. the scene's ``images_4``.
        strict: Raise when any image is missing instead of dropping the camera.
        source: The pose file, for messages.

    Returns:
        ``(cameras that have an image, names of those that do not)``.
    """
    found: list[Camera] = []
    missing: list[str] = []
    for cam in cameras:
        # a name may hold sub-folders of the image folder (a COLMAP rig's cam0/0001.jpg)
        folder = Path(image_dir) / Path(cam.name).parent if image_dir is not None else cam.image_path.parent
        path = find_image(folder, cam.image_path.name)
        if path is None:
            missing.append(cam.name)
            continue
        width, height = read_image_size(path)
        if cam.width <= 0 or cam.height <= 0:  # size not declared: the file decides
            cam = dataclasses.replace(
                cam, width=width, height=height,
                cx=cam.cx if cam.cx > 0 else width / 2.0, cy=cam.cy if cam.cy > 0 else height / 2.0,
            )
        elif (width, height) != (cam.width, cam.height):
            sx, sy = width / cam.width, height / cam.height
            # Downscaled folders round sizes to whole pixels: allow one pixel of rounding.
            if abs(cam.width * sy - width) > 1.0 or abs(cam.height * sx - height) > 1.0:
                raise SceneError(
                    f"image {path} is {width}x{height} but {source.name} declares {cam.width}x{cam.height} "
                    f"(a different aspect ratio); re-export the image or fix the pose file"
                )
            cam = cam.scaled(width, height)
        if cam.mask_path is not None:
            _check_mask(cam, width, height, source)
        found.append(cam.with_image(path))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        msg = f"{len(missing)} of {len(cameras)} frames in {source} have no image file ({shown})"
        if strict:
            raise SceneError(msg + "; add the images, or drop --strict to go on without them")
        logger.warning("%s; going on with the other %d", msg, len(found))
    found = _unique_names(found)
    stems = Counter(c.stem for c in found)
    if max(stems.values(), default=0) > 1:
        dup = next(s for s, n in stems.items() if n > 1)
        raise SceneError(f"{source} lists several images named {dup!r}; image names (without extension) must be unique")
    if not found:
        raise SceneError(f"none of the {len(cameras)} frames in {source} has an image file; check the image folder")
    sizes = Counter((c.width, c.height) for c in found)
    if len(sizes) > 1:
        listing = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common())
        logger.warning("%s mixes image sizes: %s; each image keeps its own intrinsics", source, listing)
    found.sort(key=lambda c: c.name)
    return found, missing


def _unique_names(cameras: list[Camera]) -> list[Camera]:
    """Latents and renders are keyed by stem: where names in sub-folders share one (a rig's ``cam0/0001.jpg`` and
    ``cam1/0001.jpg``), those names take their folders in (``cam0_0001.jpg``); the image paths stay."""
    stems = Counter(c.stem for c in cameras)
    return [c.with_image(c.image_path, name=c.name.replace("/", "_"))
            if stems[c.stem] > 1 and "/" in c.name else c for c in cameras]


def _check_mask(cam: Camera, width: int, height: int, source: Path) -> None:
    """A mask must exist and have its image's aspect ratio (any resolution: it is resized where it is used)."""
    mask = Path(cam.mask_path)
    if not mask.is_file():
        raise SceneError(f"{source}: the mask of {cam.name}, {mask}, does not exist; add it or remove its mask_path")
    mw, mh = read_image_size(mask)
    if abs(mw * height - mh * width) > max(mw, width):  # one pixel of rounding either way
        raise SceneError(f"mask {mask} is {mw}x{mh} but its image {cam.name} is {width}x{height} (another aspect "
                         f"ratio); re-export the mask at the image's size")


def validate_pose(c2w: np.ndarray, what: str, source: Path) -> np.ndarray:
    """Check a camera-to-world matrix is finite and its rotation invertible."""
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise SceneError(f"{source}: {what} has a pose of shape {m.shape}, expected 4x4")
    if not np.all(np.isfinite(m)):
        raise SceneError(f"{source}: {what} has a pose with NaN or infinite values; fix or remove that frame")
    if abs(np.linalg.det(m[:3, :3])) < 1e-8:
        raise SceneError(f"{source}: {what} has a non-invertible pose (rotation determinant 0); fix or remove that frame")
    return m
