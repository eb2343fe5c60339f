"""Training and test targets: a scene's latents (or images) with matching cameras.

Each view is a :class:`View`: a stem, the camera at the target's resolution
and the target map ``[D, h, w]`` in data space (unscaled latents, or RGB in
[0, 1]). Latents are read through splatent-latents (``read_manifest``,
``load_latent``); their camera is the image camera scaled to the latent size
(see :mod:`splatent_splat.cameras` for the half-pixel convention). A camera
with a mask (``mask_path``) gives its view a ``mask [1, h, w]``: 1 where the
target pixel counts, 0 where the fit leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splatent_data import Camera, Scene, SceneError, load_mask, load_rgb

from .cameras import latent_camera

DEFAULT_LATENTS = "features_sd_turbo"


@dataclass
class View:
    """One target view: ``target [D, h, w]`` seen by ``camera`` (``camera.width == w``); ``mask [1, h, w]``
    (1: counts, 0: left out) when the image has one."""

    stem: str
    camera: Camera
    target: Tensor
    mask: Tensor | None = None


def view_mask(camera: Camera, height: int, width: int) -> Tensor | None:  # [1, height, width] float32 in {0, 1}
    """``camera``'s mask (image resolution) at a ``height x width`` target: a target pixel counts only when every
    image pixel under it does (a latent pixel mixes its 8x8 patch, so one left-out pixel taints it)."""
    if camera.mask_path is None:
        return None
    kept = torch.from_numpy(load_mask(camera.mask_path, (camera.width, camera.height))).float()[None, None]
    return (1.0 - F.adaptive_max_pool2d(1.0 - kept, (height, width)))[0]


def resolve_latents_dir(scene: Scene, latents: str | Path | None) -> Path:
    """The latents folder: ``latents`` (default ``features_sd_turbo``) under the scene
    folder; an absolute path, or a relative one that exists only from here, as given."""
    path = Path(latents or DEFAULT_LATENTS).expanduser()
    if path.is_absolute():
        return path
    in_scene = scene.root / path
    return in_scene if in_scene.exists() or not path.exists() else path


def load_latent_views(scene: Scene, latents_dir: Path, stems: list[str], device: torch.device | str = "cpu") -> list[View]:
    """The extracted latents of ``stems`` with their latent-resolution cameras.

    Refuses, with the fix in one line, a missing folder or file and a latent
    whose aspect ratio does not match its image (latents from another image folder).
    """
    from splatent_latents import load_latent, read_manifest

    if not latents_dir.is_dir():
        raise SceneError(
            f"no latents at {latents_dir}; run `splatent extract {scene.root}` first (or pass --latents DIR)"
        )
    manifest = read_manifest(latents_dir)
    channels = manifest.channels
    views = []
    for stem in stems:
        path = latents_dir / f"{stem}.pt"
        if not path.is_file():
            raise SceneError(
                f"{path} is missing: the latents in {latents_dir} do not cover view {stem}; "
                f"re-run `splatent extract {scene.root}` with the same --images"
            )
        latent = load_latent(path, channels=channels).float()
        h, w = latent.shape[-2:]
        encoded = manifest.sizes.get(stem)
        if encoded is not None and (h, w) != (encoded[0] // manifest.downsample, encoded[1] // manifest.downsample):
            raise SceneError(
                f"{path} is a {w}x{h} latent but {latents_dir / 'manifest.json'} says its image was encoded at "
                f"{encoded[1]}x{encoded[0]} (a {encoded[1] // manifest.downsample}x{encoded[0] // manifest.downsample} "
                f"latent); the file was replaced or damaged: re-extract it (`splatent extract --overwrite`)"
            )
        cam = scene.camera(stem)
        if abs(cam.width / cam.height - w / h) > 1.5 / min(h, w):
            raise SceneError(
                f"{path} is a {w}x{h} latent but image {cam.name} is {cam.width}x{cam.height} "
                f"(another aspect ratio); extract latents from this scene's images (--images {cam.image_path.parent.name})"
            )
        mask = view_mask(cam, h, w)
        views.append(View(stem=stem, camera=latent_camera(cam, h, w), target=latent.to(device),
                          mask=None if mask is None else mask.to(device)))
    return views


def load_rgb_views(
    scene: Scene, stems: list[str], sizes: dict[str, tuple[int, int]] | None = None, scale: float = 1.0,
    device: torch.device | str = "cpu",
) -> list[View]:
    """RGB targets in [0, 1]: each image resized to ``sizes[stem]`` (``(h, w)``), else scaled by ``scale``."""
    views = []
    for stem in stems:
        cam = scene.camera(stem)
        if sizes is not None:
            h, w = sizes[stem]
        else:
            h, w = max(1, round(cam.height * scale)), max(1, round(cam.width * scale))
        image = torch.from_numpy(np.array(load_rgb(cam.image_path))).permute(2, 0, 1).float() / 255.0
        if image.shape[-2:] != (h, w):
            image = F.interpolate(image[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]
        mask = view_mask(cam, h, w)
        views.append(View(stem=stem, camera=cam.scaled(w, h), target=image.clamp(0, 1).to(device),
                          mask=None if mask is None else mask.to(device)))
    return views
