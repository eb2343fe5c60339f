"""The bad-input corpus: what a demanding new user gets wrong, across every stage, and what Splatent must do.

Each case builds its bad or odd input from one small, real workspace (a synthetic scene run through the CPU
pipeline: pca latents, a 40-step fit, renders, a dataset JSON, and a tiny enhancer trained two steps with
resumable checkpoints), runs one ``splatent`` command in this process (the app as the console script runs it),
and asserts:

* the exit code (1: bad input, 2: the machine or a refused option, 0 for odd inputs that must work);
* no traceback, and the failure as one line ``splatent <command>: <what, where, how to fix>`` naming the
  problem (``message``, a regular expression); option errors are Typer's own one-line box;
* every file that existed before the command (``protect``) is byte-identical after it;
* for pickles: the code inside never ran.

The corpus doubles as the closing note's table: ``python -m pytest tests/test_bad_inputs.py -q -rA`` lists every
case, and ``SPLATENT_CORPUS_REPORT=FILE`` writes each case's message to FILE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from splatent_cli.main import app

MARKER_NAME = "pickle-ran-code"


class _Exploit:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def evil_pickle(path: Path, marker: Path, wrap=lambda x: x) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(wrap(_Exploit(str(marker)))))
    return path


def evil_torch_file(path: Path, marker: Path) -> Path:
    """A ``torch.save`` zip whose pickle would run code on a full (non weights-only) load."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": _Exploit(str(marker))}, path)
    return path


@dataclasses.dataclass
class Workspace:
    root: Path
    scene: Path
    out: Path
    latents: Path
    model: Path
    renders: Path
    dataset: Path
    enhanced: Path
    train_dataset: Path
    run: Path

    @property
    def enhancer(self) -> Path:
        return self.run / "enhancer"

    def copy(self, what: Path, to: Path) -> Path:
        dst = to / what.name
        shutil.copytree(what, dst, symlinks=True) if what.is_dir() else shutil.copy2(what, dst)
        return dst


def invoke(*args) -> "Result":
    """``splatent ARGS`` in this process, stdout and stderr apart (the logger re-attached to this run's stderr)."""
    logger = logging.getLogger("splatent")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    result = CliRunner().invoke(app, [str(a) for a in args])
    return Result(result.exit_code, result.stdout, result.stderr, result.exception)


@dataclasses.dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def ws(tmp_path_factory, tiny_pipeline) -> Workspace:
    from splatent_pipeline import run_pipeline
    from splatent_train.testing import build_degraded_dataset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("corpus")
    run_pipeline(tiny_pipeline(root), say=lambda _: None)
    out = root / "out"
    train_dataset = build_degraded_dataset(root / "train", n_views=12, width=64, height=48, top_k=3)
    r = invoke("train", "--dataset_path", train_dataset, "--output_dir", root / "run", "--base_model", "tiny",
               "--max_train_steps", 2, "--checkpointing_steps", 1, "--resolution", 32, "--cpu",
               "--lambda_lpips", 0, "--lambda_rgb", 0, "--logger", "none", "--eval_freq", 0, "--viz_freq", 0)
    assert r.code == 0, r.stderr
    return Workspace(root=root, scene=root / "scene", out=out, latents=out / "latents", model=out / "model",
                     renders=out / "renders" / "scene", dataset=out / "data" / "dataset.json",
                     enhanced=out / "enhanced", train_dataset=train_dataset, run=root / "run")


@dataclasses.dataclass
class Case:
    """One bad or odd input. ``build(ws, tmp) -> args`` writes what it needs under ``tmp``."""

    id: str
    build: Callable[[Workspace, Path], list]
    message: str  # a regular expression the failure line must match (searched, case-insensitive)
    code: int = 1
    protect: Callable[[Workspace, Path], list[Path]] | None = None  # files that must survive unchanged
    usage: bool = False  # refused by option parsing (Typer's box) rather than by the command
    per_file: bool = False  # a batch stage: a line per failed file names it, the last line sums up
    check: Callable[[Workspace, Path, Result], None] | None = None  # extra assertions


def _digest(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        files = [f for f in sorted(p.rglob("*")) if f.is_file()] if p.is_dir() else [p]
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


# ---------------------------------------------------------------------------------------------- builders


def a_file(tmp: Path, name: str = "taken", text: str = "keep me") -> Path:
    f = tmp / name
    f.write_text(text)
    return f


def scene_copy(ws: Workspace, tmp: Path) -> Path:
    """A copy of the synthetic scene (transforms.json + images) to damage."""
    return ws.copy(ws.scene, tmp)


def transforms(scene: Path) -> dict:
    return json.loads((scene / "transforms.json").read_text())


def write_transforms(scene: Path, data: dict) -> None:
    (scene / "transforms.json").write_text(json.dumps(data))


def first_image(scene: Path) -> Path:
    return scene / transforms(scene)["frames"][0]["file_path"]


def replace_image(scene: Path, make: Callable[[Image.Image], Image.Image], suffix: str = ".png") -> Path:
    """Replace the first frame's image with ``make(original)`` saved as ``suffix`` (the frame's path follows)."""
    path = first_image(scene)
    with Image.open(path) as im:
        im.load()
        new = make(im.convert("RGB"))
    out = path.with_suffix(suffix)
    new.save(out)
    if out != path:
        path.unlink()
        data = transforms(scene)
        data["frames"][0]["file_path"] = str(Path(data["frames"][0]["file_path"]).with_suffix(suffix))
        write_transforms(scene, data)
    return out


def extract_args(scene: Path, out: Path, *more) -> list:
    return ["extract", scene, "--codec", "pca", "--device", "cpu", "--workers", 0, "--output", out, *more]


def fit_args(ws: Workspace, out: Path, *more) -> list:
    return ["fit", ws.scene, "--latents", ws.latents, "--output", out, "--steps", 2, "--device", "cpu",
            "--init-points", 200, "--no-tensorboard", "--eval-every", 0, *more]


def model_copy(ws: Workspace, tmp: Path) -> Path:
    return ws.copy(ws.model, tmp)


def renders_copy(ws: Workspace, tmp: Path) -> Path:
    return ws.copy(ws.renders, tmp)


def dataset_copy(ws: Workspace, tmp: Path) -> Path:
    data = json.loads(ws.train_dataset.read_text())
    path = tmp / "dataset.json"
    path.write_text(json.dumps(data))
    return path


def train_args(dataset: Path, out: Path, *more) -> list:
    return ["train", "--dataset_path", dataset, "--output_dir", out, "--base_model", "tiny", "--max_train_steps", 1,
            "--resolution", 32, "--cpu", "--lambda_lpips", 0, "--lambda_rgb", 0, "--logger", "none", "--eval_freq", 0,
            "--viz_freq", 0, *more]


def enhance_args(ws: Workspace, out: Path, *more, model: Path | str | None = None) -> list:
    return ["enhance", "--dataset_path", ws.train_dataset, "--model_path", model or ws.enhancer, "--output_dir", out,
            "--device", "cpu", "--no_metrics", "--no-save-images", *more]


def run_copy(ws: Workspace, tmp: Path) -> Path:
    return ws.copy(ws.run, tmp)


def checkpoint_of(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("checkpoint-*"))[-1]


def corrupt(path: Path, data: bytes = b"\x00garbage\xff" * 8) -> Path:
    path.write_bytes(data)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def marker(tmp: Path) -> Path:
    return tmp / MARKER_NAME


def no_code_ran(ws: Workspace, tmp: Path, r: Result) -> None:
    assert not marker(tmp).exists(), "a pickle ran code"


# ---------------------------------------------------------------------------------------------- the corpus

def _llff_scene(tmp: Path, rows: int, images: int) -> Path:
    scene = tmp / "llff"
    (scene / "images").mkdir(parents=True)
    for i in range(images):
        Image.new("RGB", (32, 24), (i * 20 % 255, 90, 120)).save(scene / "images" / f"{i:03d}.png")
    np.save(scene / "poses_bounds.npy", np.zeros((rows, 17)))
    return scene


def _colmap_scene(tmp: Path) -> Path:
    scene = tmp / "colmap"
    (scene / "sparse" / "0").mkdir(parents=True)
    (scene / "images").mkdir()
    Image.new("RGB", (32, 24)).save(scene / "images" / "a.png")
    (scene / "sparse" / "0" / "cameras.bin").write_bytes(b"\x01\x00\x00")  # truncated
    (scene / "sparse" / "0" / "images.bin").write_bytes(b"")
    (scene / "sparse" / "0" / "points3D.bin").write_bytes(b"")
    return scene


def _edit_frames(edit: Callable[[dict], None]) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        scene = scene_copy(ws, tmp)
        data = transforms(scene)
        edit(data)
        write_transforms(scene, data)
        return extract_args(scene, tmp / "lat")
    return build


def _with_image(make: Callable[[Image.Image], Image.Image], *more, suffix: str = ".png") -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        scene = scene_copy(ws, tmp)
        replace_image(scene, make, suffix)
        return extract_args(scene, tmp / "lat", *more)
    return build


def _latents_copy_with(edit: Callable[[Path], None]) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        lat = ws.copy(ws.latents, tmp)
        edit(lat)
        return ["decode", lat, "--output", tmp / "png", "--device", "cpu"]
    return build


def _fit_with_latents(edit: Callable[[Path, Path], None]) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        lat = ws.copy(ws.latents, tmp)
        edit(lat, tmp)
        return ["fit", ws.scene, "--latents", lat, "--output", tmp / "model", "--steps", 2, "--device", "cpu",
                "--init-points", 200, "--no-tensorboard", "--eval-every", 0]
    return build


def _render_model_with(edit: Callable[[Path, Path], None], *more) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        model = model_copy(ws, tmp)
        edit(model, tmp)
        return ["render", model, "--output", tmp / "r", "--device", "cpu", *more]
    return build


def _view_model_with(edit: Callable[[Path, Path], None], *more) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        model = model_copy(ws, tmp)
        edit(model, tmp)
        return ["view", model, "--device", "cpu", "--port", 0, *more]
    return build


def _edit_fit(model: Path, **changes) -> None:
    info = json.loads((model / "fit.json").read_text())
    (model / "fit.json").write_text(json.dumps({**info, **changes}))


def _renders_with(edit: Callable[[Path, Path], None], *more) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        renders = renders_copy(ws, tmp)
        edit(renders, tmp)
        return ["dataset", "--out_path", renders, "--original_path", ws.scene, "--output", tmp / "d.json", *more]
    return build


def _dataset_with(edit: Callable[[dict, Path], dict | None]) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        data = json.loads(ws.train_dataset.read_text())
        data = edit(data, tmp) or data
        path = tmp / "dataset.json"
        path.write_text(json.dumps(data))
        return train_args(path, tmp / "run")
    return build


def _first_entry(data: dict) -> dict:
    return next(iter(data["train"].values()))


def _resume_with(edit: Callable[[Path, Path], None]) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        run = run_copy(ws, tmp)
        edit(checkpoint_of(run), tmp)
        return train_args(ws.train_dataset, run, "--resume", "latest", "--max_train_steps", 3)
    return build


def _enhancer_with(edit: Callable[[Path, Path], None], *more) -> Callable[[Workspace, Path], list]:
    def build(ws: Workspace, tmp: Path) -> list:
        ckpt = ws.copy(ws.enhancer, tmp)
        edit(ckpt, tmp)
        return enhance_args(ws, tmp / "enh", *more, model=ckpt)
    return build


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _cmyk(im: Image.Image) -> Image.Image:
    return im.convert("CMYK")


def _grey16(im: Image.Image) -> Image.Image:
    return Image.fromarray((np.asarray(im.convert("L"), dtype=np.uint16) * 257))


def _float_image(im: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)


def _rgba(im: Image.Image) -> Image.Image:
    return im.convert("RGBA")


def _palette(im: Image.Image) -> Image.Image:
    return im.convert("P", palette=Image.Palette.ADAPTIVE)


def _capped_top_k(ws: Workspace, tmp: Path, r: Result) -> None:
    """``--top_k 1000`` on a 10-view scene: every entry gets the references there are, and the manifest says
    what the entries hold next to what was asked."""
    entries = [e for split in json.loads((tmp / "d.json").read_text()).values() for e in split.values()]
    manifest = json.loads((tmp / "d.manifest.json").read_text())
    assert manifest["top_k_requested"] == 1000
    assert manifest["top_k"] == max(len(e["ref_features"]) for e in entries) < 10
    assert "fewer than 1000 candidate references" in r.stderr


def _extracted_like(ws: Workspace, tmp: Path, r: Result) -> None:
    """An odd image mode was converted: the latents exist, one per image, and the first is finite."""
    from splatent_latents import load_latent

    latents = sorted((tmp / "lat").glob("*.pt"))
    assert len(latents) == 10
    assert torch.isfinite(load_latent(latents[0])).all()


def _grey16_not_white(ws: Workspace, tmp: Path, r: Result) -> None:
    from splatent_latents import codec_from_manifest, load_latent

    codec = codec_from_manifest(tmp / "lat")
    img = codec.decode(load_latent(sorted((tmp / "lat").glob("*.pt"))[0])[None])[0]
    assert img.mean() < 0.9, "a 16-bit image decoded as white"


CASES: list[Case] = [
    # --- scene formats and poses (scene inspect / extract read them)
    Case("scene-missing", lambda ws, t: ["scene", "inspect", t / "nowhere"], r"nowhere.*(no such|does not exist|not found)"),
    Case("scene-empty-folder", lambda ws, t: ["scene", "inspect", t], r"(no|neither).*(transforms\.json|poses|COLMAP)"),
    Case("scene-is-a-file", lambda ws, t: ["scene", "inspect", a_file(t)], r"taken"),
    Case("transforms-invalid-json", lambda ws, t: (lambda s: (_write(s / "transforms.json", "{ not json"), ["scene", "inspect", s])[1])(scene_copy(ws, t)),
         r"transforms\.json.*(JSON|json)"),
    Case("transforms-frames-not-a-list", _edit_frames(lambda d: d.update(frames={"a": 1})), r"frames"),
    Case("transforms-no-frames", _edit_frames(lambda d: d.update(frames=[])), r"(no frames|frames.*empty|no images|0 frames)"),
    Case("transforms-frame-without-pose", _edit_frames(lambda d: d["frames"][0].pop("transform_matrix")), r"transform_matrix"),
    Case("transforms-pose-not-4x4", _edit_frames(lambda d: d["frames"][0].update(transform_matrix=[[1, 0], [0, 1]])), r"transform_matrix|4.?x.?4|pose"),
    Case("transforms-pose-nan", _edit_frames(lambda d: d["frames"][0].update(transform_matrix=[[float("nan")] * 4] * 4)), r"(nan|finite|transform_matrix)"),
    Case("transforms-no-intrinsics", _edit_frames(lambda d: [f.pop(k, None) for f in d["frames"] for k in ("fl_x", "fl_y")] and d.pop("camera_angle_x", None)),
         r"(focal|fl_x|camera_angle_x|intrinsic)"),
    Case("transforms-all-images-missing", _edit_frames(lambda d: [f.update(file_path=f"images/gone_{i}.png") for i, f in enumerate(d["frames"])]),
         r"(no image|missing|not found|none of)"),
    Case("transforms-fisheye-model", _edit_frames(lambda d: d.update(camera_model="EQUIRECTANGULAR")), r"EQUIRECTANGULAR"),
    Case("transforms-mask-missing", _edit_frames(lambda d: d["frames"][0].update(mask_path="masks/gone.png")), r"mask.*gone\.png.*does not exist"),
    Case("transforms-applied-transform-singular", _edit_frames(lambda d: d.update(applied_transform=[[0.0] * 4] * 3)),
         r"applied_transform must be a finite, invertible"),
    Case("llff-row-count", lambda ws, t: ["scene", "inspect", _llff_scene(t, rows=3, images=5)], r"poses_bounds\.npy.*3.*5|5.*3"),
    Case("llff-wrong-columns", lambda ws, t: (lambda s: (np.save(s / "poses_bounds.npy", np.zeros((5, 15))), ["scene", "inspect", s])[1])(_llff_scene(t, 5, 5)),
         r"poses_bounds\.npy.*(17|column|shape)"),
    Case("llff-pickled-object-array", lambda ws, t: (lambda s: (np.save(s / "poses_bounds.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True), ["scene", "inspect", s])[1])(_llff_scene(t, 5, 5)),
         r"poses_bounds\.npy.*(pickle|object|numbers)"),
    Case("llff-not-npy", lambda ws, t: (lambda s: (corrupt(s / "poses_bounds.npy"), ["scene", "inspect", s])[1])(_llff_scene(t, 5, 5)),
         r"poses_bounds\.npy"),
    Case("colmap-truncated-cameras-bin", lambda ws, t: ["scene", "inspect", _colmap_scene(t)], r"COLMAP model .*sparse/0.*re-export"),
    Case("undistort-output-is-a-file", lambda ws, t: ["scene", "undistort", ws.scene, "-o", a_file(t)], r"taken.*(file|exists)",
         protect=lambda ws, t: [t / "taken"]),
    Case("sfm-no-images", lambda ws, t: (lambda d: (d.mkdir(), ["scene", "sfm", d, "-o", t / "sfm"])[1])(t / "photos"), r"(no (photos|images)|image)"),
    Case("sfm-one-image", lambda ws, t: (lambda d: (d.mkdir(), Image.new("RGB", (32, 24)).save(d / "a.png"), ["scene", "sfm", d, "-o", t / "sfm"])[2])(t / "photos"),
         r"(at least|too few|one photo|1 (photo|image))"),

    # --- extract
    Case("extract-scene-missing", lambda ws, t: extract_args(t / "nowhere", t / "lat"), r"nowhere"),
    Case("extract-output-is-a-file", lambda ws, t: extract_args(ws.scene, a_file(t)), r"taken.*(file|exists)",
         protect=lambda ws, t: [t / "taken"]),
    Case("extract-output-under-a-file", lambda ws, t: extract_args(ws.scene, a_file(t) / "sub"), r"taken.*(file|folder)",
         protect=lambda ws, t: [t / "taken"]),
    Case("extract-unknown-codec", lambda ws, t: ["extract", ws.scene, "--codec", "jpeg", "--output", t / "lat"], r"jpeg"),
    Case("extract-batch-size-zero", lambda ws, t: extract_args(ws.scene, t / "lat", "--batch_size", 0), r"batch", code=2, usage=True),
    Case("extract-negative-workers", lambda ws, t: extract_args(ws.scene, t / "lat", "--workers", -1), r"workers", code=2, usage=True),
    Case("extract-cuda-without-gpu", lambda ws, t: extract_args(ws.scene, t / "lat", "--device", "cuda"), r"cuda"),
    Case("extract-bad-device", lambda ws, t: extract_args(ws.scene, t / "lat", "--device", "tpu"), r"tpu"),
    Case("extract-bad-dtype", lambda ws, t: extract_args(ws.scene, t / "lat", "--dtype", "float8"), r"float8"),
    Case("extract-images-folder-missing", lambda ws, t: extract_args(ws.scene, t / "lat", "--images", "images_8"), r"images_8"),
    Case("extract-corrupt-image", lambda ws, t: (lambda s: (corrupt(first_image(s)), extract_args(s, t / "lat", "--fail-fast"))[1])(scene_copy(ws, t)),
         r"0000\.png"),
    Case("extract-truncated-image", lambda ws, t: (lambda s: (truncate(first_image(s), 0.3), extract_args(s, t / "lat", "--fail-fast"))[1])(scene_copy(ws, t)),
         r"0000\.png"),
    Case("extract-float-image", _with_image(_float_image, "--fail-fast", suffix=".tif"), r"0000.*(float|mode)"),
    Case("extract-grey16-image", _with_image(_grey16), r"", code=0, check=_grey16_not_white),
    Case("extract-cmyk-image", _with_image(_cmyk, suffix=".jpg"), r"", code=0, check=_extracted_like),
    Case("extract-rgba-image", _with_image(_rgba), r"", code=0, check=_extracted_like),
    Case("extract-palette-image", _with_image(_palette), r"", code=0, check=_extracted_like),
    Case("extract-sample-with-pca", lambda ws, t: extract_args(ws.scene, t / "lat", "--sample"), r"sample"),
    Case("extract-into-other-codec-latents", lambda ws, t: (lambda lat: ["extract", ws.scene, "--codec", "tiny-random", "--device", "cpu", "--workers", 0, "--output", lat])(ws.copy(ws.latents, t)),
         r"(pca|codec)", protect=lambda ws, t: [t / "latents"]),

    # --- decode
    Case("decode-no-manifest", _latents_copy_with(lambda lat: (lat / "manifest.json").unlink()), r"(manifest|--codec)"),
    Case("decode-manifest-invalid-json", _latents_copy_with(lambda lat: _write(lat / "manifest.json", "{")), r"(manifest|JSON)"),
    Case("decode-latent-corrupt", _latents_copy_with(lambda lat: corrupt(lat / "0000.pt")), r"0000\.pt", code=1, per_file=True),
    Case("decode-latent-malicious-pickle", _latents_copy_with(lambda lat: evil_torch_file(lat / "0000.pt", lat.parent / MARKER_NAME)),
         r"0000\.pt", check=no_code_ran, per_file=True),
    Case("decode-latent-wrong-shape", _latents_copy_with(lambda lat: torch.save(torch.zeros(7, 3), lat / "0000.pt")), r"0000\.pt", per_file=True),
    Case("decode-basis-missing", _latents_copy_with(lambda lat: (lat / "pca_basis.safetensors").unlink()), r"pca_basis"),
    Case("decode-basis-corrupt", _latents_copy_with(lambda lat: corrupt(lat / "pca_basis.safetensors")), r"pca_basis|safetensors"),
    Case("decode-output-is-a-file", lambda ws, t: ["decode", ws.latents, "--output", a_file(t), "--device", "cpu"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("decode-empty-folder", lambda ws, t: (lambda d: (d.mkdir(), ["decode", d, "--output", t / "png", "--codec", "taef2"])[1])(t / "empty"),
         r"(no latents|no \.pt|empty)"),

    # --- fit
    Case("fit-scene-missing", lambda ws, t: ["fit", t / "nowhere", "--output", t / "m", "--device", "cpu"], r"nowhere"),
    Case("fit-latents-missing", lambda ws, t: ["fit", ws.scene, "--latents", t / "nolat", "--output", t / "m", "--device", "cpu"], r"nolat"),
    Case("fit-output-is-a-file", lambda ws, t: fit_args(ws, a_file(t)), r"taken", protect=lambda ws, t: [t / "taken"]),
    Case("fit-output-under-a-file", lambda ws, t: fit_args(ws, a_file(t) / "m"), r"taken", protect=lambda ws, t: [t / "taken"]),
    Case("fit-steps-zero", lambda ws, t: fit_args(ws, t / "m", "--steps", 0), r"steps", code=2, usage=True),
    Case("fit-unknown-protocol", lambda ws, t: fit_args(ws, t / "m", "--protocol", "fancy"), r"fancy"),
    Case("fit-sparse-too-few-views", lambda ws, t: fit_args(ws, t / "m", "--protocol", "dense"), r"(30|views)"),
    Case("fit-unknown-strategy", lambda ws, t: fit_args(ws, t / "m", "--strategy", "magic"), r"magic"),
    Case("fit-mcmc-on-cpu", lambda ws, t: fit_args(ws, t / "m", "--strategy", "mcmc"), r"mcmc"),
    Case("fit-gsplat-without-cuda", lambda ws, t: fit_args(ws, t / "m", "--backend", "gsplat"), r"gsplat"),
    Case("fit-unknown-target", lambda ws, t: fit_args(ws, t / "m", "--target", "depth"), r"depth"),
    Case("fit-existing-fit-without-overwrite", lambda ws, t: fit_args(ws, model_copy(ws, t)), r"(--overwrite|--resume)",
         protect=lambda ws, t: [t / "model"]),
    Case("fit-resume-corrupt-checkpoint", lambda ws, t: (lambda m: ([corrupt(p) for p in (m / "checkpoints").glob("*.pt")], fit_args(ws, m, "--resume", "--steps", 50))[1])(model_copy(ws, t)),
         r"step_000040\.pt"),
    Case("fit-resume-malicious-checkpoint", lambda ws, t: (lambda m: ([evil_torch_file(p, t / MARKER_NAME) for p in (m / "checkpoints").glob("*.pt")], fit_args(ws, m, "--resume", "--steps", 50))[1])(model_copy(ws, t)),
         r"step_000040\.pt", check=no_code_ran),
    Case("fit-latents-of-other-scene", _fit_with_latents(lambda lat, t: [p.unlink() for p in lat.glob("000[0-4].pt")]), r"(0000|latent)"),
    Case("fit-latent-wrong-size", _fit_with_latents(lambda lat, t: torch.save(torch.zeros(4, 3, 3), lat / "0001.pt")), r"0001"),

    # --- render
    Case("render-model-missing", lambda ws, t: ["render", t / "nomodel", "--device", "cpu"], r"nomodel"),
    Case("render-no-fit-json", _render_model_with(lambda m, t: (m / "fit.json").unlink()), r"fit\.json"),
    Case("render-fit-json-invalid", _render_model_with(lambda m, t: _write(m / "fit.json", "[1, 2")), r"(fit\.json|JSON)"),
    Case("render-ply-corrupt", _render_model_with(lambda m, t: corrupt(m / "gaussians.ply")), r"gaussians\.ply"),
    Case("render-ply-truncated", _render_model_with(lambda m, t: truncate(m / "gaussians.ply", 0.6)), r"gaussians\.ply"),
    Case("render-output-is-a-file", lambda ws, t: ["render", ws.model, "--output", a_file(t), "--device", "cpu"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("render-scene-moved", _render_model_with(lambda m, t: None, "--scene", "/nonexistent/scene"), r"nonexistent"),
    Case("render-ply-without-scene", lambda ws, t: ["render", (shutil.copy(ws.model / "gaussians.ply", t / "lone.ply"), t / "lone.ply")[1], "--output", t / "r", "--device", "cpu"],
         r"no fit\.json: pass the scene.*--scene"),
    Case("render-enhancer-without-path", lambda ws, t: ["render", ws.model, "--output", t / "r", "--enhancer", "tiny", "--device", "cpu"], r"--path"),
    Case("render-enhancer-missing", lambda ws, t: ["render", ws.model, "--output", t / "r", "--path", "--path-frames", 2, "--enhancer", t / "nockpt", "--device", "cpu"], r"nockpt"),
    Case("render-path-frames-one", lambda ws, t: ["render", ws.model, "--output", t / "r", "--path", "--path-frames", 1], r"path.frames", code=2, usage=True),
    # --- view: every refusal comes before the server listens
    Case("view-model-missing", lambda ws, t: ["view", t / "nomodel", "--device", "cpu"], r"nomodel"),
    Case("view-no-fit-json", _view_model_with(lambda m, t: (m / "fit.json").unlink()), r"fit\.json"),
    Case("view-fit-json-invalid", _view_model_with(lambda m, t: _write(m / "fit.json", "[1, 2")), r"(fit\.json|JSON)"),
    Case("view-rgb-fit", _view_model_with(lambda m, t: _edit_fit(m, target="rgb")), r"RGB fit"),
    Case("view-latents-gone", _view_model_with(lambda m, t: _edit_fit(m, latents=str(t / "gone"))), r"latents .*gone"),
    Case("view-ply-corrupt", _view_model_with(lambda m, t: corrupt(m / "gaussians.ply")), r"gaussians\.ply"),
    Case("view-enhancer-missing", _view_model_with(lambda m, t: None, "--enhancer", "/nonexistent/nockpt"), r"nockpt"),
    Case("view-mode-without-enhancer", _view_model_with(lambda m, t: None, "--mode", "enhanced"), r"needs an enhancer"),
    Case("view-unknown-mode", _view_model_with(lambda m, t: None, "--mode", "wireframe", "--enhancer", "tiny"), r"wireframe"),
    Case("view-unknown-view", _view_model_with(lambda m, t: None, "--view", "9999"), r"--view 9999: the fit has no such view"),
    Case("view-port-out-of-range", _view_model_with(lambda m, t: None, "--port", 70000), r"--port"),

    # --- export-ply
    Case("export-ply-model-missing", lambda ws, t: ["export-ply", t / "nomodel", t / "o.ply", "--device", "cpu"], r"nomodel"),
    Case("export-ply-unknown-format", lambda ws, t: ["export-ply", ws.model, t / "o.ply", "--format", "obj", "--device", "cpu"], r"obj"),
    Case("export-ply-not-a-ply", lambda ws, t: ["export-ply", ws.model, t / "o.txt", "--device", "cpu"], r"o\.txt.*\.ply"),
    Case("export-ply-latents-gone", lambda ws, t: ["export-ply", ws.model, t / "o.ply", "--latents", t / "gone", "--device", "cpu"], r"gone.*--latents"),
    Case("export-ply-frame-original-without-applied", lambda ws, t: ["export-ply", ws.model, t / "o.ply", "--frame", "original", "--device", "cpu"],
         r"no applied_transform.*drop --frame original"),
    Case("export-ply-inria", lambda ws, t: ["export-ply", ws.model, t / "o.ply", "--device", "cpu"], r"", code=0,
         check=lambda ws, t, r: __import__("plyfile").PlyData.read(str(t / "o.ply")).elements[0].data.dtype.itemsize == 248 or pytest.fail("not 248 bytes")),

    # --- dataset
    Case("dataset-renders-missing", lambda ws, t: ["dataset", "--out_path", t / "norenders", "--original_path", ws.scene, "--output", t / "d.json"], r"norenders"),
    Case("dataset-scene-missing", lambda ws, t: ["dataset", "--out_path", ws.renders, "--original_path", t / "noscene", "--output", t / "d.json"], r"noscene"),
    Case("dataset-negative-top-k", lambda ws, t: ["dataset", "--out_path", ws.renders, "--original_path", ws.scene, "--output", t / "d.json", "--top_k", -1], r"top_k"),
    Case("dataset-output-under-a-file", lambda ws, t: ["dataset", "--out_path", ws.renders, "--original_path", ws.scene, "--output", a_file(t) / "d.json"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("dataset-output-is-a-folder", lambda ws, t: ["dataset", "--out_path", ws.renders, "--original_path", ws.scene, "--output", t], r"folder"),
    Case("dataset-no-train-gt", _renders_with(lambda r, t: shutil.rmtree(r / "train_gt")), r"train_gt"),
    Case("dataset-empty-renders", lambda ws, t: (lambda d: (d.mkdir(), ["dataset", "--out_path", d, "--original_path", ws.scene, "--output", t / "d.json"])[1])(t / "empty"),
         r"(nvs|render)"),
    Case("dataset-protocol-mismatch", _renders_with(lambda r, t: None, "--protocol", "sparse"), r"(llff|sparse)"),
    Case("dataset-top-k-beyond-the-views", _renders_with(lambda r, t: None, "--top_k", 1000), r"", code=0, check=_capped_top_k),
    Case("dataset-unknown-protocol", _renders_with(lambda r, t: None, "--protocol", "fancy"), r"unknown view protocol 'fancy'"),

    # --- train
    Case("train-dataset-missing", lambda ws, t: train_args(t / "none.json", t / "run"), r"none\.json"),
    Case("train-dataset-invalid-json", lambda ws, t: train_args((lambda p: (p.write_text("{"), p)[1])(t / "d.json"), t / "run"), r"(d\.json|JSON)"),
    Case("train-dataset-not-a-dataset", lambda ws, t: train_args((lambda p: (p.write_text("[1, 2, 3]"), p)[1])(t / "d.json"), t / "run"), r"d\.json"),
    Case("train-dataset-no-train-entries", _dataset_with(lambda d, t: {"train": {}, "test": d["test"]}), r"no 'train' entries"),
    Case("train-dataset-files-missing", _dataset_with(lambda d, t: [e.update(feature=str(t / "gone" / "x.pt"), target_feature=str(t / "gone" / "y.pt"), ref_features=[str(t / "gone" / "z.pt")] * 3) for e in d["train"].values()] and None),
         r"entr(y|ies) .*feature.*gone.* does not exist"),  # the test entries still name the codec
    Case("train-top-k-more-than-references", lambda ws, t: train_args(ws.train_dataset, t / "run", "--top_k", 5), r"(5|references|top_k)"),
    Case("train-bad-top-k", lambda ws, t: train_args(ws.train_dataset, t / "run", "--top_k", 2), r"top_k|2"),
    Case("train-output-is-a-file", lambda ws, t: train_args(ws.train_dataset, a_file(t)), r"taken", protect=lambda ws, t: [t / "taken"]),
    Case("train-unknown-base-model", lambda ws, t: ["train", *train_args(ws.train_dataset, t / "run")[1:6], "nobody/no-such-model", *train_args(ws.train_dataset, t / "run")[7:]],
         r"no-such-model"),
    Case("train-bad-mixed-precision", lambda ws, t: train_args(ws.train_dataset, t / "run", "--mixed_precision", "fp8"), r"fp8"),
    Case("train-resolution-not-multiple-of-8", lambda ws, t: train_args(ws.train_dataset, t / "run", "--resolution", 30), r"(resolution|8)"),
    Case("train-bad-lr-scheduler", lambda ws, t: train_args(ws.train_dataset, t / "run", "--lr_scheduler", "zigzag"), r"zigzag"),
    Case("train-resume-nothing", lambda ws, t: train_args(ws.train_dataset, t / "run", "--resume", t / "nockpt"), r"nockpt"),
    Case("train-resume-malicious-optimizer", _resume_with(lambda c, t: evil_pickle(c / "optimizer.bin", t / MARKER_NAME)),
         r"optimizer\.bin", check=no_code_ran, protect=lambda ws, t: [t / "run" / "metrics.jsonl"]),
    Case("train-resume-malicious-random-states", _resume_with(lambda c, t: evil_pickle(c / "random_states_0.pkl", t / MARKER_NAME)),
         r"random_states_0\.pkl", check=no_code_ran),
    Case("train-resume-corrupt-weights", _resume_with(lambda c, t: [corrupt(p) for p in c.glob("*.safetensors")]), r"safetensors"),
    Case("train-init-from-other-channels", lambda ws, t: train_args(ws.train_dataset, t / "run", "--init_from", "tiny", "--codec", "taef2"),
         r"(channel|codec)"),

    # --- enhance
    Case("enhance-no-input", lambda ws, t: ["enhance", "--model_path", ws.enhancer, "--output_dir", t / "e"], r"(--input_image|--dataset_path)"),
    Case("enhance-checkpoint-missing", lambda ws, t: enhance_args(ws, t / "e", model=t / "nockpt"), r"nockpt"),
    Case("enhance-checkpoint-corrupt-weights", _enhancer_with(lambda c, t: corrupt(c / "unet" / "diffusion_pytorch_model.safetensors")), r"diffusion_pytorch_model\.safetensors"),
    Case("enhance-checkpoint-config-invalid", _enhancer_with(lambda c, t: _write(c / "config.json", "{")), r"config\.json"),
    Case("enhance-checkpoint-config-missing-keys", _enhancer_with(lambda c, t: _write(c / "config.json", json.dumps({"_class_name": "SplatentEnhancer", "top_k": 3}))),
         r"(config\.json|unet)"),
    Case("enhance-top-k-mismatch", lambda ws, t: enhance_args(ws, t / "e", "--top_k", 1), r"(top_k|3 references)"),
    Case("enhance-malicious-pkl", lambda ws, t: enhance_args(ws, t / "e", model=evil_pickle(t / "model.pkl", t / MARKER_NAME)),
         r"(pickle|model\.pkl)", check=no_code_ran),
    Case("enhance-output-is-a-file", lambda ws, t: enhance_args(ws, a_file(t)), r"taken", protect=lambda ws, t: [t / "taken"]),
    Case("enhance-dataset-files-missing", lambda ws, t: ["enhance", "--dataset_path", _dataset_with(lambda d, tt: [e.update(feature=str(tt / "gone" / "x.pt")) for e in d["test"].values()] and None)(ws, t)[2], "--model_path", ws.enhancer, "--output_dir", t / "e", "--device", "cpu", "--no_metrics", "--no-save-images"],
         r"gone"),
    Case("enhance-input-missing", lambda ws, t: ["enhance", "--input_image", t / "noimg.png", "--ref_image", t / "noref.png", "--model_path", ws.enhancer, "--output_dir", t / "e"], r"noimg"),
    Case("enhance-unknown-split", lambda ws, t: enhance_args(ws, t / "e", "--split", "validation"), r"validation"),

    # --- eval
    Case("eval-results-missing", lambda ws, t: ["eval", t / "nores", "--no-lpips", "--device", "cpu"], r"nores"),
    Case("eval-output-is-a-file", lambda ws, t: ["eval", ws.out, "--output", a_file(t), "--no-lpips", "--device", "cpu"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("eval-enhanced-empty", lambda ws, t: (lambda d: (d.mkdir(), ["eval", ws.out, "--enhanced", d, "--output", t / "ev", "--no-lpips", "--device", "cpu"])[1])(t / "enh"),
         r"(enh|enhanced)"),

    # --- pipeline, convert-ckpt, demo
    Case("pipeline-scene-missing", lambda ws, t: ["pipeline", "--scene_path", t / "noscene", "--output_dir", t / "o", "--device", "cpu"], r"noscene"),
    Case("pipeline-output-is-a-file", lambda ws, t: ["pipeline", "--scene_path", ws.scene, "--output_dir", a_file(t), "--device", "cpu"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("pipeline-scenes-folder-empty", lambda ws, t: (lambda d: (d.mkdir(), ["pipeline", "--scenes", d, "--output_dir", t / "o", "--device", "cpu"])[1])(t / "none"),
         r"(no scenes|none)"),
    Case("pipeline-both-scene-and-scenes", lambda ws, t: ["pipeline", "--scene_path", ws.scene, "--scenes", ws.root, "--output_dir", t / "o"], r"--scenes"),
    Case("pipeline-unknown-stage", lambda ws, t: ["pipeline", "--scene_path", ws.scene, "--output_dir", t / "o", "--from", "paint"], r"paint"),
    Case("pipeline-unknown-pairs", lambda ws, t: ["pipeline", "--scenes", ws.root, "--output_dir", t / "o", "--pairs", "many"], r"many"),
    Case("convert-ckpt-missing", lambda ws, t: ["convert-ckpt", t / "none.pkl", t / "out"], r"none\.pkl"),
    Case("convert-ckpt-malicious", lambda ws, t: ["convert-ckpt", evil_pickle(t / "m.pkl", t / MARKER_NAME), t / "out"], r"(pickle|m\.pkl)", check=no_code_ran),
    Case("convert-ckpt-not-a-pickle", lambda ws, t: ["convert-ckpt", corrupt(t / "m.pkl"), t / "out"], r"m\.pkl"),
    Case("demo-output-is-a-file", lambda ws, t: ["demo", "--output-dir", a_file(t), "--quick", "--device", "cpu"], r"taken",
         protect=lambda ws, t: [t / "taken"]),
    Case("demo-unknown-codec", lambda ws, t: ["demo", "--output-dir", t / "d", "--codec", "sd-vae", "--quick"], r"sd-vae"),
]

_REPORT = os.environ.get("SPLATENT_CORPUS_REPORT")


def test_the_corpus_is_large_and_its_names_unique():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, ws: Workspace, tmp_path: Path):
    args = case.build(ws, tmp_path)
    protected = _digest(case.protect(ws, tmp_path)) if case.protect else {}
    shared = _digest([ws.out, ws.run])
    r = invoke(*args)
    assert r.exception is None or isinstance(r.exception, SystemExit), f"escaped: {r.exception!r}\n{r.stderr}"
    assert "Traceback" not in r.stderr + r.stdout
    assert r.code == case.code, f"exit {r.code}, expected {case.code}: {r.stderr}"
    if case.code != 0:
        line = r.last_line
        if case.usage:
            assert "Invalid value" in r.stderr or "Error" in r.stderr
            assert re.search(case.message, r.stderr, re.I), r.stderr
        else:
            assert line.startswith(f"splatent {args[0]}") and ": " in line, r.stderr
            if case.per_file:
                assert re.search(r"failed", line) and re.search(case.message, r.stderr, re.I), r.stderr
            else:
                assert re.search(case.message, line, re.I), line
    if case.check:
        case.check(ws, tmp_path, r)
    assert _digest(list(protected and map(Path, protected))) == protected
    assert _digest([ws.out, ws.run]) == shared, "the shared workspace changed"
    if _REPORT:
        with open(_REPORT, "a") as f:
            line = r.last_line
            if case.usage:  # Typer's box: the line that says what is wrong
                box = [x.strip(" │") for x in r.stderr.splitlines() if x.startswith("│")]
                line = " ".join(" ".join(box).split()) or line
            f.write(json.dumps({"case": case.id, "exit": r.code, "message": line if case.code else "ok"}) + "\n")
