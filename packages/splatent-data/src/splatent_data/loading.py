"""``load_scene``: pick the parser from what a scene folder holds.

``transforms.json``, a COLMAP model, or LLFF's ``poses_bounds.npy``, in that
order, or ``fmt`` forces one. It lives apart from :mod:`.scene` because the
parsers build a :class:`~splatent_data.scene.Scene`: the factory sits above
them, the type below, and nothing imports in a loop.
"""

from __future__ import annotations

from pathlib import Path

from . import colmap, llff, nerf
from .errors import SceneError
from .scene import Scene

SCENE_FORMATS = ("auto", "transforms", "colmap", "llff")


def find_poses(path: str | Path) -> Path | None:
    """The pose file or COLMAP model that ``load_scene(path)`` would read (same order), or ``None`` for photos
    without poses."""
    path = Path(path).expanduser()
    return nerf.find_transforms(path) or colmap.find_model(path) or llff.find_poses_bounds(path)


def load_scene(
    path: str | Path,
    fmt: str = "auto",
    images: str | None = None,
    strict: bool = False,
) -> Scene:
    """Parse a scene folder (or a ``transforms.json`` / ``poses_bounds.npy`` / COLMAP model path).

    With ``fmt="auto"`` the first of these that the folder holds is read:
    ``transforms.json``, a COLMAP model, ``poses_bounds.npy``. COLMAP comes before
    LLFF because LLFF scenes often ship the model their poses were computed from,
    and the model also holds the exact intrinsics, distortion and sparse points.

    Args:
        path: Scene folder, pose file, or COLMAP model folder.
        fmt: ``"auto"``, ``"transforms"``, ``"colmap"`` or ``"llff"``.
        images: Image folder name relative to the scene root (``images_4``), to
            read downscaled copies; intrinsics follow the files' real size.
        strict: Refuse a scene whose pose file lists images that do not exist
            (by default they are reported once and the scene goes on without them).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise SceneError(
            f"scene path {path} does not exist; pass a folder with transforms.json, a COLMAP model or poses_bounds.npy"
        )
    if fmt not in SCENE_FORMATS:
        raise SceneError(f"unknown scene format {fmt!r}; use one of {', '.join(SCENE_FORMATS)}")
    if fmt == "transforms" or (fmt == "auto" and nerf.find_transforms(path) is not None):
        return nerf.parse_transforms(path, images=images, strict=strict)
    if fmt == "colmap" or (fmt == "auto" and colmap.find_model(path) is not None):
        return colmap.parse_colmap(path, images=images, strict=strict)
    if fmt == "llff" or (fmt == "auto" and llff.find_poses_bounds(path) is not None):
        return llff.parse_llff(path, images=images, strict=strict)
    if path.is_file():  # a photo or some other file: nothing to run SfM on
        raise SceneError(f"{path} is a file that holds no poses; pass the scene folder (or its transforms.json, "
                         f"poses_bounds.npy or COLMAP model)")
    photos = path / "images" if (path / "images").is_dir() else path
    raise SceneError(
        f"no poses found in {path}: expected transforms.json, a COLMAP model "
        f"(sparse/0/cameras.bin, images.bin, points3D.bin) or LLFF's poses_bounds.npy; "
        f"for photos without poses run `splatent scene sfm {photos} --output NEW_SCENE`"
    )
