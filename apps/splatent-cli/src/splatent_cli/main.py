"""``splatent``: the Typer app. Each command lives in ``commands/<name>.py`` and is
registered here; a command parses options, calls one package function, and lets
:func:`splatent_cli.errors.guarded` turn known errors into one line."""

from __future__ import annotations

import os
import sys

import typer

from . import __version__
from .commands import (
    convert_ckpt, dataset, decode, demo, enhance, evaluate, export_ply, extract, fit, pipeline, render, scene, train,
    view,
)
from .errors import DEBUG_ENV, debugging, setup_logging

app = typer.Typer(
    name="splatent",
    help="Latent Gaussian splatting with reference-guided single-step diffusion enhancement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"splatent {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug messages."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help=f"Show the traceback of a failure (for bug reports; or {DEBUG_ENV}=1)."),
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"
    setup_logging(verbose or debugging())


app.command("dataset", help="Pair rendered views with their top-k nearest training views in a dataset JSON.")(dataset.dataset)
app.add_typer(scene.app, name="scene", help="Inspect, undistort or reconstruct a scene.")
app.command("extract", help="Encode a scene's images into 1/8-resolution latents (sd-vae, taef2, pca).")(extract.extract)
app.command("decode", help="Decode latents back to PNG images with the codec that wrote them.")(decode.decode)
app.command("enhance", help="Enhance rendered latents with reference views and decode them to images.")(enhance.enhance)
app.command("convert-ckpt", help="Convert an original Splatent .pkl into a checkpoint folder (config.json + diffusers' unet/).")(convert_ckpt.convert_ckpt)
app.command("train", help=train.HELP)(train.train)
app.command("fit", help="Fit latent-feature 3D Gaussians to a scene's latents (gsplat on CUDA, PyTorch on CPU).")(fit.fit)
app.command("pipeline", help="Run undistort, extract, fit, render, dataset, enhance and eval on one scene (resumable).")(pipeline.pipeline)
app.command("eval", help="Score renders and enhanced renders against ground truth; write a report.")(evaluate.evaluate)
app.command("render", help="Render a fitted model's latents at test and training views (nvs/, nvs_gt/, train/, train_gt/).")(render.render)
app.command("export-ply", help="Write a fitted model's Gaussians as INRIA 3DGS's PLY (--format inria) or its latent PLY.")(export_ply.export_ply)
app.command("view", help="Serve a fitted scene in a browser (viser): orbit it decoded, enhanced or side by side.")(view.view)
app.command("demo", help="Run the whole method offline on an embedded procedural scene and report PSNR (resumable).")(demo.demo)


def main() -> None:
    try:
        app()
    except SystemExit as done:
        if done.code in (None, 0):
            release_process_group()
        raise
    release_process_group()


def release_process_group() -> None:
    """Under ``accelerate launch`` a command's processes joined one ``torch.distributed`` group: destroy it once the
    command succeeded, before the interpreter exits, where gloo's threads otherwise abort a finished run
    ("terminate called without an active exception", exit -6: pytorch/pytorch#190489). Not after a failure: the
    other processes may be inside a collective, and destroying the group could hang this one."""
    dist = sys.modules.get("torch.distributed")  # never imports torch for commands that did not
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
