"""``splatent export-ply``: a fitted model's Gaussians as INRIA 3DGS's PLY, or as its own latent PLY."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded


@guarded("export-ply")
def export_ply(
    model_dir: Path = typer.Argument(..., help="The model folder `splatent fit` wrote, or any 3DGS model (INRIA's "
                                     "output folder, a .ply such as nerfstudio's splat.ply)."),
    output: Path = typer.Argument(..., help="The .ply file to write."),
    format: str = typer.Option("inria", "--format", help="inria (INRIA 3DGS's 62 properties; a latent model's colours "
                               "decoded by its codec) or latent (every latent channel, what `splatent render` reads)."),
    latents: Path = typer.Option(None, "--latents", help="Latents folder whose codec decodes the colours (default: "
                                 "the one fit.json records)."),
    frame: str = typer.Option("scene", "--frame", help="scene (the poses' world) or original (the capture's world "
                              "before nerfstudio's applied_transform, e.g. its COLMAP model's)."),
    scene: Path = typer.Option(None, "--scene", "-s", help="The scene of a model without fit.json (for --frame original)."),
    images: str = typer.Option(None, "--images", help="Image folder of --scene."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Write MODEL_DIR's Gaussians to OUTPUT."""
    from splatent_splat import export_ply as export

    path = export(model_dir, output, format=format, latents=latents, device=device, frame=frame, scene=scene,
                  images=images)
    print(f"wrote {path} ({format}, {frame} frame)")
