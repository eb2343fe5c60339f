"""The method on real scenes, end to end, on one GPU: a multi-scene dataset, the ``small`` enhancer trained
from scratch, judged on scenes it never saw, with 0, 1 and 3 references (the paper's Table 2 ablation).

For each view protocol (``--protocols``: ``dense`` 30 / ``sparse`` 5 furthest-point input views, the other
views tested):

1. ``splatent pipeline --scenes`` (:func:`splatent_pipeline.run_batch`) over the training scenes and the
   evaluation scenes together: each scene's latents (``--codec``, taef2 by default: a real learned latent
   space, offline), its fit on the protocol's input views and its renders of the test views. The evaluation
   scenes are the batch's test scenes, so none of their views trains the enhancer; the training scenes'
   renders of their own test views are the enhancer's pairs (``--pairs test-views``).
2. ``splatent train`` (:func:`splatent_train.train_enhancer`) of the ``small`` preset (17.6M parameters, from
   scratch) once per ``--top-k`` value, ``--train-jobs`` of them at once in separate processes (a small UNet's
   step is bound by the CPU's kernel launches, ``tools/bench/train_step.py``, so one process leaves the GPU idle).
3. On every evaluation scene and for every model: ``splatent enhance`` of its test views, then ``splatent
   eval`` (:func:`splatent_pipeline.evaluate_results`): PSNR / SSIM (LPIPS where its weights load) of the
   decoded render, the enhanced render and the codec's ceiling against the photos, and contact sheets
   (photo | render | enhanced with 0, 1, 3 references | ceiling).

Goal (issue 13): the enhanced render beats the raw render by >= 1.5 dB mean PSNR on the unseen scenes, and
3 references >= 1 >= 0. Numbers are reported as measured, met or not.

Run on the GPU machine (scenes carried under ``.device/scenes``, fox undistorted at a quarter size)::

    python tools/bench/realscenes.py --train-scenes .device/scenes --eval-scenes milk,table_room \\
        --out $OUT/realscenes.json --sheets $OUT

or one process per protocol sharing the GPU (``--protocols dense --work /tmp/rs-dense --out
$OUT/realscenes-dense.json`` and the same for ``sparse``, run at once), then ``--report`` once per JSON.

``--eval-scenes`` takes scene names among the training folders (held out of training) or folders of other
scenes (LLFF, COLMAP or transforms.json). Then ``python tools/bench/realscenes.py --report realscenes.json
--results benchmarks/RESULTS.md``. ``--device cpu --fit-steps 20 --train-steps 3 --base-model tiny`` checks
the script anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "realscenes"
TITLE = "the method on real scenes: the small enhancer trained from scratch, judged on scenes it never saw (`tools/bench/realscenes.py`)"
REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
DEFAULT_EVAL = ("milk", "table_room")


def _scene_dirs(spec: str) -> list[Path]:
    """Comma-separated folders, each a scene (it has a pose file) or a folder of scenes (its posed sub-folders)."""
    from splatent_pipeline import find_scenes
    from splatent_pipeline.batch import POSE_FILES

    dirs: list[Path] = []
    for part in (Path(p) for p in spec.split(",") if p):
        dirs += [part] if any((part / f).exists() for f in POSE_FILES) else find_scenes(part)[0]
    return dirs


def _lpips_available() -> bool:
    from splatent_train import build_lpips

    try:
        build_lpips("vgg", off_switch="--no-lpips")
        return True
    except Exception:  # weights not cached and no network: LPIPS is left out, and the report says so
        return False


def _save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))


def run(args) -> dict:
    from splatent_data import load_scene
    from splatent_latents import codec_from_manifest, load_latent
    from splatent_model import DatasetEnhanceOptions, RuntimeOptions, enhance_dataset, load_enhancer
    from splatent_pipeline import BatchConfig, contact_sheet, evaluate_results, run_batch
    from splatent_train import TrainConfig

    t_start = time.perf_counter()
    work = args.work
    train_dirs = _scene_dirs(args.train_scenes)
    names = {p.name: p for p in train_dirs}
    evals: dict[str, Path] = {}
    for spec in args.eval_scenes.split(","):
        if spec in names:
            evals[spec] = names.pop(spec)  # held out of training
        elif Path(spec).is_dir():
            evals[Path(spec).name] = Path(spec)
        else:
            raise SystemExit(f"--eval-scenes {spec}: neither a training scene's name nor a folder")
    scenes = work / "scenes"
    shutil.rmtree(scenes, ignore_errors=True)
    scenes.mkdir(parents=True)
    for name, path in {**names, **evals}.items():
        (scenes / name).symlink_to(path.resolve(), target_is_directory=True)
    lpips = _lpips_available() if args.lpips else False
    report = {
        **machine(), "command": recorded_command("realscenes.py", ("--out", "--sheets", "--work", "--train-scenes")),
        "train_scenes": sorted(names), "eval_scenes": sorted(evals), "codec": args.codec, "base_model": args.base_model,
        "fit_steps": args.fit_steps, "train_steps": args.train_steps, "top_k": args.top_k, "lpips": lpips,
        "protocols": {},
    }
    fit_options = {"eval_every": args.fit_steps, "checkpoint_every": 0, "tensorboard": False, "progress": False,
                   "init_points": args.init_points}
    for protocol in args.protocols.split(","):
        root = work / protocol
        entry: dict = {"seconds": {}}
        report["protocols"][protocol] = entry
        t0 = time.perf_counter()
        batch = run_batch(BatchConfig(
            scenes_dir=scenes, output_dir=root, codec=args.codec, protocol=protocol, steps=args.fit_steps,
            fit_options=fit_options, top_k=max(args.top_k), pairs="test-views", test_scenes=sorted(evals),
            backend=args.backend, device=args.device), say=lambda line: print(line, flush=True))
        entry["seconds"]["batch"] = time.perf_counter() - t0
        entry["scenes"] = [dataclasses.asdict(r) for r in batch.scenes]
        entry["entries"] = batch.entries
        entry["table"] = batch.table()
        _save(report, args.out)
        if batch.dataset is None:
            continue
        configs = {k: TrainConfig(
            dataset_path=batch.dataset, output_dir=root / f"train_k{k}", base_model=args.base_model, top_k=k,
            gt_from_latents=True, resolution=args.resolution, eval_resolution=0, lambda_lpips=0.0,
            lambda_rgb=args.lambda_rgb, learning_rate=args.lr, lr_warmup_steps=min(100, args.train_steps // 10),
            lr_scheduler="cosine", train_batch_size=args.batch_size, max_train_steps=args.train_steps,
            dataloader_num_workers=args.workers,
            seed=0, checkpointing_steps=0, eval_freq=0, viz_freq=0, logger="none",
            mixed_precision="bf16" if args.device != "cpu" and torch.cuda.is_available() else "no",
            cpu=args.device == "cpu", log_every=50) for k in args.top_k}
        t0 = time.perf_counter()
        models = {}
        # One enhancer per number of references, trained at once in separate processes (--train-jobs): a step of
        # the small UNet is bound by Python and kernel launches (train_step.py: ~110 ms of CPU against ~36 ms of
        # GPU for 4 views at batch 16 on an H200), so one process leaves the GPU mostly idle.
        jobs = max(1, min(args.train_jobs, len(configs)))
        with _executor(jobs) as pool:
            for k, result in zip(configs, pool.map(_train, configs.values())):
                models[k] = Path(result.pop("enhancer_dir"))
                entry.setdefault("train", {})[str(k)] = result
        entry["seconds"]["train"] = time.perf_counter() - t0
        entry["train_jobs"] = jobs
        _save(report, args.out)
        t0 = time.perf_counter()
        per_scene: dict = {}
        for name in sorted(evals):
            render = root / "scenes" / name / "renders" / name
            codec = codec_from_manifest(root / "scenes" / name / "latents")
            per_scene[name] = {}
            enhanced_dirs = {}
            for k, enhancer_dir in models.items():
                model = load_enhancer(enhancer_dir)
                out = root / f"enhance_k{k}" / name
                enhance_dataset(batch.dataset, out, model, codec, DatasetEnhanceOptions(
                    split="test", scene_id=f"/renders/{name}/", save_images=False, metrics=False, overwrite=True),
                    options=RuntimeOptions(device=args.device, batch_size=16), model_source=str(enhancer_dir))
                enhanced_dirs[k] = out / "enhanced"
                ev = evaluate_results(render, root / f"eval_k{k}" / name, enhanced=out / "enhanced", lpips=lpips, device=args.device, codec=codec,
                                      title=f"{name}, {protocol} protocol, {k} references")
                per_scene[name][str(k)] = ev.means
            _sheet(args, protocol, name, render, enhanced_dirs, codec, load_scene, load_latent, contact_sheet)
            # kept scene by scene: a run cut off by its time limit keeps what it measured (the report says so)
            entry["eval"], entry["mean"] = per_scene, _means(per_scene, args.top_k)
            _save(report, args.out)
        entry["seconds"]["eval"] = time.perf_counter() - t0
        _save(report, args.out)
    report["wall_seconds"] = time.perf_counter() - t_start
    _save(report, args.out)
    return report


def _train(config) -> dict:
    """Train one enhancer (in a worker process); what the report keeps of it."""
    from splatent_train import train_enhancer

    result = train_enhancer(config)
    return {"enhancer_dir": str(result.enhancer_dir), "steps": result.steps, "seconds": result.seconds,
            "steps_per_second": result.steps_per_second, "samples_per_second": result.samples_per_second,
            "losses": result.losses, "peak_memory_gb": result.peak_memory_gb}


class _InProcess:
    """``map`` in this process (one job): no worker to spawn."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, items):
        return map(fn, items)


def _executor(jobs: int):
    if jobs == 1:
        return _InProcess()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: CUDA cannot be used in a forked child of a process that has touched it
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))


def _means(per_scene: dict, top_ks: list[int]) -> dict:
    """Mean over evaluation scenes: render, ceiling, and enhanced per number of references; goal checks."""
    out: dict = {}
    for metric in ("psnr", "ssim", "lpips"):
        rows = {}
        for kind in ("render", "ceiling"):
            vals = [s[str(top_ks[0])][kind][metric] for s in per_scene.values() if metric in s[str(top_ks[0])].get(kind, {})]
            if vals:
                rows[kind] = float(np.mean(vals))
        for k in top_ks:
            vals = [s[str(k)]["enhanced"][metric] for s in per_scene.values() if metric in s[str(k)].get("enhanced", {})]
            if vals:
                rows[f"enhanced_k{k}"] = float(np.mean(vals))
        if rows:
            out[metric] = rows
    psnr = out.get("psnr", {})
    best = max(top_ks)
    if "render" in psnr and f"enhanced_k{best}" in psnr:
        out["gain_db"] = psnr[f"enhanced_k{best}"] - psnr["render"]
        out["goal_gain_met"] = out["gain_db"] >= 1.5
        ordered = [psnr.get(f"enhanced_k{k}") for k in sorted(top_ks)]
        out["goal_order_met"] = all(a is not None and b is not None and b >= a for a, b in zip(ordered, ordered[1:]))
    return out


@torch.no_grad()
def _sheet(args, protocol, name, render, enhanced_dirs, codec, load_scene, load_latent, contact_sheet) -> None:
    """Photo | render | enhanced with each number of references | ceiling, for up to three test views."""
    from PIL import Image

    from splatent_data import RenderLayout

    layout = RenderLayout(render)
    manifest = json.loads(layout.manifest.read_text())
    scene = load_scene(manifest["scene"])
    codec = codec.to(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"),
                     torch.float32)
    stems = layout.stems("nvs")
    picks = [stems[i] for i in sorted({0, len(stems) // 2, len(stems) - 1})]
    rows = []

    def decode(path: Path) -> np.ndarray:
        img = codec.decode(load_latent(path)[None].to(codec.device))[0].float().clamp(0, 1)
        return img.permute(1, 2, 0).cpu().numpy()

    for stem in picks:
        columns = []
        rendered = decode(layout.latent("nvs", stem))
        h, w = rendered.shape[:2]
        with Image.open(scene.camera(stem).image_path) as photo:
            columns.append((f"{stem} photo", np.asarray(photo.convert("RGB").resize((w, h), Image.Resampling.LANCZOS))))
        columns.append(("render", rendered))
        for k, folder in sorted(enhanced_dirs.items()):
            if (folder / f"{stem}.pt").is_file():
                columns.append((f"enhanced, {k} refs", decode(folder / f"{stem}.pt")))
        columns.append(("codec ceiling", decode(layout.latent("nvs_gt", stem))))
        rows.append(contact_sheet(columns, height=160))
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    args.sheets.mkdir(parents=True, exist_ok=True)
    canvas.save(args.sheets / f"realscenes-{protocol}-{name}.png")


def merge_reports(reports: list[dict]) -> dict:
    """One report from runs of single protocols (e.g. two processes sharing one GPU): their protocols side by
    side, the wall time of the longest, the commands joined."""
    merged = dict(reports[0])
    merged["protocols"] = {}
    for r in reports:
        merged["protocols"].update(r["protocols"])
    if all("wall_seconds" in r for r in reports):
        merged["wall_seconds"] = max(r["wall_seconds"] for r in reports)
    else:
        merged.pop("wall_seconds", None)
    merged["command"] = " & ".join(dict.fromkeys(r["command"] for r in reports))
    return merged


def report_md(report: dict) -> str:
    lines = [
        f"{report['date']}, {report['device']}, torch {report['torch']} (CUDA {report['cuda']}); codec "
        f"{report['codec']}, enhancer `{report['base_model']}` trained from scratch for {report['train_steps']} steps "
        f"per number of references; fits of {report['fit_steps']} steps at latent resolution; "
        + (f"{report['wall_seconds']:.0f} s in all. " if "wall_seconds" in report else "the run did not finish. ") +
        f"Training scenes: {', '.join(report['train_scenes'])}. "
        f"Evaluation scenes (never trained on): {', '.join(report['eval_scenes'])}. LPIPS: "
        f"{'yes' if report['lpips'] else 'not computed (its VGG weights cannot be downloaded here)'}.",
        "",
    ]
    if report.get("note"):
        lines += [f"Note: {report['note']}", ""]
    for protocol, entry in report["protocols"].items():
        mean = entry.get("mean", {})
        psnr, ssim = mean.get("psnr", {}), mean.get("ssim", {})
        if "eval" not in entry:
            train = entry.get("train", {})
            lines += [f"### {protocol} protocol", "",
                      "**Not measured: the run ended (device time limit) before the evaluation finished.** What did run:",
                      "", "Scenes of the batch:", "", entry.get("table", ""), "",
                      f"Dataset entries: {entry.get('entries')}. Enhancers trained: " + ", ".join(
                          f"{k} references {t['steps']} steps in {t['seconds']:.0f} s ({t['steps_per_second']:.1f} steps/s, "
                          f"{t['samples_per_second']:.0f} samples/s, final latent L2 {t['losses'].get('loss_l2', float('nan')):.3f})"
                          for k, t in train.items()) + ".", ""]
            lines += [f"![{protocol} {name}](realscenes-{protocol}-{name}.png)" for name in report["eval_scenes"]
                      if (Path(__file__).resolve().parents[2] / "benchmarks" / f"realscenes-{protocol}-{name}.png").is_file()]
            lines.append("")
            continue
        done = list(entry.get("eval", {}))
        partial = (f" (**only {', '.join(done)} of {len(report['eval_scenes'])} evaluation scenes: the run reached its "
                   f"time limit**)") if len(done) < len(report["eval_scenes"]) else ""
        lines += [f"### {protocol} protocol", "", f"Mean over the evaluation scenes{partial} (PSNR dB / SSIM against the photos):", "",
                  "| | render | " + " | ".join(f"enhanced, {k} refs" for k in report["top_k"]) + " | codec ceiling |",
                  "|---|---|" + "---|" * len(report["top_k"]) + "---|"]
        cells = [f"{psnr.get('render', float('nan')):.2f} / {ssim.get('render', float('nan')):.4f}"]
        cells += [f"{psnr.get(f'enhanced_k{k}', float('nan')):.2f} / {ssim.get(f'enhanced_k{k}', float('nan')):.4f}"
                  for k in report["top_k"]]
        cells.append(f"{psnr.get('ceiling', float('nan')):.2f} / {ssim.get('ceiling', float('nan')):.4f}")
        lines += ["| mean | " + " | ".join(cells) + " |"]
        for name, per_k in entry.get("eval", {}).items():
            first = per_k[str(report["top_k"][0])]
            row = [f"{first['render']['psnr']:.2f}"] + [f"{per_k[str(k)]['enhanced']['psnr']:.2f}" for k in report["top_k"]]
            row.append(f"{first['ceiling']['psnr']:.2f}")
            lines.append(f"| {name} (PSNR) | " + " | ".join(row) + " |")
        if "gain_db" in mean:
            lines += ["", f"Gain of {max(report['top_k'])} references over the render: {mean['gain_db']:+.2f} dB "
                          f"(goal +1.5 dB: {'met' if mean['goal_gain_met'] else 'not met'}); more references never worse: "
                          f"{'met' if mean['goal_order_met'] else 'not met'}."]
        train = entry.get("train", {})
        if train:
            lines += ["", f"Enhancers ({entry.get('train_jobs', 1)} trained at once): " + ", ".join(
                f"{k} references {t['steps']} steps at {t['steps_per_second']:.1f} steps/s "
                f"({t['samples_per_second']:.0f} samples/s, final latent L2 {t['losses'].get('loss_l2', float('nan')):.3f})"
                for k, t in train.items()) + "."]
        lines += ["", "Scenes of the batch:", "", entry.get("table", ""), "",
                  "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in entry.get("seconds", {}).items()), ""]
        for name in report["eval_scenes"]:
            lines.append(f"![{protocol} {name}](realscenes-{protocol}-{name}.png)")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-scenes", default=f"{SHARED / 'scenes'},{SHARED / 'fox'}",
                   help="a folder of scenes, or comma-separated scene folders (default: ../shared's posed scenes and fox)")
    p.add_argument("--eval-scenes", default=",".join(DEFAULT_EVAL),
                   help="comma-separated: names among the training scenes (held out) or folders of other scenes")
    p.add_argument("--protocols", default="dense,sparse")
    p.add_argument("--codec", default="taef2")
    p.add_argument("--base-model", default="small")
    p.add_argument("--fit-steps", type=int, default=800)
    p.add_argument("--init-points", type=int, default=50_000)
    p.add_argument("--train-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="data-loader processes (H200: 5.7 steps/s with 1, 8.4 with 8; beyond that the step itself is slow)")
    p.add_argument("--train-jobs", type=int, default=None,
                   help="enhancers trained at once, one process each (default: 3 on a GPU, 1 on the CPU)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--lambda-rgb", type=float, default=0.0)
    p.add_argument("--resolution", type=int, default=256, help="training crop in pixels (latents: /8)")
    p.add_argument("--top-k", default="0,1,3")
    p.add_argument("--lpips", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="auto")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatent-realscenes",
                   help="fits, renders and models (default: the system's temporary folder)")
    p.add_argument("--out", type=Path, default=Path("realscenes.json"))
    p.add_argument("--sheets", type=Path, default=None, help="folder for the contact sheets (default: beside --out)")
    p.add_argument("--report", type=Path, action="append",
                   help="write RESULTS.md's section from this JSON instead of running (repeat: one per protocol run)")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = p.parse_args()
    if args.report:
        report = merge_reports([json.loads(path.read_text()) for path in args.report])
        write_section(args.results, SECTION, TITLE, report["command"], report_md(report))
        return
    args.top_k = [int(k) for k in args.top_k.split(",")]
    args.sheets = args.sheets or args.out.parent
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.train_jobs is None:
        args.train_jobs = 1 if args.device == "cpu" else len(args.top_k)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(args)


if __name__ == "__main__":
    main()
