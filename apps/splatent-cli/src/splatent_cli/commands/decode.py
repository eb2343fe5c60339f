"""``splatent decode``: latents back to PNG images, with the codec named by their manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..errors import fail, guarded


@guarded("decode")
def decode(
    latents: Path = typer.Argument(..., help="A latents folder (with manifest.json), a render folder (R/SCENE/nvs: the codec of the latents it was rendered from) or one .pt file in either."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the PNG images."),
    codec: str = typer.Option(None, "--codec", help="Only for latents without manifest.json (the original scripts'): sd-vae, or taef2 (32 channels)."),
    model: str = typer.Option(None, "--model", help="With --codec sd-vae: hub id or local folder [default: stabilityai/sd-turbo]."),
    revision: str = typer.Option(None, "--revision", help="Hub revision of --model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, float32 on CPU), float32, float16 or bfloat16."),
    batch_size: int = typer.Option(None, "--batch-size", "--batch_size", min=1, help="Latents per batch [default: by size]."),
    fail_fast: bool = typer.Option(False, "--fail-fast", "--fail_fast", help="Stop at the first bad latent file."),
) -> None:
    """Decode latents into OUTPUT/<stem>.png."""
    from splatent_latents import decode_latents

    result = decode_latents(latents, output, codec=codec, model=model, revision=revision, device=device,
                            dtype=dtype, batch_size=batch_size, fail_fast=fail_fast, progress=True)
    print(result.summary())
    if result.failed:
        for name, reason in sorted(result.failed.items()):
            print(f"  failed: {name}: {reason}", file=sys.stderr)
        raise fail("decode", f"{len(result.failed)} latent file(s) failed (listed above); the other images are written")
