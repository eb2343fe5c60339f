"""The method in motion: a fly-through of a fitted scene through the enhancer (``splatent render MODEL --path
--enhancer CKPT``).

Each frame of the smooth camera path through the training and test views (``splatent_splat.interpolate_path``)
is rendered as latents, enhanced with the ``top_k`` training views nearest to that frame's camera as references
and decoded (:class:`~splatent_pipeline.latent_scene.LatentScene`, which the live viewer shares); ``compare`` puts
the raw render's decode on the left. Written as an mp4 and a strip of a few frames (PNG) beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from splatent_data import SplatentError, save_rgb

from .latent_scene import open_latent_scene

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

    from splatent_splat import latent_path

    video = Path(video)
    if video.suffix.lower() != ".mp4":
        raise SplatentError(f"{video}: the fly-through is written as an .mp4 file")
    scene = open_latent_scene(model_dir, enhancer, device=device, backend=backend)
    path = latent_path(scene.train + scene.test, frames, scene.latents_dir)
    k = scene.top_k
    references = {cam.stem: scene.references(cam, k) for cam in path}
    video.parent.mkdir(parents=True, exist_ok=True)
    tmp = video.with_name(f".{video.name}.tmp.mp4")
    writer = imageio.get_writer(str(tmp), fps=fps, codec="libx264", quality=8, macro_block_size=1)
    keep = set(np.linspace(0, frames - 1, min(STRIP_FRAMES, frames)).round().astype(int).tolist())
    strip: list[np.ndarray] = []
    try:
        for i, cam in enumerate(path):
            rendered = scene.render(cam)
            enhanced = scene.enhance(rendered, references[cam.stem])
            raw_image, enhanced_image = scene.decode(torch.stack([rendered, enhanced]))
            pair = [raw_image, enhanced_image] if compare else [enhanced_image]
            frame = torch.cat(pair, dim=-1).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            writer.append_data((frame * 255 + 0.5).astype(np.uint8))
            if i in keep:
                strip.append(frame)
            if progress is not None:
                progress(i + 1, frames)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)  # a failed or interrupted video leaves no half-written file behind
        raise
    writer.close()
    tmp.replace(video)
    strip_path = video.with_name(f"{video.stem}_strip.png")
    save_rgb(strip_path, np.concatenate(strip, axis=0))  # the kept frames, top to bottom
    return FlythroughResult(video=video, strip=strip_path, frames=frames, references=references)
