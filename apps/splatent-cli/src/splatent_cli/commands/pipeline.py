"""``splatent pipeline``: the original ``unified_pipeline.py``, in-process and resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded
from ..options import config_options


@guarded("pipeline")
def pipeline(
    scene_path: Path = typer.Option(..., "--scene_path", "--scene-path", help="Scene folder (transforms.json or COLMAP)."),
    output_dir: Path = typer.Option(Path("results"), "--output_dir", "--output-dir", help="Result folder."),
    save_images: bool = typer.Option(False, "--save_images", "--save-images", help="Also decode renders to PNGs."),
    model_splatent_path: str = typer.Option(None, "--model_splatent_path", "--model-splatent-path",
                                            help="Enhancer checkpoint (folder, original .pkl, or 'tiny')."),
    codec: str = typer.Option("sd-vae", "--codec", help="Latent codec: sd-vae, taef2 (offline, learned), pca (offline, linear) or tiny-random."),
    vae_model: str = typer.Option(None, "--model", "--vae_model", "--vae-model", help="VAE weights for sd-vae (hub id or folder)."),
    images: str = typer.Option(None, "--images", "--res", help="Image folder inside the scene (e.g. images_4)."),
    top_k: int = typer.Option(3, "--top_k", "--top-k", help="Reference views per target."),
    steps: int = typer.Option(10_000, "--steps", help="Fit steps."),
    strategy: str = typer.Option("default", "--strategy", help="Densification: default or mcmc."),
    backend: str = typer.Option("auto", "--backend", help="Rasteriser: auto, gsplat or torch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", " /--no_lpips", help="Score LPIPS in eval (needs backbone weights)."),
    start_from: str = typer.Option(None, "--from", help="Re-run from this stage: undistort, extract, fit, render, dataset, enhance, eval."),
) -> None:
    """Run undistort, extract, fit, render, dataset, enhance and eval on one scene."""
    from splatent_pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(**config_options(pipeline, locals(), PipelineConfig), fit_options={"strategy": strategy})
    result = run_pipeline(cfg)
    times = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"pipeline: ran {', '.join(result.ran) or 'nothing'}; skipped {', '.join(result.skipped) or 'nothing'}"
          + (f" ({times})" if times else ""))
    if result.report:
        print(f"report: {result.report}")
        if result.means:
            print("mean PSNR: " + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in result.means.items()))
