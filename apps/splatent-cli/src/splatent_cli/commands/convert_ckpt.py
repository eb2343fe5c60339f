"""``splatent convert-ckpt``: an original Splatent ``.pkl`` to a checkpoint folder (config.json + diffusers' unet/)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded



@guarded("convert-ckpt")
def convert_ckpt(
    src: Path = typer.Argument(..., help="The original checkpoint (a torch.save'd {'state_dict_unet': ...})."),
    dst: Path = typer.Argument(..., help="Checkpoint folder to write."),
    base_model: str = typer.Option("stabilityai/sd-turbo", "--base_model", "--base-model", help="Base weights for partial checkpoints, --delta and the prompt embedding."),
    delta: bool = typer.Option(False, "--delta", help="Store only the weights that differ from the base model (needs its weights to load)."),
    dtype: str = typer.Option("float32", "--dtype", help="Stored weight dtype: float32, float16 or bfloat16."),
    prompt: str = typer.Option("A photo of a scene", "--prompt", help="Prompt the model was trained with."),
    timestep: int = typer.Option(300, "--timestep", help="Timestep it was trained at (the original pipeline: 300)."),
    top_k: int = typer.Option(3, "--top_k", "--top-k", help="References per target it was trained with."),
    scale: bool = typer.Option(True, "--scale/--no-scale", " /--no_scale", help="Whether it was trained with --scale (the original pipeline: yes)."),
    embed_prompt: bool = typer.Option(True, "--embed-prompt/--no-embed-prompt", "--embed_prompt/--no_embed_prompt", help="Store the prompt's embedding when the text encoder is available."),
) -> None:
    """Convert an original Splatent .pkl into a checkpoint folder, reading it without arbitrary unpickling."""
    from splatent_latents import LatentError, parse_dtype
    from splatent_model import EnhanceInputError, convert_original_checkpoint

    try:
        weight_dtype = parse_dtype(dtype)
    except LatentError:
        raise EnhanceInputError(f"unknown --dtype {dtype!r}; use float32, float16 or bfloat16") from None
    out = convert_original_checkpoint(
        src, dst, base_model=base_model, delta=delta, dtype=weight_dtype,
        encode_prompt=embed_prompt, prompt=prompt, timestep=timestep, top_k=top_k, scale=scale,
    )
    files = ", ".join(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))
    print(f"wrote {out} ({files})")
