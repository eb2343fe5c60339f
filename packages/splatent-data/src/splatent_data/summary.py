"""What ``splatent scene inspect`` reports: a scene's facts before any GPU time is spent."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .scene import Scene
from .splits import scene_test_views, split_scene


def scene_summary(scene: Scene, split_mode: str = "llff", every: int = 8) -> dict[str, Any]:
    """A JSON-able description of ``scene``: format, counts, sizes, camera models, split, points.

    COLMAP scenes add ``unregistered`` (how many image files of the image folder the model
    does not place: photos SfM could not register) and ``unregistered_names`` (the first ten).
    ``image_dir`` is the folder of the images, or None with ``image_dirs`` listing them where they sit in
    several (Blender's ``train/`` and ``test/``). The split's mode is ``scene`` where the llff mode took the
    split the format carries. LLFF scenes add ``original_resolutions`` (the photos that ``h, w, f`` describe),
    an ``intrinsics_note`` saying they were scaled to the files, and ``near_far``: the range
    of the per-camera near and far bounds.
    """
    split = split_scene(scene, split_mode, every)
    folders = scene.image_folders
    # llff mode takes the split the format carries (Blender's transforms_test.json) where there is one
    own_split = split_mode == "llff" and bool(scene_test_views(scene))
    models = Counter(c.model for c in scene.cameras)
    distortions = sorted({(c.model, c.distortion) for c in scene.cameras if not c.is_pinhole})
    info = {
        "path": str(scene.root),
        "format": scene.format,
        "source": str(scene.source),
        "images": len(scene.cameras),
        "frames_listed": len(scene.cameras) + len(scene.missing),
        "missing": len(scene.missing),
        "missing_names": scene.missing[:10],
        **({"unregistered": len(scene.unregistered), "unregistered_names": scene.unregistered[:10]}
           if scene.unregistered is not None else {}),
        "image_dir": str(folders[0]) if len(folders) == 1 else None,
        **({"image_dirs": [str(f) for f in folders]} if len(folders) > 1 else {}),
        "resolutions": {f"{w}x{h}": n for (w, h), n in scene.sizes.most_common()},
        "camera_models": dict(models),
        "distorted": not scene.is_pinhole,
        "distortion": [{"model": m, "params": list(p)} for m, p in distortions[:5]],
        "split": {"mode": "scene" if own_split else split_mode, "train": len(split.train), "test": len(split.test)},
        "points": len(scene.points) if scene.points is not None else 0,
        "masks": scene.masked,
    }
    if scene.applied_transform is not None:
        info["applied_transform"] = np.round(scene.applied_transform[:3], 6).tolist()
    if scene.declared_sizes:
        declared = Counter(scene.declared_sizes.get(c.name, (c.width, c.height)) for c in scene.cameras)
        scaled = sum(scene.declared_sizes.get(c.name, (c.width, c.height)) != (c.width, c.height) for c in scene.cameras)
        listing = ", ".join(f"{w}x{h}" for w, h in list(declared)[:5]) + (", ..." if len(declared) > 5 else "")
        info["original_resolutions"] = {f"{w}x{h}": n for (w, h), n in declared.most_common()}
        info["intrinsics_note"] = (
            f"h, w, f in {scene.source.name} describe the original photos ({listing}); "
            + (f"fx, fy, cx, cy were scaled to each image file's own size ({scaled} of {len(scene.cameras)} images)"
               if scaled else "the image files have that size")
        )
    if scene.bounds:
        near, far = np.array([scene.bounds[c.name] for c in scene.cameras if c.name in scene.bounds]).T
        info["near_far"] = {"near": [round(float(near.min()), 4), round(float(near.max()), 4)],
                            "far": [round(float(far.min()), 4), round(float(far.max()), 4)]}
    return info
