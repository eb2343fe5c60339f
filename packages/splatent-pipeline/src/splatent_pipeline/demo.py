"""``splatent demo``: the whole method, offline, on the embedded procedural scene.

Every stage is the real one (the pipeline's stages, :class:`~splatent_pipeline.holdout.Holdout`'s fold
fits and the packages' stage functions); only the sizes are small enough for a CPU. Layout of ``OUTPUT``::

    scenes/synthetic/          images/, transforms.json, sparse_pc.ply (every 8th view is a test view)
    latents/ model/ renders/synthetic/ data/dataset.json      pipeline stages on it
    holdout/scenes/fold<i>/    the training views again (the same image files), split in
                               transforms_train.json / transforms_test.json
    holdout/models/fold<i>/    a fit on all training views but fold i's
    holdout/renders/fold<i>/   its renders of fold i's views: novel views with ground truth
    data/enhancer_train.json   the enhancer's training pairs: those renders, their ground truth
                               and references among the fold fit's own training views
    enhancer/enhancer/         the trained enhancer (config.json + unet/)
    enhanced/ eval/            pipeline stages: enhanced test views, metrics, report.html
    demo.json                  config, stage keys and seconds, the mean metrics

Why the folds (:mod:`splatent_pipeline.holdout`): a fit reproduces its own training views almost exactly, so renders
of them teach an enhancer the identity. Each fold fit leaves out every ``folds``-th
training view (a different quarter each), so its renders of those views carry
the blur and view-dependent errors of real novel views while their ground-truth
latents exist, at a density of training views close to the main fit's. The
enhancer trains on those pairs only. The scene's test views are seen by neither
the Gaussians, nor the enhancer, nor the codec (taef2 is pretrained elsewhere; pca is fitted on the training views),
nor the sparse points (cast from training views); they are what ``eval`` scores.

The sparse points stand in for the structure-from-motion points a captured scene
comes with: rays through random pixels of the training views, intersected with
the procedural geometry, coloured by those pixels.

Re-running on the same folder skips every stage whose options are unchanged and
whose outputs exist (``pipeline.json`` and ``demo.json`` record the stages).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from splatent_data import RenderLayout, SplatentError, atomic_write_json, synthetic_points

from .holdout import Holdout
from .pipeline import PipelineConfig, PipelineRun, ProgressBar, Say, StageRecord, stage_key

SCENE_NAME = "synthetic"
KINDS = ("render", "enhanced", "ceiling")
DEMO_CODECS = ("taef2", "pca")  # the codecs that need no download
RESULT_KEYS = ("report", "views", "psnr", "means", "last_run")  # what demo.json records of a finished run


@dataclass
class DemoConfig:
    """Sizes and steps of the demo. The defaults take about 4 minutes on 2 CPU cores.

    Attributes:
        output_dir: Result folder.
        codec: ``taef2`` (a learned 32-channel latent space shipped with splatent-latents) or ``pca``
            (a linear 4-channel basis fitted on the training views).
        seed: Seeds the scene's layout, its points, every fit and the enhancer.
        views, width, height: The procedural scene (latents are ``width/8 x height/8``);
            every 8th view (sorted by name) is a test view.
        points: Sparse points cast from the training views (each fit's initial Gaussians).
        fit_steps: Steps of the main fit and of each fold fit.
        folds: Fold fits for the enhancer's training pairs; fold ``i`` holds out the
            training views at positions ``i, i + folds, ...``.
        top_k: Reference views per target.
        train_steps, batch_size, learning_rate: Enhancer training.
        lambda_rgb: Weight of the RGB loss (through the codec's decoder) beside the latent L2 loss; ``None``:
            1 for pca, whose linear decoder costs nothing, 0 for taef2, whose decoder's backward pass costs
            8x the tiny UNet's step on 2 CPU cores (measured 2.8 s against 0.33 s a step).
        crop: Square training crop side in pixels (0: whole views).
        device: ``auto``, ``cpu``, ``cuda``.
        threads: CPU threads; ``None``: 1 for the fits (their small kernels run slower on
            more) and up to 2 for the enhancer (measured fastest on a 2-core machine).
        lpips: Score LPIPS; ``None``: when the backbone weights are already cached (no download).
    """

    output_dir: Path = Path("splatent-demo")
    codec: str = "taef2"
    seed: int = 0
    views: int = 40
    width: int = 256
    height: int = 192
    points: int = 3000
    fit_steps: int = 800
    folds: int = 4
    top_k: int = 3
    train_steps: int = 300
    batch_size: int = 2
    learning_rate: float = 1e-3
    lambda_rgb: float | None = None
    crop: int = 0
    device: str = "auto"
    threads: int | None = None
    lpips: bool | None = None

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)

    @classmethod
    def quick(cls, output_dir: str | Path = Path("splatent-demo"), seed: int = 0, **overrides: Any) -> "DemoConfig":
        """The reduced demo of the tests (about 30 s on 2 cores): every stage, a smaller scene, fewer steps
        (and one thread: its 16x12 latents train faster on one)."""
        settings = dict(views=24, width=128, height=96, points=1500, fit_steps=300, folds=3, train_steps=100, threads=1)
        return cls(output_dir=Path(output_dir), seed=seed, **{**settings, **overrides})

    @property
    def rgb_weight(self) -> float:
        """The RGB loss weight in force (see ``lambda_rgb``)."""
        if self.lambda_rgb is not None:
            return float(self.lambda_rgb)
        return 1.0 if self.codec == "pca" else 0.0

    def check(self) -> "DemoConfig":
        """Refuse impossible values, one line naming the setting; returns ``self``."""
        if self.codec not in DEMO_CODECS:
            raise SplatentError(f"the demo runs offline with codec {' or '.join(DEMO_CODECS)}, got {self.codec!r}")
        if self.views < 16:
            raise SplatentError(f"the demo needs at least 16 views (2 test views), got {self.views}")
        if self.width % 8 or self.height % 8 or self.width < 64 or self.height < 48:
            raise SplatentError(f"width and height must be multiples of 8, >= 64x48; got {self.width}x{self.height}")
        if not 2 <= self.folds <= self.views // 4:
            raise SplatentError(f"folds must be between 2 and views/4 = {self.views // 4}, got {self.folds}")
        for name in ("points", "fit_steps", "train_steps", "batch_size", "top_k"):
            if getattr(self, name) < 1:
                raise SplatentError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.crop < 0 or self.crop % 8:
            raise SplatentError(f"crop must be 0 (whole views) or a positive multiple of 8 pixels, got {self.crop}")
        if self.threads is not None and self.threads < 1:
            raise SplatentError(f"threads must be at least 1, got {self.threads}")
        return self


@dataclass
class DemoResult:
    """What ``run_demo`` produced.

    Attributes:
        report: ``eval/report.html``; ``metrics``: ``eval/metrics.json``; ``enhancer``: the checkpoint.
        views: Test views scored.
        psnr: Mean PSNR (dB) over the test views of ``render``, ``enhanced`` and ``ceiling``
            (the codec's reconstruction of the ground truth).
        means: Every mean metric of ``metrics.json`` (kind -> metric -> value).
        seconds: Seconds of each stage that ran this time (skipped stages are absent).
    """

    output_dir: Path
    report: Path
    metrics: Path
    enhancer: Path
    views: int
    psnr: dict[str, float]
    means: dict[str, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    total_seconds: float = 0.0

    def summary(self) -> str:
        """``render 21.30 dB, enhanced 22.10 dB (+0.80), codec ceiling 27.00 dB`` (what the report shows)."""
        p = self.psnr
        return (f"render {p['render']:.2f} dB, enhanced {p['enhanced']:.2f} dB "
                f"({p['enhanced'] - p['render']:+.2f}), codec ceiling {p['ceiling']:.2f} dB")


def run_demo(cfg: DemoConfig, say: Say = print, progress: ProgressBar | None = None) -> DemoResult:
    """Run (or resume) the demo into ``cfg.output_dir``; see the module doc.

    Args:
        say: Receives each stage's lines (``[fit] running``, ``[fit] done in 3.1 s``, ...).
        progress: ``progress(description, total)``, a context yielding a reporter (``splatent_latents.progress_bar``), for the enhancer's
            training steps (the CLI passes its progress bar); ``None``: no bar.
    """
    cfg.check()
    if cfg.output_dir.exists() and not cfg.output_dir.is_dir():
        raise SplatentError(f"{cfg.output_dir} is a file; pass a folder as --output-dir")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or 1)
    try:
        return _run(cfg, say, progress)
    finally:
        torch.set_num_threads(threads)


def _fit_options(cfg: DemoConfig) -> dict[str, Any]:
    return {"seed": cfg.seed, "eval_every": cfg.fit_steps, "tensorboard": False}


def _backend(cfg: DemoConfig) -> str:
    return "torch" if cfg.device == "cpu" else "auto"


def _lpips(cfg: DemoConfig) -> bool:
    if cfg.lpips is not None:
        return cfg.lpips
    from splatent_train import lpips_available

    return lpips_available("vgg")


def _run(cfg: DemoConfig, say: Say, progress: ProgressBar | None) -> DemoResult:
    from splatent_data import make_synthetic_scene, split_scene, write_transforms
    from splatent_splat import FitConfig

    t_start = time.perf_counter()
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    record = StageRecord(out / "demo.json", None)
    config = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    if record.data.get("config") != config:  # the numbers are another run's: this one's replace them at its end
        for key in RESULT_KEYS:
            record.data.pop(key, None)
    record.data["config"] = config
    scene_dir = out / "scenes" / SCENE_NAME
    train_json = out / "data" / "enhancer_train.json"
    run_dir = out / "enhancer"
    enhancer_dir = run_dir / "enhancer"
    seconds: dict[str, float] = {}
    ran: list[str] = []
    skipped: list[str] = []
    previous = ""

    def stage(name: str, options: dict[str, Any], run: Callable[[], dict[str, Any]], outputs: Path) -> bool:
        """Run ``name`` unless it finished with these options (and the stages before it); True if it ran."""
        nonlocal previous
        previous = stage_key(options, previous)
        took = record.run(name, previous, run, outputs, say)
        if took is None:
            skipped.append(name)
            return False
        seconds[name] = took
        ran.append(name)
        return True

    def account(part) -> None:  # a PipelineResult's stages into this run's
        seconds.update(part.seconds)
        ran.extend(part.ran)
        skipped.extend(part.skipped)

    def make_scene() -> dict[str, Any]:
        shutil.rmtree(scene_dir, ignore_errors=True)
        scene = make_synthetic_scene(scene_dir, n_views=cfg.views, width=cfg.width, height=cfg.height, seed=cfg.seed)
        split = split_scene(scene)
        points = synthetic_points([scene.camera(s) for s in split.train], cfg.seed, cfg.points)
        write_transforms(scene.cameras, scene_dir / "transforms.json", points=points)
        return {"views": len(scene.cameras), "train": len(split.train), "test": len(split.test), "points": len(points)}

    scene_options = {k: getattr(cfg, k) for k in ("views", "width", "height", "seed", "points")}
    new_scene = stage("scene", scene_options, make_scene, scene_dir / "transforms.json")

    # The pipeline's keys do not cover the scene's pixels: a new scene runs it again from extract.
    # It runs up to the dataset now, and on with enhance and eval once the enhancer is trained.
    pipeline = PipelineRun(PipelineConfig(
        scene_path=scene_dir, output_dir=out, codec=cfg.codec, images="images", top_k=cfg.top_k, steps=cfg.fit_steps,
        fit_options=_fit_options(cfg), backend=_backend(cfg), device=cfg.device, lpips=_lpips(cfg),
        start_from="extract" if new_scene else None, stop_after="dataset",
    ), say=say)
    account(pipeline.run())

    holdout = Holdout(
        pipeline.context.scene, (out / "latents").resolve(), out / "holdout", cfg.folds,
        FitConfig.from_flat(steps=cfg.fit_steps, backend=_backend(cfg), device=cfg.device, **_fit_options(cfg)),
        top_k=cfg.top_k, points=lambda i, cams: synthetic_points(cams, cfg.seed, cfg.points, draw=1 + i))
    # The folds continue the chain from the scene's key and the pipeline's fit key (codec, fit options).
    fit_key = pipeline.record.data["stages"]["fit"]["key"]
    previous = stage_key({"pipeline_fit": fit_key}, previous)
    for i in range(cfg.folds):
        stage(f"fold{i}-fit", {"folds": cfg.folds, "fold": i}, lambda: holdout.fit(i), holdout.model(i) / "fit.json")
        stage(f"fold{i}-render", {}, lambda: holdout.render(i), RenderLayout(holdout.renders(i)).manifest)
    stage("pairs", {"top_k": cfg.top_k}, lambda: holdout.pairs(train_json), train_json)

    def train() -> dict[str, Any]:
        # Enhanced views and their scores belong to the previous enhancer: removed first, so that
        # an interrupted run cannot leave them looking current (the pipeline redoes missing stages).
        for stale in (run_dir, out / "enhanced", out / "eval"):
            shutil.rmtree(stale, ignore_errors=True)
        r = _train_enhancer(cfg, train_json, run_dir, progress)
        return {"steps": r.steps, "steps_per_second": r.steps_per_second, "losses": r.losses}

    train_options = {**{k: getattr(cfg, k) for k in ("train_steps", "batch_size", "learning_rate", "crop", "seed")},
                     "lambda_rgb": cfg.rgb_weight}
    stage("train", train_options, train, enhancer_dir / "config.json")

    pcfg = pipeline.config
    pcfg.start_from = None
    pcfg.stop_after = None
    pcfg.model_splatent_path = str(enhancer_dir.resolve())
    pcfg.report_title = f"Splatent demo: procedural scene (seed {cfg.seed}), held-out test views"
    pcfg.report_notes = _notes(cfg, train_json, pcfg.lpips)
    rest = pipeline.run()  # enhance and eval
    if rest.report is None or not rest.means:
        raise SplatentError(f"the eval stage left no report in {out / 'eval'}; run the demo again")
    account(rest)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    means = metrics["mean"]
    result = DemoResult(
        output_dir=out, report=rest.report, metrics=out / "eval" / "metrics.json", enhancer=enhancer_dir,
        views=len(metrics["views"]), psnr={k: float(means[k]["psnr"]) for k in KINDS}, means=means,
        seconds={k: round(v, 2) for k, v in seconds.items()}, ran=ran, skipped=skipped,
        total_seconds=time.perf_counter() - t_start,
    )
    record.data.update(
        report=str(result.report), views=result.views, psnr=result.psnr, means=means,
        last_run={"seconds": result.seconds, "total_seconds": round(result.total_seconds, 2), "ran": ran,
                  "skipped": skipped},
    )
    atomic_write_json(out / "demo.json", record.data)
    return result


def _train_enhancer(cfg: DemoConfig, dataset: Path, output_dir: Path, progress: ProgressBar | None):
    """The tiny enhancer on the fold pairs. The decoded ground-truth latent stands in for the photo in the
    RGB loss: it is the closest any latent can decode to (the codec's ceiling), and with pca (linear,
    orthonormal) the loss against either differs by a constant."""
    from splatent_train import TrainConfig, train_enhancer

    config = TrainConfig(
        dataset_path=dataset, output_dir=output_dir, base_model="tiny", top_k=cfg.top_k, gt_from_latents=True,
        resolution=cfg.crop, eval_resolution=0, lambda_lpips=0.0, lambda_rgb=cfg.rgb_weight, learning_rate=cfg.learning_rate,
        lr_warmup_steps=0, train_batch_size=cfg.batch_size, max_train_steps=cfg.train_steps, seed=cfg.seed,
        checkpointing_steps=0, eval_freq=0, viz_freq=0, logger="none",
        num_threads=cfg.threads or min(2, os.cpu_count() or 1), cpu=cfg.device == "cpu",
    )
    if progress is None:
        return train_enhancer(config)
    with progress("train", cfg.train_steps) as bar:
        return train_enhancer(config, progress=bar.report)


def _notes(cfg: DemoConfig, train_json: Path, lpips: bool) -> tuple[str, ...]:
    pairs = len(json.loads(train_json.read_text())["train"])
    off = () if lpips or cfg.lpips is False else (
        "LPIPS is off: torchvision's VGG weights are not in the torch hub cache, and the demo downloads nothing.",)
    loss = "latent L2" + (f" + {cfg.rgb_weight:g} x RGB through the decoder" if cfg.rgb_weight else
                          " only: the RGB loss through taef2's decoder is left out on CPU for time")
    codec = ("the taef2 codec (a learned tiny autoencoder, 32 channels at 1/8 resolution, trained elsewhere)"
             if cfg.codec == "taef2" else "the pca codec (4 channels) fitted on the training views")
    return (
        f"Procedural scene: {cfg.views} views of {cfg.width}x{cfg.height}; every 8th view is a test view. Latents from "
        f"{codec}; {cfg.points} sparse points cast from the training views.",
        f"Gaussians: {cfg.fit_steps} steps on the training views only.",
        f"Enhancer: the tiny UNet trained from scratch ({loss}), {cfg.train_steps} steps on {pairs} pairs rendered by "
        f"{cfg.folds} fold fits, each holding out 1/{cfg.folds} of the training views. No test view was seen by "
        f"the Gaussians, the sparse points, the codec or the enhancer.",
    ) + off
