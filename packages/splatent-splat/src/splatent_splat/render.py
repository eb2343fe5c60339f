"""The render stage: latents of a fitted model at test and training views.

``render_model(model_dir, output)`` writes the layout the dataset stage reads,
file stems equal to image stems, ``.pt`` tensors ``[C, h, w]`` float32 unscaled (``C`` the codec's channels)
(``splatent_latents.save_latent``) at each view's latent size:

* ``nvs/``: rendered test views; ``nvs_gt/``: their extracted latents;
* ``train/``: rendered training views; ``train_gt/``: their extracted latents;
* ``manifest.json``: scene, model, latents folder and codec (what later stages
  need to decode), split and counts.

``save_images`` also decodes every latent with the codec from the latents'
manifest into a PNG beside it; ``path_frames`` renders a smooth camera path
through the training cameras into ``path.mp4``. Models fitted to RGB
(``--target rgb``) write PNGs in the same folders instead of latents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from splatent_data import RENDER_FOLDERS, Camera, RenderLayout, SplatentError, atomic_write_json, save_rgb, view_order
from splatent_latents import resolve_device

from .cameras import interpolate_path
from .ply import load_ply
from .sources import ModelSource, open_model, rasterize_options
from .backends import resolve_backend
from .views import load_latent_views, load_rgb_views

logger = logging.getLogger("splatent")

FOLDERS = RENDER_FOLDERS  # kept for importers of the old name


@dataclass
class RenderResult:
    """Counts of written files per folder, and the video if any."""

    output: Path
    counts: dict[str, int]
    video: Path | None = None




def render_model(
    model_dir: str | Path | ModelSource,
    output: str | Path,
    scene: str | Path | None = None,
    latents: str | Path | None = None,
    images: str | None = None,
    save_images: bool = False,
    path_frames: int = 0,
    fps: int = 30,
    backend: str = "auto",
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> RenderResult:
    """Render a fitted model's test and training views into ``output`` (see module doc).

    Args:
        model_dir: Folder written by ``splatent fit``, or any 3DGS model (INRIA's output folder, a ``.ply``:
            :func:`~splatent_splat.sources.open_model`), rendered as RGB at the views of ``scene``; or the
            :class:`~splatent_splat.sources.ModelSource` a caller already opened (``scene`` / ``images`` then unused).
        output: Render folder, conventionally ``R/<scene>``.
        scene, latents: Override the scene folder and latents folder recorded in
            ``fit.json`` (when the data moved); a model without ``fit.json`` needs ``scene``.
        images: Image folder of ``scene`` for a model without ``fit.json`` (its resolution is the render's).
        save_images: Decode every latent to a PNG beside it.
        path_frames: Frames of the camera-path video (0: no video).
        progress: Optional ``progress(done, total)`` callback.
    """
    output = Path(output)
    layout = RenderLayout(output)
    source = model_dir if isinstance(model_dir, ModelSource) else open_model(model_dir, scene=scene, images=images)
    info = source.info
    dev = resolve_device(device)
    backend = resolve_backend(backend, dev)
    gaussians, _ = load_ply(source.ply, device=dev)
    if not source.fitted and gaussians.feature_kind == "latent":
        # without fit.json it would be drawn as an RGB model: its latent channels written as the pixels of PNGs
        raise SplatentError(f"{source.ply} holds latent Gaussians (an `export-ply --format latent` file) but no fit.json "
                            f"says their split, latents and codec; render the `splatent fit` folder it came from")
    scene_path = Path(info["scene"])
    scn = source.load_scene()
    train, test = list(info["split"]["train"]), list(info["split"]["test"])
    missing = sorted(set(train + test) - set(scn.stems))
    if missing:
        raise SplatentError(f"{scene_path} lacks views the model was fitted with (first: {missing[0]}); pass the right --scene")
    rgb_model = info.get("target") == "rgb"
    latents_dir = None
    codec = None
    if not rgb_model:
        latents_dir = Path(latents) if latents else Path(info["latents"])
        if latents:  # moved data: the same latent space, or the ground truth and references would be another's
            from splatent_latents import read_manifest

            found = read_manifest(latents_dir).codec
            if info.get("codec") is not None and found != info["codec"]:
                raise SplatentError(f"--latents {latents_dir} holds {found} latents but the model was fitted to "
                                    f"{info['codec']} latents; pass the folder of the fit's latents")
        if save_images or path_frames:
            from splatent_latents import codec_from_manifest

            codec = codec_from_manifest(latents_dir).to(dev)
    total = 2 * (len(test) + len(train)) + path_frames
    done = 0

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    counts: dict[str, int] = {}
    look = rasterize_options(info)  # as the fit trained and scored it (antialiased or classic)
    output.mkdir(parents=True, exist_ok=True)
    written: set[Path] = set()
    for split_name, stems in (("nvs", test), ("train", train)):
        gt_name = RenderLayout.ground_truth_of(split_name)
        if rgb_model:
            scale = float(info["config"].get("rgb_scale", 1.0))
            views = load_rgb_views(scn, stems, scale=scale, device="cpu")
        else:
            views = load_latent_views(scn, latents_dir, stems, device="cpu")
        counts[split_name] = counts[gt_name] = 0
        for view in views:
            rendered = gaussians.render_cameras([view.camera], backend=backend, **look)[0].float().cpu()
            for folder, tensor in ((split_name, rendered), (gt_name, view.target.float())):
                written.update(_write(layout.folder(folder), view.stem, tensor, rgb_model, codec, save_images))
                counts[folder] += 1
                tick()
    # Files an earlier render left (another split, --save-images): the dataset and eval stages read every file of
    # these folders, so a view that is now a training view would be scored, or given as a reference, as a test view.
    _remove_stale(layout, written)
    video = None
    if path_frames:
        video = layout.video
        _render_path(gaussians, [scn.camera(s) for s in train + test], info, latents_dir, path_frames, fps, video,
                     codec, backend, rgb_model, tick)
    manifest: dict[str, Any] = {
        "stage": "render",
        "scene": str(scene_path.resolve()),
        "image_folder": info.get("images"),  # the fit's image folder in the scene (None: its default)
        "model": str(source.path.resolve()),
        "target": info.get("target", "latent"),
        "latents": str(latents_dir.resolve()) if latents_dir else None,
        "codec": info.get("codec"),
        "codec_config": info.get("codec_config"),
        "split": {"mode": info["split"].get("mode"), "every": info["split"].get("every"), "train": train, "test": test},
        "counts": counts,
        "images": save_images or rgb_model,
        "video": video.name if video else None,
        "format": "png [3, H, W]" if rgb_model else f"pt float32 [{gaussians.feature_dim}, h, w] unscaled",
    }
    atomic_write_json(layout.manifest, manifest)
    return RenderResult(output=output, counts=counts, video=video)


def _write(folder: Path, stem: str, tensor: torch.Tensor, rgb_model: bool, codec, save_images: bool) -> list[Path]:
    """Write one view's file(s); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    if rgb_model:
        save_rgb(folder / f"{stem}.png", tensor.clamp(0, 1).permute(1, 2, 0).numpy())
        return [folder / f"{stem}.png"]
    from splatent_latents import save_latent

    save_latent(folder / f"{stem}.pt", tensor)
    if not save_images:
        return [folder / f"{stem}.pt"]
    save_rgb(folder / f"{stem}.png", _decode(codec, tensor))
    return [folder / f"{stem}.pt", folder / f"{stem}.png"]


def _remove_stale(layout: RenderLayout, written: set[Path]) -> None:
    """Delete the ``.pt`` / ``.png`` files of the render folders that this render did not write."""
    for name in RENDER_FOLDERS:
        folder = layout.folder(name)
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.suffix in (".pt", ".png") and path.is_file() and path not in written:
                path.unlink()


@torch.no_grad()
def _decode(codec, latent: torch.Tensor) -> np.ndarray:
    image = codec.decode(latent[None].to(codec.device, codec.dtype))[0]
    return image.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def latent_path(cameras: list[Camera], frames: int, latents_dir: Path) -> list[Camera]:
    """The smooth camera path through ``cameras`` (:func:`interpolate_path`) at latent resolution: the size of the
    first camera's (by name) latent sets it, so the raw and the enhanced fly-through share their frames."""
    from splatent_latents import load_latent

    first = min(cameras, key=lambda c: view_order(c.name))
    h, w = load_latent(Path(latents_dir) / f"{first.stem}.pt").shape[-2:]
    return [c.scaled(w, h) for c in interpolate_path(cameras, frames)]


def _render_path(gaussians, cameras, info, latents_dir, frames, fps, video, codec, backend, rgb_model, tick) -> None:
    import imageio.v2 as imageio

    if not rgb_model:
        path = latent_path(cameras, frames, latents_dir)
    else:
        scale = float(info["config"].get("rgb_scale", 1.0))
        path = [c.scaled(max(1, round(c.width * scale)), max(1, round(c.height * scale)))
                for c in interpolate_path(cameras, frames)]
    tmp = video.with_name(f".{video.name}.tmp.mp4")
    look = rasterize_options(info)
    writer = imageio.get_writer(str(tmp), fps=fps, codec="libx264", quality=8, macro_block_size=1)
    try:
        for cam in path:
            rendered = gaussians.render_cameras([cam], backend=backend, **look)[0].float()
            frame = (rendered.clamp(0, 1).permute(1, 2, 0).cpu().numpy() if rgb_model else _decode(codec, rendered))
            # H.264 in yuv420p needs even sides: ffmpeg refuses an odd one and leaves an empty file, without error
            frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
            writer.append_data((frame * 255 + 0.5).astype(np.uint8))
            tick()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)  # a failed or interrupted video leaves no half-written file behind
        raise
    writer.close()
    tmp.replace(video)
