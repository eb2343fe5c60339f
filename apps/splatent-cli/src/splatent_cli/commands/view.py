"""``splatent view``: a live browser viewer of a fitted scene (see :mod:`splatent_pipeline.viewer`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded


@guarded("view")
def view(
    model_dir: Path = typer.Argument(..., help="The model folder `splatent fit` wrote (a latent fit)."),
    enhancer: str = typer.Option(None, "--enhancer", help="Enhancer checkpoint (folder, original .pkl, tiny): adds "
                                 "the enhanced and side-by-side modes; references are the nearest training views."),
    port: int = typer.Option(8080, "--port", help="Port to serve on (taken: the next free one; 0: any)."),
    host: str = typer.Option("0.0.0.0", "--host", help="Interface to listen on (0.0.0.0: every one; 127.0.0.1: "
                             "this machine only)."),
    mode: str = typer.Option("decoded", "--mode", help="First view mode: decoded, enhanced or side-by-side."),
    max_size: int = typer.Option(None, "--max-size", "--max_size", help="Longest frame side in pixels (default: "
                                 "512 on CUDA, 256 on a CPU)."),
    resolution_scale: float = typer.Option(1.0, "--resolution-scale", "--resolution_scale",
                                           help="First resolution scale: frame = browser canvas × this."),
    start_view: str = typer.Option(None, "--view", help="Start at this training or test view (its file stem; a "
                                   "test view shows its PSNR / SSIM at once). Default: the first training view."),
    backend: str = typer.Option("auto", "--backend", help="auto (gsplat on CUDA, else torch), gsplat or torch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Serve MODEL_DIR in a browser: orbit it, decoded or enhanced, with frame times and test-view metrics."""
    from splatent_pipeline import ViewerConfig, serve_viewer

    config = ViewerConfig(host=host, port=port, mode=mode, max_side=max_size, resolution_scale=resolution_scale,
                          start_view=start_view)
    serve_viewer(model_dir, enhancer, config, device=device, backend=backend, say=lambda line: print(line, flush=True))
