"""``splatent scene inspect|undistort``: check and prepare a scene before spending GPU time."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..errors import guarded
from ..progress import progress_bar

app = typer.Typer(no_args_is_help=True, help="Inspect, undistort or reconstruct a scene.")

FORMAT_HELP = "Pose format: auto, transforms or colmap."


@app.command("inspect", help="Report format, image count, sizes, camera models, distortion, split and points.")
@guarded("scene inspect")
def inspect(
    path: Path = typer.Argument(..., help="Scene folder, transforms.json or COLMAP model."),
    images: str = typer.Option(None, "--images", "--res", help="Image folder inside the scene (e.g. images_4)."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
    strict: bool = typer.Option(False, "--strict", help="Fail when listed images are missing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    benchmark: bool = typer.Option(False, "--benchmark", help="Report the all-test split."),
) -> None:
    from splatent_data import load_scene, scene_summary

    scene = load_scene(path, fmt=fmt, images=images, strict=strict)
    info = scene_summary(scene, "benchmark" if benchmark else "llff")
    if as_json:
        print(json.dumps(info, indent=2))
        return
    table = Table(title=f"scene {path}", show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


@app.command("undistort", help="Write a pinhole copy of a distorted scene (images + poses).")
@guarded("scene undistort")
def undistort(
    path: Path = typer.Argument(..., help="Scene folder with distorted cameras."),
    output: Path = typer.Option(..., "--output", "-o", help="New scene folder."),
    images: str = typer.Option(None, "--images", "--res", help="Image folder inside the scene."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
) -> None:
    from splatent_data import load_scene, undistort_scene

    scene = load_scene(path, fmt=fmt, images=images)
    with progress_bar("undistort", total=len(scene)) as advance:
        out = undistort_scene(scene, output, progress=lambda done, total: advance(1))
    print(f"undistorted {len(out)} images into {output} ({out.format})")
