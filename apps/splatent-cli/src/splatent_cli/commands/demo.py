"""``splatent demo``: the whole method, offline, on the embedded procedural scene (see :mod:`splatent_pipeline.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded


@guarded("demo")
def demo(
    output_dir: Path = typer.Option(Path("splatent-demo"), "--output-dir", "--output_dir", "-o",
                                    help="Result folder; a re-run resumes it, skipping finished stages."),
    seed: int = typer.Option(0, "--seed", help="Seeds the scene's layout, the fits and the enhancer."),
    codec: str = typer.Option("taef2", "--codec",
                              help="taef2 (a learned 32-channel latent space, shipped) or pca (a linear 4-channel basis)."),
    quick: bool = typer.Option(False, "--quick", help="A reduced run (smaller scene, fewer steps; about 30 s on 2 cores)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    lpips: bool = typer.Option(None, "--lpips/--no-lpips", " /--no_lpips", help="Score LPIPS (default: when its weights are cached)."),
) -> None:
    """Run the whole method offline on a procedural scene and report render, enhanced and codec-ceiling PSNR."""
    from splatent_pipeline import DemoConfig, run_demo

    from splatent_latents import progress_bar

    settings = dict(output_dir=output_dir, seed=seed, codec=codec, device=device, lpips=lpips)
    cfg = DemoConfig.quick(**settings) if quick else DemoConfig(**settings)
    result = run_demo(cfg, progress=progress_bar)
    print(f"demo: ran {len(result.ran)} stages, skipped {len(result.skipped)}, in {result.total_seconds:.1f} s")
    print(f"report: {result.report.resolve()}")
    print(f"mean PSNR over {result.views} held-out test views: {result.summary()}")
