"""Many scenes at once (``splatent pipeline --scenes DIR``): every scene's fit and renders, and one dataset.

Each scene under ``scenes_dir`` (any folder :func:`splatent_data.load_scene` reads) runs the pipeline's
``undistort``, ``extract``, ``fit`` and ``render`` stages in its own run folder, resumable stage by stage
(its ``pipeline.json``); a scene that fails is reported and the others go on. Then one dataset JSON pairs
every render with its references::

    OUTPUT/scenes/<scene>/        a RunLayout per scene: latents/ model/ renders/<scene>/ pipeline.json
    OUTPUT/holdout/<scene>/       fold fits of a training scene (pairs "holdout" or "both")
    OUTPUT/data/dataset.json      the merged dataset; OUTPUT/data/dataset.manifest.json says how it was built
    OUTPUT/batch.json             per scene: status, views, fit PSNR, seconds (the summary table)

Scene-level split first (:func:`splatent_data.split_scene_names`: the original's 90/10 with seed 42, or
``test_scenes``; ``exclude`` drops a benchmark's scenes): test scenes give only ``test`` entries (their
renders of the protocol's test views), so no test scene is ever trained on. Training scenes give the
enhancer's pairs, renders of views the producing fit never trained on, by ``pairs``:

* ``test-views``: the scene's fit on the protocol's input views, rendered at its test views;
* ``holdout``: k-fold fits over the input views (:mod:`splatent_pipeline.holdout`), rendered at the
  views each fold left out;
* ``both``.

References always come from the producing fit's own input views. Under ``accelerate launch`` the scenes
are split across processes (one device each, no scene done twice); the main process writes the dataset
once every process is done.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatent_data import (
    PROTOCOLS, SceneError, SplatentError, atomic_write_bytes, atomic_write_json, build_dataset, load_scene,
    read_dataset_json, render_protocol, split_scene_names, write_dataset_json,
)

from .pipeline import PipelineConfig, PipelineRun, RunContext, Say

PAIRS = ("test-views", "holdout", "both")


@dataclass
class BatchConfig:
    """Options of ``splatent pipeline --scenes``."""

    scenes_dir: Path
    output_dir: Path
    codec: str = "sd-vae"
    vae_model: str | None = None
    images: str | None = None
    protocol: str = "llff"
    steps: int = 10_000
    fit_options: dict[str, Any] = field(default_factory=dict)
    top_k: int = 3
    pairs: str = "test-views"
    folds: int = 4
    test_scenes: list[str] | None = None
    test_fraction: float = 0.1
    seed: int = 42
    exclude: list[str] = field(default_factory=list)
    backend: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        self.scenes_dir, self.output_dir = Path(self.scenes_dir), Path(self.output_dir)
        if self.pairs not in PAIRS:
            raise SplatentError(f"--pairs must be one of {', '.join(PAIRS)}, got {self.pairs!r}")
        if self.protocol not in PROTOCOLS:
            raise SplatentError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.folds < 2 and self.pairs != "test-views":
            raise SplatentError(f"--folds must be at least 2, got {self.folds}")


@dataclass
class SceneRecord:
    """One scene's row of the summary table."""

    name: str
    role: str  # train, test or excluded
    status: str  # done, skipped (up to date), failed
    views: dict[str, int] = field(default_factory=dict)
    fit_psnr: float | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchResult:
    output_dir: Path
    dataset: Path | None
    scenes: list[SceneRecord]
    entries: dict[str, int]

    def table(self) -> str:
        """The per-scene summary as a Markdown table."""
        rows = ["| scene | role | status | input views | test views | fit latent PSNR | seconds |", "|---|---|---|---|---|---|---|"]
        for r in self.scenes:
            psnr = f"{r.fit_psnr:.2f}" if r.fit_psnr is not None else "-"
            rows.append(f"| {r.name} | {r.role} | {r.status}{': ' + r.error if r.error else ''} | "
                        f"{r.views.get('train', '-')} | {r.views.get('test', '-')} | {psnr} | {r.seconds:.0f} |")
        return "\n".join(rows)


POSE_FILES = ("transforms.json", "transforms_train.json", "poses_bounds.npy", "sparse", "cameras.bin", "cameras.txt")


def find_scenes(scenes_dir: Path) -> tuple[list[Path], list[Path]]:
    """``(posed, unposed)``: the sub-folders of ``scenes_dir`` with a pose file (transforms.json, COLMAP,
    poses_bounds.npy; they may still fail to load, which their run reports), and those with photos only."""
    if not Path(scenes_dir).is_dir():
        raise SceneError(f"--scenes {scenes_dir} is not a folder; pass a folder of scene folders")
    posed, unposed = [], []
    for p in sorted(Path(scenes_dir).iterdir()):
        if not p.is_dir():
            continue
        if any((p / name).exists() for name in POSE_FILES):
            posed.append(p)
        elif (p / "images").is_dir():
            unposed.append(p)
    if not posed:
        raise SceneError(f"{scenes_dir} holds no posed scene (transforms.json, COLMAP or poses_bounds.npy in a "
                         f"sub-folder); photos without poses need `splatent scene sfm` first")
    return posed, unposed


def scene_run_config(cfg: BatchConfig, scene: Path, device: str) -> PipelineConfig:
    """The pipeline config of one scene's run folder (up to the render stage)."""
    fit_options = dict(cfg.fit_options)
    if cfg.protocol != "llff":
        fit_options["split_mode"] = cfg.protocol
    return PipelineConfig(scene_path=scene, output_dir=cfg.output_dir / "scenes" / scene.name, codec=cfg.codec,
                          vae_model=cfg.vae_model, images=cfg.images, top_k=cfg.top_k, steps=cfg.steps,
                          fit_options=fit_options, backend=cfg.backend, device=device, lpips=False,
                          stop_after="render", distributed=False)


def _run_scene(cfg: BatchConfig, scene: Path, role: str, device: str, say: Say) -> SceneRecord:
    t0 = time.perf_counter()
    record = SceneRecord(scene.name, role, "done")
    try:
        run = PipelineRun(scene_run_config(cfg, scene, device), say=lambda line: say(f"{scene.name}: {line}"))
        result = run.run()
        if not result.ran:
            record.status = "skipped"
        from splatent_splat import read_fit_manifest

        fit = read_fit_manifest(run.context.paths.model)
        record.views = {"train": len(fit["split"]["train"]), "test": len(fit["split"]["test"])}
        record.fit_psnr = (fit.get("test") or {}).get("psnr")
        if role == "train" and cfg.pairs in ("holdout", "both"):
            _holdout(cfg, run, say)
    except SplatentError as exc:
        record.status, record.error = "failed", str(exc)
        say(f"{scene.name}: failed: {exc}")
    except Exception as exc:  # one broken scene must not stop the others; the trace goes to the log
        record.status, record.error = "failed", f"{type(exc).__name__}: {exc}"
        say(f"{scene.name}: failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    record.seconds = time.perf_counter() - t0
    return record


def _holdout(cfg: BatchConfig, run: PipelineRun, say: Say) -> None:
    """Fold fits over the scene's input views, resumable: skipped when its pairs exist with the same key."""
    from splatent_splat import FitConfig

    from .holdout import holdout_pairs

    ctx = run.context
    work = cfg.output_dir / "holdout" / ctx.paths.scene_name
    key = json.dumps({"folds": cfg.folds, "top_k": cfg.top_k, "fit": run.record.data["stages"]["fit"]["key"]})
    stamp = work / "pairs.key"
    if (work / "pairs.json").is_file() and stamp.is_file() and stamp.read_text() == key:
        say(f"{ctx.paths.scene_name}: [holdout] up to date, skipped")
        return
    fit = FitConfig.from_flat(steps=cfg.steps, backend=cfg.backend, device=ctx.config.device,
                              images=ctx.images, **ctx.config.fit_options)
    # the scene as its run read it: from --images (holdout_pairs would load a path from the default images/)
    scene = load_scene(ctx.working_scene, images=ctx.images)
    holdout_pairs(scene, ctx.paths.latents.resolve(), work, cfg.folds, fit, top_k=cfg.top_k,
                  say=lambda line: say(f"{ctx.paths.scene_name}: {line}"))
    atomic_write_bytes(stamp, key.encode())


def run_batch(cfg: BatchConfig, say: Say = print) -> BatchResult:
    """Run every scene of ``cfg.scenes_dir`` and write the merged dataset; see the module doc."""
    from accelerate import PartialState

    # cpu=True lets `accelerate launch --multi_gpu --num_processes N` run N CPU processes over gloo (CI has no GPU)
    state = PartialState(cpu=cfg.device == "cpu")
    scenes, unposed = find_scenes(cfg.scenes_dir)
    names = [p.name for p in scenes]
    if cfg.test_scenes is not None:
        unknown = sorted(set(cfg.test_scenes) - set(names))
        if unknown:
            raise SceneError(f"--test_scenes names {unknown[0]!r}, which is not a scene of {cfg.scenes_dir}")
        split = split_scene_names([n for n in names if n not in cfg.exclude], 0.0, cfg.seed, cfg.exclude)
        split = dataclasses.replace(split, train=tuple(n for n in split.train if n not in cfg.test_scenes),
                                    test=tuple(sorted(cfg.test_scenes)))
    else:
        split = split_scene_names(names, cfg.test_fraction, cfg.seed, cfg.exclude)
    role = {**{n: "train" for n in split.train}, **{n: "test" for n in split.test}}
    todo = [p for p in scenes if p.name in role]
    device = str(state.device) if state.num_processes > 1 and cfg.device != "cpu" else cfg.device
    mine: list[SceneRecord] = []
    with state.split_between_processes(todo) as assigned:
        for scene in assigned:
            say(f"{scene.name}: {role[scene.name]} scene ({'process ' + str(state.process_index) if state.num_processes > 1 else 'this process'})")
            mine.append(_run_scene(cfg, scene, role[scene.name], device, say))
    records_dir = cfg.output_dir / "records"
    atomic_write_json(records_dir / f"process{state.process_index}.json", [dataclasses.asdict(r) for r in mine])
    state.wait_for_everyone()
    if not state.is_main_process:
        return BatchResult(cfg.output_dir, None, mine, {})
    records: list[SceneRecord] = []
    for path in sorted(records_dir.glob("process*.json")):
        records += [SceneRecord(**r) for r in json.loads(path.read_text())]
        path.unlink()
    done = {r.name: r for r in records}
    records = [done[n] for n in names if n in done] + [SceneRecord(n, "excluded", "excluded") for n in split.excluded]
    records += [SceneRecord(p.name, "-", "no poses", error="run `splatent scene sfm` on it first") for p in unposed]
    dataset, entries = _write_dataset(cfg, [r for r in records if r.status in ("done", "skipped")], role, say)
    result = BatchResult(cfg.output_dir, dataset, records, entries)
    atomic_write_json(cfg.output_dir / "batch.json", {
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        "scenes": [dataclasses.asdict(r) for r in records], "dataset": str(dataset) if dataset else None,
        "entries": entries,
    })
    return result


def _write_dataset(cfg: BatchConfig, ok: list[SceneRecord], role: dict[str, str], say: Say):
    if not ok:
        say("no scene finished: no dataset written")
        return None, {}
    runs = {r.name: RunContext.load(scene_run_config(cfg, cfg.scenes_dir / r.name, cfg.device)) for r in ok}
    layouts = {n: ctx.paths for n, ctx in runs.items()}
    renders = [layouts[n].renders for n in runs]
    originals = {n: ctx.working_scene for n, ctx in runs.items()}
    tests = [n for n in runs if role[n] == "test"]
    entries = []
    if cfg.pairs in ("test-views", "both") or tests:
        entries = build_dataset(renders, originals, top_k=cfg.top_k, test_scenes=tests, train_renders=False)
        if cfg.pairs == "holdout":  # the training scenes' pairs come from their fold fits only
            entries = [e for e in entries if e.split == "test"]
    if cfg.pairs in ("holdout", "both"):
        for n in runs:
            pairs = cfg.output_dir / "holdout" / n / "pairs.json"
            if role[n] == "train" and pairs.is_file():
                entries += [dataclasses.replace(e, id=f"{n}_holdout_{e.id}")
                            for e in read_dataset_json(pairs).entries]
    dataset = cfg.output_dir / "data" / "dataset.json"
    counts = dict(Counter(e.split for e in entries))
    write_dataset_json(dataset, entries, manifest={
        "stage": "batch", "scenes_dir": str(cfg.scenes_dir.resolve()), "protocol": cfg.protocol,
        "pairs": cfg.pairs, "folds": cfg.folds, "top_k": cfg.top_k, "seed": cfg.seed,
        "test_fraction": cfg.test_fraction,
        "scenes": {"train": sorted(n for n in runs if role[n] == "train"), "test": sorted(tests)},
        "excluded_scenes": sorted(cfg.exclude), "protocols": {n: render_protocol(layouts[n].render) for n in runs},
        "entries": counts,
    })
    say(f"wrote {dataset}: {counts.get('train', 0)} train, {counts.get('test', 0)} test entries")
    return dataset, counts
