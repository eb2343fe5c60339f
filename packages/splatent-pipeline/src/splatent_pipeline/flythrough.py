"""The method in motion: a fly-through of a fitted scene through the enhancer (``splatent render MODEL --path
--enhancer CKPT``).

Each frame of the smooth camera path through the training and test views (``splatent_splat.interpolate_path``)
is rendered as latents, enhanced with the ``top_k`` training views nearest to that frame's camera as references
(the camera-aware score of ``splatent_data.select_references``, their extracted latents, as the dataset stage
pairs a test view), and decoded; ``compare`` puts the raw render's decode on the left. Written as an mp4 and a
strip of a few frames (PNG) beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from splatent_data import SplatentError, load_scene, save_rgb, select_references

STRIP_FRAMES = 6


@dataclass
class FlythroughResult:
    video: Path
    strip: Path
    frames: int
    references: dict[str, list[str]] = field(default_factory=dict)  # frame -> training views used


@torch.no_grad()
def enhanced_flythrough(
    model_dir: str | Path,
    enhancer: str | Path,
    video: str | Path,
    frames: int = 120,
    fps: int = 30,
    compare: bool = True,
    device: str = "auto",
    backend: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> FlythroughResult:
    """Write the enhanced fly-through of ``model_dir`` (a latent fit) to ``video`` (mp4) and ``<video>_strip.png``.

    Args:
        enhancer: A checkpoint ``splatent_model.load_enhancer`` reads (folder, original ``.pkl``, ``tiny``, ...);
            its ``top_k`` references per frame.
        compare: Raw render | enhanced side by side (else the enhanced frames alone).
    """
    import imageio.v2 as imageio

    from splatent_latents import codec_from_manifest, load_latent
    from splatent_model import (
        RuntimeOptions, decode_images, enhance_latents, load_enhancer, prepare_codec, prepare_enhancer,
    )
    from splatent_splat import latent_path, load_ply, read_fit_manifest, resolve_backend

    model_dir, video = Path(model_dir), Path(video)
    if video.suffix.lower() != ".mp4":
        raise SplatentError(f"{video}: the fly-through is written as an .mp4 file")
    info = read_fit_manifest(model_dir)
    if info.get("target") == "rgb":
        raise SplatentError(f"{model_dir} is an RGB fit (--target rgb): it has no latents to enhance")
    options = RuntimeOptions(device=device, batch_size=1)
    model = prepare_enhancer(load_enhancer(enhancer), options)
    dev = options.resolved_device()
    latents_dir = Path(info["latents"])
    if not latents_dir.is_dir():
        raise SplatentError(f"the latents {latents_dir} recorded in {model_dir / 'fit.json'} are gone: the references "
                            "and the codec come from them")
    codec = prepare_codec(codec_from_manifest(latents_dir), options)
    model.check_codec(codec)
    gaussians, _ = load_ply(model_dir / info.get("model", "gaussians.ply"), device=dev)
    backend = resolve_backend(backend, dev)
    scene = load_scene(info["scene"], images=info.get("images"))
    train = list(info["split"]["train"])
    train_cameras = [scene.camera(s) for s in train]
    path = latent_path(train_cameras + [scene.camera(s) for s in info["split"]["test"]], frames, latents_dir)
    h, w = path[0].height, path[0].width
    k = int(model.config.top_k)
    references = select_references(path, train_cameras, k) if k else {c.stem: [] for c in path}
    cache: dict[str, torch.Tensor] = {}

    def reference(stem: str) -> torch.Tensor:  # [C, h, w] at the path's latent size
        if stem not in cache:
            latent = load_latent(latents_dir / f"{stem}.pt").float()
            if latent.shape[-2:] != (h, w):
                latent = F.interpolate(latent[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            cache[stem] = latent.to(dev)
        return cache[stem]

    prompt = model.prompt_embeds()
    video.parent.mkdir(parents=True, exist_ok=True)
    tmp = video.with_name(f".{video.name}.tmp.mp4")
    writer = imageio.get_writer(str(tmp), fps=fps, codec="libx264", quality=8, macro_block_size=1)
    keep = set(np.linspace(0, frames - 1, min(STRIP_FRAMES, frames)).round().astype(int).tolist())
    strip: list[np.ndarray] = []
    try:
        for i, cam in enumerate(path):
            rendered = gaussians.render_cameras([cam], backend=backend)[0].float()
            views = torch.stack([rendered] + [reference(s) for s in references[cam.stem]])[None]
            enhanced = enhance_latents(model, views, prompt_embeds=prompt)
            raw_image, enhanced_image = decode_images(codec, torch.cat([rendered[None].to(enhanced), enhanced]))
            pair = [raw_image, enhanced_image] if compare else [enhanced_image]
            frame = torch.cat(pair, dim=-1).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            writer.append_data((frame * 255 + 0.5).astype(np.uint8))
            if i in keep:
                strip.append(frame)
            if progress is not None:
                progress(i + 1, frames)
    finally:
        writer.close()
    tmp.replace(video)
    strip_path = video.with_name(f"{video.stem}_strip.png")
    save_rgb(strip_path, np.concatenate(strip, axis=0))  # the kept frames, top to bottom
    return FlythroughResult(video=video, strip=strip_path, frames=frames, references=references)
