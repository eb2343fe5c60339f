"""``splatent pipeline``: every stage on one scene, in-process and resumable.

The original ``unified_pipeline.py`` chained scripts as subprocesses; here each
stage is a small :class:`Stage` over one :class:`RunContext` (the scene, loaded
once; the run's folders; the codec, loaded once after extraction), and
``OUTPUT/pipeline.json`` records, per stage, a key (a hash of the options it
depends on and of the stages before it). A re-run skips a stage whose key is
unchanged and whose outputs exist; ``--from STAGE`` runs that stage and every
later one again; ``stop_after`` (API only) ends the run after that stage. Layout
of ``OUTPUT``::

    undistorted/        pinhole copy of a distorted scene, or of one whose images sit in several folders
                        (Blender's train/ and test/); skipped otherwise
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
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from splatent_data import RunLayout, Scene, SplatentError, atomic_write_json, load_scene, provenance, split_scene

if TYPE_CHECKING:  # splatent_latents imports torch; the type is only named here
    from splatent_latents import ProgressReporter

logger = logging.getLogger("splatent")

Say = Callable[[str], None]  # one line of progress text
# ``progress_bar(description, total)`` -> a context yielding a ``ProgressReporter``: the shape of
# ``splatent_latents.progress_bar`` (the one bar); the caller decides whether one is drawn.
ProgressBar = Callable[[str, int], AbstractContextManager["ProgressReporter"]]


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
    report_title: str | None = None
    report_notes: tuple[str, ...] = ()
    progress: bool = True  # draw the extract stage's bar
    distributed: bool = True  # under accelerate launch, split extraction's images across processes

    def __post_init__(self) -> None:
        self.scene_path, self.output_dir = Path(self.scene_path), Path(self.output_dir)

    def check(self) -> None:
        """Refuse options a later stage would refuse, before any stage runs (``top_k=0`` failed at the dataset
        stage, after the fit)."""
        from splatent_splat import BACKENDS, FitConfig

        if self.top_k < 1:
            raise SplatentError(f"--top_k must be at least 1, got {self.top_k}")
        if self.backend not in BACKENDS:
            raise SplatentError(f"unknown rasteriser backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        FitConfig.from_flat(steps=self.steps, **self.fit_options).resolved()

    def stage_options(self, stage: str) -> dict[str, Any]:
        """The options a stage's result depends on (its cache key)."""
        return STAGE_BY_NAME[stage].options(self)


@dataclass
class RunContext:
    """What the stages share: the config, the input scene (parsed once), the run's folders
    (:class:`splatent_data.RunLayout`), the scene the stages after undistort read, and the codec (built once
    from the latents' manifest, the first time a stage after extract asks for it)."""

    config: PipelineConfig
    scene: Scene
    paths: RunLayout
    working_scene: Path  # the copy (paths.undistorted) of a distorted scene or one with several image folders, else the input
    _codec: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, cfg: PipelineConfig) -> "RunContext":
        scene = load_scene(cfg.scene_path, images=cfg.images)
        paths = RunLayout(cfg.output_dir, Path(cfg.scene_path).resolve().name)
        return cls(cfg, scene, paths, paths.undistorted if scene.needs_working_copy else Path(cfg.scene_path))

    @property
    def images(self) -> str | None:
        """The image folder inside :attr:`working_scene` (an undistorted copy has only ``images/``)."""
        return None if self.scene.needs_working_copy else self.config.images

    @property
    def codec(self) -> Any:
        """The codec that wrote ``latents/`` (``splatent_latents.LatentCodec``), built once."""
        if self._codec is None:
            from splatent_latents import codec_from_manifest

            self._codec = codec_from_manifest(self.paths.latents)
        return self._codec


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: ``options(cfg)`` is what its key hashes, ``outputs(paths)`` must exist for a skip,
    ``run(ctx)`` does the work and returns what ``pipeline.json`` records; ``applies(ctx)`` False leaves it out
    of the run (and of the key chain)."""

    name: str
    options: Callable[[PipelineConfig], dict[str, Any]]
    outputs: Callable[[RunLayout], Path]
    run: Callable[[RunContext], dict[str, Any]]
    applies: Callable[[RunContext], bool] = lambda ctx: True
    # The files an option only names (the enhancer checkpoint), as a fingerprint: recorded beside the key (which
    # stays that of earlier folders) and compared with it, so new weights at the same path run the stage again.
    inputs: Callable[[PipelineConfig], Any] = lambda cfg: None


def file_stamp(path: str | Path | None) -> list[list[Any]] | None:
    """``[name, size, mtime_ns]`` of a file, or of every file under a folder (sorted); ``None`` for no path,
    a missing one, or a name that is not a path (``tiny``)."""
    from splatent_model import TINY

    if not path or path == TINY:
        return None
    root = Path(path).expanduser()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        return None
    stamps = []
    for f in files:
        st = f.stat()
        stamps.append([f.relative_to(root).as_posix() if f != root else f.name, st.st_size, st.st_mtime_ns])
    return stamps


def _undistort(ctx: RunContext) -> dict[str, Any]:
    from splatent_data import undistort_scene

    return {"images": len(undistort_scene(ctx.scene, ctx.working_scene))}


def _extract(ctx: RunContext) -> dict[str, Any]:
    from splatent_latents import extract_latents

    cfg = ctx.config
    ctx._codec = None  # new latents: the codec is rebuilt from their manifest
    # pca fits its basis on the fit's input views (the protocol's), so test views stay unseen; undistortion
    # keeps names and camera centres, so the scene parsed once gives the same views
    mode = cfg.fit_options.get("split_mode", "llff")
    split = split_scene(ctx.scene, mode) if mode != "llff" else None
    r = extract_latents(ctx.working_scene, output=ctx.paths.latents.resolve(), codec=cfg.codec, model=cfg.vae_model,
                        images=ctx.images, device=cfg.device, progress=cfg.progress, split=split,
                        distributed=cfg.distributed, overwrite=True)  # the stage runs when its inputs changed
    return {"written": len(r.written), "skipped": len(r.skipped)}


def _fit(ctx: RunContext) -> dict[str, Any]:
    from splatent_splat import FitConfig, fit_scene

    cfg = ctx.config
    fcfg = FitConfig.from_flat(steps=cfg.steps, latents=str(ctx.paths.latents.resolve()), backend=cfg.backend,
                     device=cfg.device, images=ctx.images, **cfg.fit_options)
    r = fit_scene(ctx.working_scene, ctx.paths.model, fcfg, overwrite=True)
    return {"gaussians": r.num_gaussians, "steps_per_second": r.steps_per_second, "test": r.test}


def _render(ctx: RunContext) -> dict[str, Any]:
    from splatent_splat import render_model

    cfg = ctx.config
    r = render_model(ctx.paths.model, ctx.paths.renders, save_images=cfg.save_images, backend=cfg.backend,
                     device=cfg.device)
    return {"counts": r.counts}


def _dataset(ctx: RunContext) -> dict[str, Any]:
    from splatent_data import build_dataset, write_dataset_json

    entries = build_dataset(ctx.paths.renders, ctx.working_scene, top_k=ctx.config.top_k, benchmark=True)
    write_dataset_json(ctx.paths.dataset, entries)
    return {"entries": len(entries)}


def _enhance(ctx: RunContext) -> dict[str, Any]:
    from splatent_model import TINY, RuntimeOptions, SplatentEnhancer, enhance_dataset, load_enhancer

    cfg, codec = ctx.config, ctx.codec
    # `tiny` (a mechanics check, untrained) is built for the codec's channel count; a trained checkpoint
    # records its own, and enhance refuses one that does not match the codec.
    model = SplatentEnhancer.tiny(channels=codec.channels, codec=codec.config()) \
        if cfg.model_splatent_path == TINY else load_enhancer(cfg.model_splatent_path)
    # The stage only runs when its inputs changed (or --from asked): views that
    # enhance_dataset would resume from were made from other renders or weights.
    r = enhance_dataset(ctx.paths.dataset, ctx.paths.enhanced.parent, model, codec, split="test",
                        options=RuntimeOptions(device=cfg.device), model_source=str(cfg.model_splatent_path),
                        overwrite=True)
    return {"views": getattr(r, "count", None)}


def _eval(ctx: RunContext) -> dict[str, Any]:
    from splatent_latents import progress_bar

    from .evaluate import evaluate_results

    cfg = ctx.config
    with progress_bar("eval", 0, enabled=cfg.progress, unit="views", lazy=True) as bar:
        ev = evaluate_results(ctx.paths.renders, ctx.paths.eval, enhanced=ctx.paths.enhanced,
                              dataset=ctx.paths.dataset, lpips=cfg.lpips, device=cfg.device, title=cfg.report_title,
                              notes=tuple(cfg.report_notes), codec=ctx.codec, progress=bar.report)
    return {"means": ev.means}


# The order, and each stage's options in the order they are hashed: changing either changes every key
# after it, and a resumed result folder would run those stages again.
STAGE_LIST = (
    Stage("undistort", lambda c: {"scene": str(c.scene_path.resolve()), "images": c.images},
          lambda p: p.undistorted, _undistort, applies=lambda ctx: ctx.scene.needs_working_copy),
    # a view protocol other than llff changes which views pca's basis is fitted on (the default adds no key,
    # so the keys of earlier runs still match). Another scene or image folder is caught by PipelineRun.
    Stage("extract", lambda c: {"codec": c.codec, "model": c.vae_model,
                                **({"protocol": c.fit_options["split_mode"]} if "split_mode" in c.fit_options else {})},
          lambda p: p.latents, _extract),
    Stage("fit", lambda c: {"steps": c.steps, "options": c.fit_options, "backend": c.backend},
          lambda p: p.model, _fit),
    Stage("render", lambda c: {"save_images": c.save_images}, lambda p: p.renders, _render),
    # "benchmark" was an option the stage never read (one scene's dataset is all test entries): kept, constant, so
    # the keys of earlier result folders still match
    Stage("dataset", lambda c: {"top_k": c.top_k, "benchmark": False}, lambda p: p.dataset, _dataset),
    Stage("enhance", lambda c: {"model": c.model_splatent_path}, lambda p: p.enhanced, _enhance,
          inputs=lambda c: file_stamp(c.model_splatent_path)),
    Stage("eval", lambda c: {"lpips": c.lpips, "title": c.report_title, "notes": list(c.report_notes)},
          lambda p: p.eval / "report.html", _eval),
)
STAGE_BY_NAME = {s.name: s for s in STAGE_LIST}
STAGES = tuple(STAGE_BY_NAME)


@dataclass
class PipelineResult:
    output_dir: Path
    ran: list[str]
    skipped: list[str]
    seconds: dict[str, float]
    stopped_before: str | None = None  # the first stage not run (no enhancer, or ``stop_after``)
    report: Path | None = None
    means: dict[str, Any] | None = None


def same_input(last_config: dict[str, Any], cfg: PipelineConfig) -> bool:
    """Whether a recorded run's config (``pipeline.json``'s ``config``) read the scene and image folder ``cfg``
    reads. A record without a scene path (none yet) counts as the same."""
    if not last_config.get("scene_path"):
        return True
    return (Path(last_config["scene_path"]).expanduser().resolve() == Path(cfg.scene_path).expanduser().resolve()
            and (last_config.get("images") or None) == (cfg.images or None))


def stage_key(options: dict[str, Any], previous: str) -> str:
    """A stage's cache key: its options chained to the key of the stage before it."""
    return hashlib.sha256((previous + json.dumps(options, sort_keys=True, default=str)).encode()).hexdigest()[:16]


class StageRecord:
    """A JSON file (``pipeline.json``, ``demo.json``) of which stages finished with which key, and how long
    they took; :meth:`run` runs a stage unless it is up to date. ``stages`` names the stages ``start_from``
    may name (it forgets that one and every later one)."""

    def __init__(self, path: Path, start_from: str | None, stages: tuple[str, ...] = STAGES) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"stages": {}}
        if start_from is not None:
            if start_from not in stages:
                raise SplatentError(f"--from must be one of {', '.join(stages)}, got {start_from!r}")
            for stage in stages[stages.index(start_from):]:
                self.data["stages"].pop(stage, None)
            if path.is_file():  # now, not at the next stage's end: a run stopped before then must not skip them
                atomic_write_json(path, self.data)

    def forget_all(self) -> None:
        """No stage is up to date any more (written at once, like ``start_from``)."""
        self.data["stages"] = {}
        if self.path.is_file():
            atomic_write_json(self.path, self.data)

    def done(self, stage: str, key: str, inputs: Any = None) -> bool:
        """Whether ``stage`` finished with ``key`` and, where both it and this run have them, the same ``inputs``
        (a record written before inputs were recorded has none: its key alone decides)."""
        recorded = self.data["stages"].get(stage, {})
        if recorded.get("key") != key:
            return False
        return inputs is None or recorded.get("inputs") is None or recorded["inputs"] == inputs

    def finish(self, stage: str, key: str, seconds: float, info: dict[str, Any], inputs: Any = None) -> None:
        self.data["stages"][stage] = {"key": key, "seconds": round(seconds, 3), **info,
                                      **({"inputs": inputs} if inputs is not None else {})}
        atomic_write_json(self.path, self.data)

    def run(self, stage: str, key: str, run: Callable[[], dict[str, Any] | None], outputs: Path,
            say: Say, inputs: Any = None) -> float | None:
        """Run ``stage`` unless it finished with ``key`` (and ``inputs``) and ``outputs`` exist; its seconds,
        ``None`` if skipped."""
        if self.done(stage, key, inputs) and outputs.exists():
            say(f"[{stage}] up to date, skipped")
            return None
        say(f"[{stage}] running")
        t0 = time.perf_counter()
        info = run() or {}
        seconds = time.perf_counter() - t0
        self.finish(stage, key, seconds, info, inputs)
        say(f"[{stage}] done in {seconds:.1f} s")
        return seconds


class PipelineRun:
    """One run of the stages over one :class:`RunContext`. :meth:`run` goes on from the first stage not yet
    visited up to ``config.stop_after``; a caller may change the later stages' options in between
    (``splatent demo`` trains the enhancer after ``dataset``, then runs ``enhance`` and ``eval``)."""

    def __init__(self, cfg: PipelineConfig, say: Say = print) -> None:
        cfg.check()
        if cfg.model_splatent_path:  # a mistyped checkpoint fails now, not after the fit and the renders
            from splatent_model import check_checkpoint_source

            check_checkpoint_source(cfg.model_splatent_path)
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        if cfg.stop_after is not None and cfg.stop_after not in STAGES:
            raise SplatentError(f"stop_after must be one of {', '.join(STAGES)}, got {cfg.stop_after!r}")
        self.config, self.say = cfg, say
        self.record = StageRecord(Path(cfg.output_dir) / "pipeline.json", cfg.start_from)
        self.context = RunContext.load(cfg)
        last = self.record.data.get("config") or {}
        if self.record.data["stages"] and not same_input(last, cfg):
            # the stage keys leave the scene out (pinhole scenes have no undistort key to carry it, and keys of
            # earlier result folders must not change): a run over another scene or image folder forgets them all
            say(f"[pipeline] {cfg.output_dir} holds results of {last.get('scene_path')} "
                f"(images {last.get('images') or 'default'}): every stage runs again")
            self.record.forget_all()
        self.previous = ""  # the key of the last stage visited
        self.next = 0  # index in STAGE_LIST of the first stage not yet visited

    def run(self) -> PipelineResult:
        """Visit the remaining stages up to ``config.stop_after``; what ran and what was skipped this call."""
        cfg, ctx = self.config, self.context
        self.record.data["config"] = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
        self.record.data.update(provenance())
        result = PipelineResult(Path(cfg.output_dir), [], [], {})
        while self.next < len(STAGE_LIST):
            stage = STAGE_LIST[self.next]
            if not stage.applies(ctx):
                self.next += 1
                continue
            if cfg.stop_after and STAGES.index(stage.name) > STAGES.index(cfg.stop_after):
                result.stopped_before = stage.name
                return result
            if stage.name == "enhance" and not cfg.model_splatent_path:
                result.stopped_before = "enhance"
                self.say(f"no enhancer checkpoint: renders are in {ctx.paths.renders} and the dataset in "
                         f"{ctx.paths.dataset}. Pass --model_splatent_path (a `splatent train` output folder, an "
                         f"original .pkl, or `tiny` for a mechanics check), or train one: splatent train "
                         f"--dataset_path DATASET.json --output_dir CKPT")
                return result
            self.previous = stage_key(stage.options(cfg), self.previous)
            inputs = stage.inputs(cfg)
            seconds = self.record.run(stage.name, self.previous, lambda: stage.run(ctx), stage.outputs(ctx.paths),
                                      self.say, inputs)
            if inputs is not None:  # the stages after it read what it made of them (eval scores the new weights)
                self.previous = stage_key({"inputs": inputs}, self.previous)
            if seconds is None:
                result.skipped.append(stage.name)
            else:
                result.ran.append(stage.name)
                result.seconds[stage.name] = seconds
            self.next += 1
        report = ctx.paths.eval / "report.html"
        if "eval" in result.ran + result.skipped and report.is_file():
            result.report, result.means = report, self.record.data["stages"]["eval"].get("means")
        return result


def run_pipeline(cfg: PipelineConfig, say: Say = print) -> PipelineResult:
    """Run (or resume) every stage on ``cfg.scene_path``; see the module doc."""
    return PipelineRun(cfg, say).run()
