"""``splatent scene inspect|undistort``: check and prepare a scene before spending GPU time."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from splatent_data.sfm import EXHAUSTIVE_MAX_IMAGES

from ..errors import guarded

app = typer.Typer(no_args_is_help=True, help="Inspect, undistort or reconstruct a scene.")

FORMAT_HELP = "Pose format: auto (transforms.json, then COLMAP, then poses_bounds.npy), transforms, colmap or llff."


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
        if key == "unregistered":  # image files the COLMAP model does not place, of all in the folder
            value = f"{value} of {info['images'] + value} photos"
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


@app.command("undistort", help="Write a pinhole copy of a distorted scene (images + poses), all images in one folder.")
@guarded("scene undistort")
def undistort(
    path: Path = typer.Argument(..., help="Scene folder with distorted cameras, or with images in several folders."),
    output: Path = typer.Option(..., "--output", "-o", help="New scene folder."),
    images: str = typer.Option(None, "--images", "--res", help="Image folder inside the scene."),
    fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
) -> None:
    from splatent_data import load_scene, undistort_scene

    scene = load_scene(path, fmt=fmt, images=images)
    from splatent_latents import progress_bar  # imports torch: not at CLI start

    with progress_bar("undistort", total=len(scene)) as bar:
        out = undistort_scene(scene, output, progress=bar.report)
    print(f"undistorted {len(out)} images into {output} ({out.format})")


@app.command("sfm", help="Photos without poses -> a COLMAP scene (SIFT, matching, incremental mapping).")
@guarded("scene sfm")
def sfm(
    images_dir: Path = typer.Argument(..., help="Folder of photos."),
    output: Path = typer.Option(..., "--output", "-o", help="New scene folder."),
    matcher: str = typer.Option(
        "auto", "--matcher",
        help=f"auto (exhaustive up to {EXHAUSTIVE_MAX_IMAGES} photos, else sequential), "
             f"sequential (ordered captures) or exhaustive (every pair).",
    ),
    camera_model: str = typer.Option("OPENCV", "--camera_model", "--camera-model", help="COLMAP camera model."),
    max_image_size: int = typer.Option(1600, "--max_image_size", "--max-image-size", help="Longest side for SIFT."),
    undistort: bool = typer.Option(False, "--undistort", help="Also write a pinhole copy to OUTPUT/undistorted."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo an existing reconstruction."),
) -> None:
    from splatent_data import list_images, load_scene, run_sfm, undistort_scene

    console = Console(stderr=True)
    total = len(list_images(images_dir))
    # the count is the largest model's, not a sum over models; the kept model's may be lower at the end
    from splatent_latents import progress_bar  # imports torch: not at CLI start

    with progress_bar("registered (largest model)", total=total) as bar, \
            console.status("structure from motion") as status:
        result = run_sfm(images_dir, output, matcher=matcher, camera_model=camera_model,
                         max_image_size=max_image_size, overwrite=overwrite,
                         on_stage=lambda name: status.update(f"structure from motion: {name}"),
                         on_registered=bar.update)
    print(f"{result.summary()} -> {output}")
    if undistort:
        scene = undistort_scene(load_scene(output), output / "undistorted")
        print(f"undistorted {len(scene)} images into {output / 'undistorted'}")
