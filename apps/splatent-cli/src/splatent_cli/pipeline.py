"""``splatent pipeline``: every stage on one scene, in-process and resumable.

The original ``unified_pipeline.py`` chained scripts as subprocesses; here each
stage is a function call, and ``OUTPUT/pipeline.json`` records, per stage, a key
(a hash of the options it depends on and of the stages before it). A re-run
skips a stage whose key is unchanged and whose outputs exist; ``--from STAGE``
runs that stage and every later one again; ``stop_after`` (API only) ends the run
after that stage. Layout of ``OUTPUT``::

    undistorted/        pinhole copy of a distorted scene (skipped for pinhole scenes)
    latents/            extract: <stem>.pt + manifest.json
    model/              fit: point_cloud.ply, fit.json, checkpoints
    renders/<scene>/    render: nvs/ nvs_gt/ train/ train_gt/
    data/dataset.json   dataset: each test render with its top-k training views
    enhanced/           enhance: <stem>.pt, <stem>.png, metrics.json
    eval/               eval: metrics.json, metrics.md, sheets/, report.html

Stage order puts undistortion first: latents must be encoded from the
undistorted images that the pinhole rasteriser models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from splatent_data import SplatentError, atomic_write_json, load_scene

logger = logging.getLogger("splatent")

STAGES = ("undistort", "extract", "fit", "render", "dataset", "enhance", "eval")


@dataclass
class PipelineConfig:
    """Options of ``splatent pipeline`` (the original ``unified_pipeline.py``'s and ours)."""

    scene_path: Path
    output_dir: Path
    model_splatent_path: str | None = None
    codec: str = "sd-vae"
    vae_model: str | None = None
    images: str | None = None
    top_k: int = 3
    steps: int = 10_000
    fit_options: dict[str, Any] = field(default_factory=dict)
    save_images: bool = False
    backend: str = "auto"
    device: str = "auto"
    lpips: bool = True
    start_from: str | None = None
    stop_after: str | None = None
    benchmark: bool = False
    report_title: str | None = None
    report_notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.scene_path, self.output_dir = Path(self.scene_path), Path(self.output_dir)

    def stage_options(self, stage: str) -> dict[str, Any]:
        """The options a stage's result depends on (its cache key)."""
        return {
            "undistort": {"scene": str(self.scene_path.resolve()), "images": self.images},
            "extract": {"codec": self.codec, "model": self.vae_model},
            "fit": {"steps": self.steps, "options": self.fit_options, "backend": self.backend},
            "render": {"save_images": self.save_images},
            "dataset": {"top_k": self.top_k, "benchmark": self.benchmark},
            "enhance": {"model": self.model_splatent_path},
            "eval": {"lpips": self.lpips, "title": self.report_title, "notes": list(self.report_notes)},
        }[stage]


@dataclass
class PipelineResult:
    output_dir: Path
    ran: list[str]
    skipped: list[str]
    seconds: dict[str, float]
    stopped_before: str | None = None  # the first stage not run (no enhancer, or ``stop_after``)
    report: Path | None = None
    means: dict[str, Any] | None = None


def stage_key(options: dict[str, Any], previous: str) -> str:
    """A stage's cache key: its options chained to the key of the stage before it."""
    return hashlib.sha256((previous + json.dumps(options, sort_keys=True, default=str)).encode()).hexdigest()[:16]


class StageRecord:
    """A JSON file (``pipeline.json``, ``demo.json``) of which stages finished with which key, and how long
    they took; :meth:`run` runs a stage unless it is up to date."""

    def __init__(self, path: Path, start_from: str | None) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
        if start_from is not None:
            if start_from not in STAGES:
                raise SplatentError(f"--from must be one of {', '.join(STAGES)}, got {start_from!r}")
            for stage in STAGES[STAGES.index(start_from):]:
                self.data["stages"].pop(stage, None)

    def done(self, stage: str, key: str) -> bool:
        return self.data["stages"].get(stage, {}).get("key") == key

    def finish(self, stage: str, key: str, seconds: float, info: dict[str, Any]) -> None:
        self.data["stages"][stage] = {"key": key, "seconds": round(seconds, 3), **info}
        atomic_write_json(self.path, self.data)

    def run(self, stage: str, key: str, run: Callable[[], dict[str, Any] | None], outputs: Path,
            say: Callable[[str], None]) -> float | None:
        """Run ``stage`` unless it finished with ``key`` and ``outputs`` exist; its seconds, ``None`` if skipped."""
        if self.done(stage, key) and outputs.exists():
            say(f"[{stage}] up to date, skipped")
            return None
        say(f"[{stage}] running")
        t0 = time.perf_counter()
        info = run() or {}
        seconds = time.perf_counter() - t0
        self.finish(stage, key, seconds, info)
        say(f"[{stage}] done in {seconds:.1f} s")
        return seconds


def run_pipeline(cfg: PipelineConfig, say: Callable[[str], None] = print) -> PipelineResult:
    """Run (or resume) every stage on ``cfg.scene_path``; see the module doc."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.stop_after is not None and cfg.stop_after not in STAGES:
        raise SplatentError(f"stop_after must be one of {', '.join(STAGES)}, got {cfg.stop_after!r}")
    record = StageRecord(out / "pipeline.json", cfg.start_from)
    record.data["config"] = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    scene = load_scene(cfg.scene_path, images=cfg.images)
    name = Path(cfg.scene_path).resolve().name
    result = PipelineResult(out, [], [], {})
    previous = ""
    paths = {
        "scene": out / "undistorted" if not scene.is_pinhole else Path(cfg.scene_path),
        "latents": out / "latents", "model": out / "model", "renders": out / "renders",
        "dataset": out / "data" / "dataset.json", "enhanced": out / "enhanced", "eval": out / "eval",
    }

    def stage(name_: str, run: Callable[[], dict[str, Any]], outputs: Path) -> None:
        nonlocal previous
        if result.stopped_before is None and cfg.stop_after and STAGES.index(name_) > STAGES.index(cfg.stop_after):
            result.stopped_before = name_
        if result.stopped_before is not None:
            return
        previous = stage_key(cfg.stage_options(name_), previous)
        seconds = record.run(name_, previous, run, outputs, say)
        if seconds is None:
            result.skipped.append(name_)
        else:
            result.ran.append(name_)
            result.seconds[name_] = seconds

    if not scene.is_pinhole:
        from splatent_data import undistort_scene

        stage("undistort", lambda: {"images": len(undistort_scene(scene, paths["scene"]))}, paths["scene"])

    def extract() -> dict[str, Any]:
        from splatent_latents import extract_latents

        r = extract_latents(paths["scene"], output=paths["latents"].resolve(), codec=cfg.codec, model=cfg.vae_model,
                            images=None if not scene.is_pinhole else cfg.images, device=cfg.device, progress=True)
        return {"written": len(r.written), "skipped": len(r.skipped)}

    stage("extract", extract, paths["latents"])

    def fit() -> dict[str, Any]:
        from splatent_splat import FitConfig, fit_scene

        fcfg = FitConfig(steps=cfg.steps, latents=str(paths["latents"].resolve()), backend=cfg.backend,
                         device=cfg.device, images=None if not scene.is_pinhole else cfg.images, **cfg.fit_options)
        r = fit_scene(paths["scene"], paths["model"], fcfg, overwrite=True)
        return {"gaussians": r.num_gaussians, "steps_per_second": r.steps_per_second, "test": r.test}

    stage("fit", fit, paths["model"])

    def render() -> dict[str, Any]:
        from splatent_splat import render_model

        r = render_model(paths["model"], paths["renders"] / name, save_images=cfg.save_images,
                         backend=cfg.backend, device=cfg.device)
        return {"counts": r.counts}

    stage("render", render, paths["renders"] / name)

    def dataset() -> dict[str, Any]:
        from splatent_data import build_dataset, write_dataset_json

        entries = build_dataset(paths["renders"] / name, paths["scene"], top_k=cfg.top_k, benchmark=True)
        write_dataset_json(paths["dataset"], entries)
        return {"entries": len(entries)}

    stage("dataset", dataset, paths["dataset"])

    if cfg.stop_after in STAGES[:STAGES.index("dataset") + 1]:
        result.stopped_before = result.stopped_before or "enhance"
        return result
    if not cfg.model_splatent_path:
        result.stopped_before = "enhance"
        say(f"no enhancer checkpoint: renders are in {paths['renders'] / name} and the dataset in {paths['dataset']}. "
            f"Pass --model_splatent_path (a `splatent train` output folder, an original .pkl, or `tiny` for a "
            f"mechanics check), or train one: splatent train --dataset_path DATASET.json --output_dir CKPT")
        return result

    def enhance() -> dict[str, Any]:
        from splatent_latents import codec_from_manifest
        from splatent_model import TINY, RuntimeOptions, SplatentEnhancer, enhance_dataset, load_enhancer

        codec = codec_from_manifest(paths["latents"])
        # `tiny` (a mechanics check, untrained) is built for the codec's channel count; a trained checkpoint
        # records its own, and enhance refuses one that does not match the codec.
        model = SplatentEnhancer.tiny(channels=codec.channels, codec=codec.config()) \
            if cfg.model_splatent_path == TINY else load_enhancer(cfg.model_splatent_path)
        # The stage only runs when its inputs changed (or --from asked): views that
        # enhance_dataset would resume from were made from other renders or weights.
        r = enhance_dataset(paths["dataset"], paths["enhanced"].parent, model, codec, split="test",
                            options=RuntimeOptions(device=cfg.device), model_source=str(cfg.model_splatent_path),
                            overwrite=True)
        return {"views": getattr(r, "count", None)}

    stage("enhance", enhance, paths["enhanced"])

    def evaluate() -> dict[str, Any]:
        from splatent_train.evaluate import evaluate_results

        ev = evaluate_results(paths["renders"] / name, paths["eval"], enhanced=paths["enhanced"],
                              dataset=paths["dataset"], lpips=cfg.lpips, device=cfg.device,
                              title=cfg.report_title, notes=tuple(cfg.report_notes))
        result.report, result.means = ev.report, ev.means
        return {"means": ev.means}

    stage("eval", evaluate, paths["eval"] / "report.html")
    if result.report is None and result.stopped_before is None and (paths["eval"] / "report.html").is_file():
        result.report = paths["eval"] / "report.html"
        result.means = record.data["stages"]["eval"].get("means")
    return result
