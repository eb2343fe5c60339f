"""``splatent extract``: the original ``scripts/extract_features.py``, same flags; batched and resumable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..errors import fail, guarded


@guarded("extract")
def extract(
    scene: Path = typer.Argument(None, help="Scene folder (holding images_4/ or images/), or a folder of images."),
    input_path: Path = typer.Option(None, "--input", "-i", help="The scene, as the original script's flag."),
    output: str = typer.Option("features_sd_turbo", "--output", "-o", help="Latents folder under the scene, or an absolute path."),
    images: str = typer.Option(None, "--res", "--images", help="Image folder under the scene [default: images_4, else images]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (under accelerate launch, auto is each process's GPU)."),
    codec: str = typer.Option(None, "--codec", help="sd-vae, pca (no weights), taef2 (packaged weights, 32 channels) or tiny-random [default: the folder's, else sd-vae]."),
    model: str = typer.Option(None, "--model", help="sd-vae weights: hub id or local folder [default: the folder's, else stabilityai/sd-turbo]."),
    revision: str = typer.Option(None, "--revision", help="Hub revision of --model."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, float32 on CPU), float32, float16 or bfloat16."),
    batch_size: int = typer.Option(None, "--batch-size", "--batch_size", min=1, help="Images per batch [default: by image size]."),
    workers: int = typer.Option(None, "--workers", "--num-workers", "--num_workers", min=0, help="CPU processes decoding images."),
    sample: bool = typer.Option(False, "--sample", help="Store posterior draws (as the original script) instead of the mean (not pca or taef2: they have none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of --sample draws (combined with each image's name)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-encode everything, replacing the folder's latents."),
    fail_fast: bool = typer.Option(False, "--fail-fast", "--fail_fast", help="Stop at the first unreadable image."),
    protocol: str = typer.Option("llff", "--protocol", help="pca only: the view protocol whose input views fit the basis (llff, dense or sparse, as fit's), so that its test views stay unseen."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder of sd-vae or taef2: ~15 s to compile, then 1.6x faster (sd-vae, 512², H100); pays off from ~6 000 images."),
) -> None:
    """Encode a scene's images into 1/8-resolution latents (SCENE/features_sd_turbo/<stem>.pt): 4 channels, 32 with taef2."""
    from splatent_latents import extract_latents

    if scene is not None and input_path is not None and scene != input_path:
        raise fail("extract", f"two scenes given ({scene} and --input {input_path}); pass one")
    path = scene if scene is not None else input_path
    if path is None:
        raise fail("extract", "no scene given; pass SCENE or --input SCENE")
    result = extract_latents(
        path, output=output, images=images, codec=codec, model=model, revision=revision, device=device,
        dtype=dtype, batch_size=batch_size, workers=workers, sample=sample, seed=seed, overwrite=overwrite,
        fail_fast=fail_fast, compile=compile, protocol=protocol, progress=True,
    )
    if os.environ.get("RANK", "0") == "0":  # under accelerate launch every process returns the same totals
        print(result.summary())
    if result.failed:
        for name, reason in sorted(result.failed.items()):
            print(f"  failed: {name}: {reason}", file=sys.stderr)
        raise fail("extract", f"{len(result.failed)} image(s) failed (listed above); the other latents are written, "
                              f"fix or remove those images and re-run to finish")
