"""``decode_latents``: latents back to PNG images, with the codec that wrote them.

The codec comes from the folder's ``manifest.json``. Latents written by other
tools (the original scripts write no manifest) decode with an explicit
``codec`` (``sd-vae`` and ``model``, or ``taef2`` with its packaged weights).
Each latent must have the codec's channel count. Every PNG is written atomically; a
re-run rewrites them all, so the output always matches the latents.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from splatent_data import save_rgb

from .codec import LatentCodec
from .devices import resolve_device, resolve_dtype
from .errors import LatentError
from .files import LATENT_SUFFIX, load_latent
from .manifest import MANIFEST_NAME, codec_from_manifest, read_manifest
from .progress import progress_bar
from .registry import load_codec

logger = logging.getLogger("splatent")

# Image pixels per decoded batch: the decoder is ~2.5x the encoder's work and memory.
PIXEL_BUDGET = {"cuda": 8 * 512 * 512, "cpu": 2 * 512 * 512}


@dataclass
class DecodeResult:
    """What a decode run wrote; ``failed`` maps latent file names to reasons."""

    output: Path
    codec: str
    written: list[str]
    failed: dict[str, str]
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        rate = f", {self.images_per_second:.1f} images/s" if self.written else ""
        return f"{len(self.written)} decoded, {len(self.failed)} failed -> {self.output} ({self.codec}{rate})"


def decode_latents(
    source: str | Path,
    output: str | Path,
    codec: str | LatentCodec | None = None,
    model: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    fail_fast: bool = False,
    progress: bool = False,
) -> DecodeResult:
    """Decode a latents folder (or one ``.pt`` file) into ``output/<stem>.png``.

    Args:
        source: A latents folder, or one latent file (its folder's manifest names the codec).
        output: Folder for the PNGs (created).
        codec: None: the manifest's. A name must agree with the manifest; without a manifest it is required.
        model, revision: ``sd-vae`` weights for latents without a manifest.
        device, dtype: As for :func:`extract_latents`.
        batch_size: Latents per batch; None fills a pixel budget.
        fail_fast: Stop at the first bad latent file instead of reporting all at the end.
        progress: Show a progress bar.
    """
    source, output = Path(source).expanduser(), Path(output).expanduser()
    if source.is_dir():
        folder = source
        files = sorted(p for p in source.glob(f"*{LATENT_SUFFIX}") if not p.name.startswith("."))
        if not files:
            raise LatentError(f"no {LATENT_SUFFIX} latent files in {source}; pass a latents folder or file")
    elif source.is_file():
        if source.suffix != LATENT_SUFFIX:  # a photo or the manifest: not "a bad latent, delete it"
            raise LatentError(f"{source} is not a {LATENT_SUFFIX} latent file; pass a latents folder or one "
                              f"{LATENT_SUFFIX} file in it")
        folder, files = source.parent, [source]
    else:
        raise LatentError(f"{source} does not exist; pass a latents folder or a .pt file")

    built = _codec_for(folder, codec, model, revision)
    dev = resolve_device(device)
    built.to(dev, resolve_dtype(dtype, dev, built.name))
    output.mkdir(parents=True, exist_ok=True)

    written: list[str] = []
    failed: dict[str, str] = {}
    budget = PIXEL_BUDGET["cuda" if dev.type == "cuda" else "cpu"]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="splatent-png") as pool, torch.inference_mode(), \
            progress_bar("decode", len(files), progress) as advance:
        pending: list[tuple[Future, str]] = []
        batch: list[tuple[str, torch.Tensor]] = []

        def flush() -> None:
            if not batch:
                return
            images = built.decode(torch.stack([latent for _, latent in batch]))
            # float32 before scaling: bf16 cannot tell 200.4 from 200.6
            pixels = images.float().mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for (stem, _), image in zip(batch, pixels):
                pending.append((pool.submit(save_rgb, output / f"{stem}.png", image), stem))
            advance(len(batch))
            batch.clear()

        for path in files:
            try:
                latent = load_latent(path, channels=built.channels)
            except LatentError as exc:
                if fail_fast:
                    raise
                failed[path.name] = str(exc)
                advance(1)
                continue
            capacity = batch_size or max(1, budget // (latent.shape[1] * latent.shape[2] * built.downsample**2))
            if batch and (batch[0][1].shape != latent.shape or len(batch) >= capacity):
                flush()
            batch.append((path.stem, latent))
        flush()
        for future, stem in pending:
            try:
                future.result()
            except OSError as exc:
                raise LatentError(f"cannot write {output / (stem + '.png')}: {exc.strerror or exc}; check the output folder") from None
            written.append(stem)
    return DecodeResult(output, built.name, written, failed, time.perf_counter() - start)


def _render_latents(folder: Path) -> Path | None:
    """The latents folder a render folder's ``manifest.json`` names, for ``R/<scene>/nvs`` (whose latents have no
    manifest of their own): the codec and, for pca, the basis are those of the latents the model was fitted to."""
    import json

    if (folder / MANIFEST_NAME).is_file() or not (folder.parent / MANIFEST_NAME).is_file():
        return None
    try:
        record = json.loads((folder.parent / MANIFEST_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("stage") != "render" or not record.get("latents"):
        return None
    latents = Path(record["latents"])
    if not (latents / MANIFEST_NAME).is_file():
        raise LatentError(f"{folder} holds renders of the latents in {latents} (its render's {MANIFEST_NAME}), which "
                          f"are gone; pass --codec, or render again with --save-images")
    logger.info("%s: decoding with the codec of %s, the latents it was rendered from", folder, latents)
    return latents


def _codec_for(folder: Path, codec: str | LatentCodec | None, model: str | None, revision: str | None) -> LatentCodec:
    """The codec named by ``folder``'s manifest, checked against an explicit request."""
    if isinstance(codec, LatentCodec):
        return codec
    folder = _render_latents(folder) or folder
    if (folder / MANIFEST_NAME).is_file():
        manifest = read_manifest(folder)
        if codec and codec != manifest.codec:
            raise LatentError(f"{folder} holds {manifest.codec} latents (see its {MANIFEST_NAME}); drop --codec or pass --codec {manifest.codec}")
        if model or revision:
            raise LatentError(f"{folder} names its model in {MANIFEST_NAME} ({manifest.model}); drop --model/--revision")
        return codec_from_manifest(folder)
    if codec is None:
        raise LatentError(f"no {MANIFEST_NAME} in {folder}, so the codec is unknown; pass --codec sd-vae "
                          f"(and --model) for latents written by the original scripts, or --codec taef2")
    if codec == "pca":
        raise LatentError(f"pca latents decode only with the basis in their folder's {MANIFEST_NAME}, and {folder} has none")
    options = {k: v for k, v in (("model", model), ("revision", revision)) if v is not None}
    return load_codec(codec, **options)
