"""``splatent fit``: the original feature-3dgs ``train.py -s SCENE -m MODEL -i images_4``, on gsplat."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import fail, guarded
from ..options import config_options

RENAMES = {"protocol": "split_mode"}  # FitConfig.split_mode also takes benchmark (API only); --split-file sets file


@guarded("fit", resume="a re-run with --resume continues from the last checkpoint")
def fit(
    scene: Path = typer.Argument(None, help="Scene folder with pinhole cameras (undistort first) and extracted latents."),
    source_path: Path = typer.Option(None, "--source_path", "--source-path", "--scene", "-s", help="The scene, as the original flag."),
    output: Path = typer.Option(None, "--output", "-o", "--model_path", "--model-path", "-m", help="Model folder to write."),
    images: str = typer.Option(None, "--images", "-i", help="Image folder under the scene, e.g. images_4 (default: the pose file's)."),
    latents: str = typer.Option(None, "--latents", help="Latents folder under the scene, or a path (default: features_sd_turbo)."),
    steps: int = typer.Option(10_000, "--steps", "--iterations", min=1, help="Optimisation steps (30000 for quality)."),
    target: str = typer.Option("latent", "--target", help="latent (the method) or rgb (plain 3DGS on the photos, for comparison)."),
    rgb_weight: float = typer.Option(0.0, "--rgb-weight", "--rgb_weight", min=0.0, help="Weight of joint RGB supervision at image resolution (0: latents only)."),
    ssim_weight: float = typer.Option(None, "--ssim-weight", "--ssim_weight", min=0.0, max=1.0, help="D-SSIM weight (default: 0 for latents, 0.2 for rgb)."),
    sh_degree: int = typer.Option(None, "--sh-degree", "--sh_degree", min=0, max=3, help="SH degree of the features (default: 2 for latents, 3 for rgb)."),
    strategy: str = typer.Option("default", "--strategy", help="Densification: default (3DGS), mcmc (CUDA only) or none."),
    max_gaussians: int = typer.Option(1_000_000, "--max-gaussians", "--max_gaussians", "--cap-max", "--cap_max", min=1, help="Gaussian budget of --strategy mcmc."),
    backend: str = typer.Option("auto", "--backend", help="auto (gsplat on CUDA, else torch), gsplat or torch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    init: str = typer.Option("auto", "--init", help="auto (sparse points when the scene has them), points or random."),
    init_points: int = typer.Option(100_000, "--init-points", "--init_points", min=1, help="Random points when the scene has none."),
    protocol: str = typer.Option("llff", "--protocol", help="Input/test views: llff (every 8th view tests), dense (30 furthest-point input views, the rest test) or sparse (5)."),
    split_every: int = typer.Option(8, "--split-every", "--split_every", "--llffhold", min=2, help="Every N-th view (from the first) is a test view."),
    split_file: str = typer.Option(None, "--split-file", "--split_file", help='JSON {"train": [...], "test": [...]} naming the views (instead of --protocol); train defaults to the rest.'),
    eval_every: int = typer.Option(1000, "--eval-every", "--eval_every", min=0, help="Test-view PSNR every N steps (0: only at the end)."),
    checkpoint_every: int = typer.Option(2000, "--checkpoint-every", "--checkpoint_every", min=0, help="Checkpoint every N steps (0: only at the end)."),
    antialiased: bool = typer.Option(False, "--antialiased", help="gsplat's antialiased (Mip-Splatting) rasterisation."),
    packed: bool = typer.Option(True, "--packed/--no-packed", " /--no_packed", help="gsplat's memory-saving packed mode."),
    seed: int = typer.Option(0, "--seed", help="Seeds initialisation, view order and densification."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the model folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again in a model folder that holds a fit."),
    tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard", " /--no_tensorboard", help="Write TensorBoard scalars to MODEL/tb."),
    build_kernels: bool = typer.Option(False, "--build-kernels", "--build_kernels", help="Compile gsplat's CUDA kernels now and say where they are cached."),
) -> None:
    """Fit latent-feature 3D Gaussians to a scene's latents (MODEL/gaussians.ply + fit.json)."""
    from splatent_splat import FLAT_OPTIONS, FitConfig, build_gsplat_kernels, fit_scene

    if scene is not None and source_path is not None and scene != source_path:
        raise fail("fit", f"two scenes given ({scene} and --source_path {source_path}); pass one")
    path = scene if scene is not None else source_path
    if build_kernels:
        print(build_gsplat_kernels().describe())
        if path is None:
            return
    if path is None:
        raise fail("fit", "no scene given; pass SCENE (or -s SCENE)")
    if output is None:
        raise fail("fit", "no model folder given; pass --output MODEL_DIR (or -m MODEL_DIR)")
    config = FitConfig.from_flat(**config_options(fit, locals(), FitConfig, FLAT_OPTIONS, RENAMES), progress=True)
    result = fit_scene(path, output, config, resume=resume, overwrite=overwrite)  # CPU threads: fit_scene's policy
    psnr = result.test.get("psnr")
    quality = f"; test {'latent ' if target == 'latent' else ''}PSNR {psnr:.2f} dB" if psnr is not None else ""
    print(f"fitted {result.num_gaussians:,} Gaussians in {result.seconds:.0f} s "
          f"({result.steps_per_second:.1f} steps/s){quality} -> {output}")
