"""What ``splatent scene inspect`` reports: a scene's facts before any GPU time is spent."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .scene import Scene
from .splits import split_scene


def scene_summary(scene: Scene, split_mode: str = "llff", every: int = 8) -> dict[str, Any]:
    """A JSON-able description of ``scene``: format, counts, sizes, camera models, split, points."""
    split = split_scene(scene, split_mode, every)
    models = Counter(c.model for c in scene.cameras)
    distortions = sorted({(c.model, c.distortion) for c in scene.cameras if not c.is_pinhole})
    return {
        "path": str(scene.root),
        "format": scene.format,
        "source": str(scene.source),
        "images": len(scene.cameras),
        "frames_listed": len(scene.cameras) + len(scene.missing),
        "missing": len(scene.missing),
        "missing_names": scene.missing[:10],
        "image_dir": str(scene.cameras[0].image_path.parent),
        "resolutions": {f"{w}x{h}": n for (w, h), n in scene.sizes.most_common()},
        "camera_models": dict(models),
        "distorted": not scene.is_pinhole,
        "distortion": [{"model": m, "params": list(p)} for m, p in distortions[:5]],
        "split": {"mode": split_mode, "train": len(split.train), "test": len(split.test)},
        "points": len(scene.points) if scene.points is not None else 0,
    }
