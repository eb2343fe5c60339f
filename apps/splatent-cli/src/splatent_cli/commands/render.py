"""``splatent render``: the original feature-3dgs ``render.py -m MODEL``: nvs/, nvs_gt/, train/, train_gt/."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import fail, guarded


@guarded("render")
def render(
    model_dir: Path = typer.Argument(None, help="Model folder written by `splatent fit`, or any 3DGS model (INRIA's "
                                     "output folder, a .ply such as nerfstudio's splat.ply) with --scene."),
    model_path: Path = typer.Option(None, "--model_path", "--model-path", "-m", help="The model folder, as the original flag."),
    output: Path = typer.Option(None, "--output", "-o", help="Render folder, conventionally R/<scene> (default: MODEL/renders)."),
    scene: Path = typer.Option(None, "--scene", "--source_path", "--source-path", "-s", help="Scene folder, when it moved since the fit."),
    latents: Path = typer.Option(None, "--latents", help="Latents folder, when it moved since the fit."),
    images: str = typer.Option(None, "--images", help="Image folder of --scene (e.g. images_4) for a model without "
                               "fit.json: the renders take its resolution."),
    save_images: bool = typer.Option(False, "--save-images", "--save_images", help="Also decode every latent to a PNG beside it."),
    path: bool = typer.Option(False, "--path", help="Render a smooth camera path through the training views to path.mp4."),
    path_frames: int = typer.Option(120, "--path-frames", "--path_frames", min=2, help="Frames of the --path video."),
    fps: int = typer.Option(30, "--fps", min=1, help="Frame rate of the --path video."),
    enhancer: str = typer.Option(None, "--enhancer", help="With --path: also the fly-through through this enhancer "
                                 "checkpoint (references: the nearest training views) to path_enhanced.mp4."),
    compare: bool = typer.Option(True, "--compare/--no-compare", " /--no_compare", help="With --enhancer: the raw render beside the "
                                 "enhanced one in each frame."),
    backend: str = typer.Option("auto", "--backend", help="auto (gsplat on CUDA, else torch), gsplat or torch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Render a fitted model's test and training views as latents (the dataset stage's input)."""
    from splatent_latents import progress_bar
    from splatent_splat import open_model, render_model

    if model_dir is not None and model_path is not None and model_dir != model_path:
        raise fail("render", f"two models given ({model_dir} and --model_path {model_path}); pass one")
    model = model_dir if model_dir is not None else model_path
    if model is None:
        raise fail("render", "no model given; pass MODEL_DIR (or -m MODEL_DIR)")
    if enhancer is not None and not path:
        raise fail("render", "--enhancer makes the enhanced fly-through of --path; add --path")
    if enhancer is not None:  # a mistyped checkpoint fails now, not after every view and the path are rendered
        from splatent_model import check_checkpoint_source

        check_checkpoint_source(enhancer)
    source = open_model(model, scene=scene, images=images)
    info = source.info
    out = output if output is not None else (model if model.is_dir() else model.parent) / "renders"
    total = 2 * (len(info["split"]["train"]) + len(info["split"]["test"])) + (path_frames if path else 0)
    with progress_bar("render", total=total, unit="views") as bar:
        result = render_model(
            source, out, latents=latents, save_images=save_images, path_frames=path_frames if path else 0,
            fps=fps, backend=backend, device=device, progress=bar.report,
        )
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    video = f"; video {result.video}" if result.video else ""
    print(f"rendered {counts} into {out}{video}")
    if enhancer is not None:
        from splatent_pipeline import enhanced_flythrough

        with progress_bar("enhance path", total=path_frames, unit="frames") as bar:
            fly = enhanced_flythrough(model, enhancer, out / "path_enhanced.mp4", frames=path_frames, fps=fps,
                                      compare=compare, device=device, backend=backend, progress=bar.report)
        print(f"enhanced fly-through {fly.video} ({'raw | enhanced' if compare else 'enhanced'}); frames {fly.strip}")
