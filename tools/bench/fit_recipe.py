"""The latent fit's two recipes on real scenes, judged by the decoded test views (to choose ``FitConfig.rgb_weight``'s
default):

* **A**, latents only (``rgb_weight=0``, the default): L1 on the standardised latents at latent resolution;
* **B**, the original's joint recipe (``rgb_weight > 0``): the same Gaussians also carry an RGB head (SH degree
  ``--rgb-sh-degree``), rendered at ``--rgb-scale`` x the photos' size (default 1/8: the latents' size, as the
  original renders it; fit.py supervises it with the photo resized to that size, where the original upsampled the
  render to the photo's) and scored with L1 + ``--rgb-ssim-weight`` D-SSIM, added to the latent loss with weight
  ``rgb_weight`` (``splatent_splat.fit``).

For each scene of ``--scenes`` and each view protocol of ``--protocols`` (``sparse``: 5 furthest-point input views,
``dense``: 30; the other views are tested): the scene's taef2 latents once (the pipeline's undistort and extract
stages, :class:`splatent_pipeline.PipelineRun` stopped after ``extract``: resumable), then one fit per
``--rgb-weights`` value with the same steps, seed and initial points (:func:`splatent_splat.fit_scene`), its test
views rendered (:func:`splatent_splat.render_model`), decoded and scored against the photos
(:func:`splatent_pipeline.evaluate_results`: PSNR / SSIM of the decoded render, and the codec's ceiling).

Run here on the CPU (torch backend)::

    python tools/bench/fit_recipe.py --protocols sparse --out benchmarks/fit_recipe-sparse.json

then ``python tools/bench/fit_recipe.py --report benchmarks/fit_recipe-sparse.json --results benchmarks/RESULTS.md``
(``--report`` repeats: one JSON per run, e.g. one per protocol). ``--steps 5 --init-points 500 --scenes
.device/scenes/milk`` checks the script in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "fit_recipe"
TITLE = "fit recipes: latents only (A) against the original's joint RGB + latent loss (B), decoded test PSNR (`tools/bench/fit_recipe.py`)"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_SCENES = ",".join(f".device/scenes/{name}" for name in ("milk", "table_room", "beer_can"))


def recipe_name(rgb_weight: float) -> str:
    return "A (latents only)" if rgb_weight == 0 else f"B (joint, rgb_weight={rgb_weight:g})"


def _save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))


def run(args) -> dict:
    from splatent_pipeline import PipelineConfig, PipelineRun, evaluate_results
    from splatent_splat import FitConfig, fit_scene, render_model

    t_start = time.perf_counter()
    report = {
        **machine(args.device), "backend": args.backend,
        "command": recorded_command("fit_recipe.py", ("--out", "--work")),
        "codec": args.codec, "steps": args.steps, "init_points": args.init_points, "seed": args.seed,
        "rgb_weights": args.rgb_weights, "rgb_scale": args.rgb_scale, "rgb_sh_degree": args.rgb_sh_degree,
        "rgb_ssim_weight": args.rgb_ssim_weight, "protocols": {},
    }
    scenes = [Path(p) for p in args.scenes.split(",") if p]
    for protocol in args.protocols.split(","):
        rows: list[dict] = []
        report["protocols"][protocol] = {"rows": rows}
        for scene in scenes:
            root = args.work / protocol / scene.name
            # undistort (when needed) and extract, as a pipeline run does them: the latents of this protocol's split
            pipe = PipelineRun(PipelineConfig(
                scene_path=scene, output_dir=root, codec=args.codec, fit_options={"split_mode": protocol},
                steps=args.steps, backend=args.backend, device=args.device, lpips=False, stop_after="extract",
                progress=False, distributed=False), say=lambda line, s=scene.name: print(f"{s}: {line}", flush=True))
            pipe.run()
            ctx = pipe.context
            for weight in args.rgb_weights:
                if time.perf_counter() - t_start > args.budget_s:
                    print(f"time budget of {args.budget_s:.0f} s spent: {protocol} {scene.name} rgb_weight={weight:g} not run",
                          flush=True)
                    report.setdefault("not_run", []).append(f"{protocol} {scene.name} rgb_weight={weight:g}")
                    continue
                work = root / f"rgb_weight_{weight:g}"
                fit = FitConfig.from_flat(
                    steps=args.steps, latents=str(ctx.paths.latents.resolve()), images=ctx.images, backend=args.backend,
                    device=args.device, split_mode=protocol, init_points=args.init_points, seed=args.seed,
                    rgb_weight=weight, rgb_scale=args.rgb_scale, rgb_sh_degree=args.rgb_sh_degree,
                    rgb_ssim_weight=args.rgb_ssim_weight, eval_every=0, checkpoint_every=0, tensorboard=False,
                    progress=False)
                print(f"{scene.name}: {protocol}, {recipe_name(weight)}: fitting {args.steps} steps", flush=True)
                result = fit_scene(ctx.working_scene, work / "model", fit, overwrite=True)
                renders = work / "renders" / scene.name
                render_model(work / "model", renders, backend=args.backend, device=args.device)
                ev = evaluate_results(renders, work / "eval", lpips=False, device=args.device, codec=ctx.codec,
                                      title=f"{scene.name}, {protocol} protocol, {recipe_name(weight)}")
                manifest = json.loads((work / "model" / "fit.json").read_text())
                row = {
                    "scene": scene.name, "protocol": protocol, "rgb_weight": weight, "recipe": recipe_name(weight),
                    "views": {"train": len(manifest["split"]["train"]), "test": len(manifest["split"]["test"])},
                    "decoded": ev.means["render"], "ceiling": ev.means["ceiling"],
                    "latent_psnr": result.test.get("psnr"), "rgb_head_psnr": result.test.get("rgb_psnr"),
                    "fit_seconds": result.seconds, "steps_per_second": result.steps_per_second,
                    "gaussians": result.num_gaussians, "losses": result.losses,
                }
                rows.append(row)
                print(f"{scene.name}: {protocol}, {row['recipe']}: decoded test PSNR {row['decoded']['psnr']:.2f} dB, "
                      f"SSIM {row['decoded']['ssim']:.4f} (ceiling {row['ceiling']['psnr']:.2f}), fit {result.seconds:.0f} s",
                      flush=True)
                report["wall_seconds"] = time.perf_counter() - t_start
                _save(report, args.out)
    report["wall_seconds"] = time.perf_counter() - t_start
    _save(report, args.out)
    return report


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs (e.g. one per protocol): their protocols side by side, wall times added."""
    merged = dict(reports[0])
    merged["protocols"] = {}
    for r in reports:
        merged["protocols"].update(r["protocols"])
    merged["wall_seconds"] = sum(r.get("wall_seconds", 0.0) for r in reports)
    merged["not_run"] = [x for r in reports for x in r.get("not_run", [])]
    merged["command"] = " ; ".join(dict.fromkeys(r["command"] for r in reports))
    return merged


def _means(rows: list[dict], weights: list[float]) -> dict[float, dict[str, float]]:
    """Per recipe, the mean over the scenes that every recipe finished (so the recipes are compared on the same scenes)."""
    done = [s for s in dict.fromkeys(r["scene"] for r in rows)
            if all(any(r["scene"] == s and r["rgb_weight"] == w for r in rows) for w in weights)]
    out = {}
    for w in weights:
        sel = [r for r in rows if r["rgb_weight"] == w and r["scene"] in done]
        if sel:
            out[w] = {"psnr": float(np.mean([r["decoded"]["psnr"] for r in sel])),
                      "ssim": float(np.mean([r["decoded"]["ssim"] for r in sel])),
                      "fit_seconds": float(np.mean([r["fit_seconds"] for r in sel])),
                      "ceiling": float(np.mean([r["ceiling"]["psnr"] for r in sel])), "scenes": len(sel)}
    return out


def _rgb_size(scale: float) -> str:
    return "latent resolution (1/8 of the photo size)" if scale * 8 == 1 else f"{scale:g} x the photo size ({8 * scale:g} x the latent size)"


def report_md(report: dict) -> str:
    weights = report["rgb_weights"]
    lines = [
        f"{report['date']}, {report['device']}, torch {report['torch']}, backend {report['backend']}; codec "
        f"{report['codec']}; every fit {report['steps']} steps from {report['init_points']:,} random points in the "
        f"cameras' frustums (these captures have no SfM points), seed {report['seed']}, same split and initial points "
        f"for both recipes; recipe B's RGB head rendered at {_rgb_size(report['rgb_scale'])} against the photo resized to "
        f"that size, SH "
        f"degree {report['rgb_sh_degree']}, L1 + {report['rgb_ssim_weight']:g} D-SSIM. Test views decoded with the codec "
        f"and scored against the photos (resized to 8 x the latent size); {report['wall_seconds']:.0f} s in all.",
        "",
    ]
    if report.get("note"):
        lines += [f"Note: {report['note']}", ""]
    if report.get("not_run"):
        lines += ["Not run (time budget): " + ", ".join(report["not_run"]) + ".", ""]
    for protocol, entry in report["protocols"].items():
        rows = entry["rows"]
        lines += [f"### {protocol} protocol", "",
                  "| scene | recipe | input / test views | decoded test PSNR | SSIM | latent PSNR | RGB head PSNR | fit s |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            head = f"{r['rgb_head_psnr']:.2f}" if r.get("rgb_head_psnr") is not None else "-"
            lines.append(f"| {r['scene']} | {r['recipe']} | {r['views']['train']} / {r['views']['test']} | "
                         f"{r['decoded']['psnr']:.2f} | {r['decoded']['ssim']:.4f} | {r['latent_psnr']:.2f} | {head} | "
                         f"{r['fit_seconds']:.0f} |")
        means = _means(rows, weights)
        for w, m in means.items():
            lines.append(f"| **mean** ({m['scenes']} scenes) | {recipe_name(w)} | | **{m['psnr']:.2f}** | "
                         f"**{m['ssim']:.4f}** | | | {m['fit_seconds']:.0f} |")
        if 0 in means:
            for w, m in means.items():
                if w != 0:
                    a = {r["scene"]: r["decoded"]["psnr"] for r in rows if r["rgb_weight"] == 0}
                    wins = sum(r["decoded"]["psnr"] > a[r["scene"]] for r in rows if r["rgb_weight"] == w and r["scene"] in a)
                    lines += ["", f"{recipe_name(w)} against A: {m['psnr'] - means[0]['psnr']:+.2f} dB PSNR, "
                                  f"{m['ssim'] - means[0]['ssim']:+.4f} SSIM (mean); higher PSNR on {wins} of "
                                  f"{m['scenes']} scenes."]
        if means:
            lines += ["", f"Codec ceiling (decode of the photo's own latent), mean: "
                          f"{next(iter(means.values()))['ceiling']:.2f} dB."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default=DEFAULT_SCENES, help="comma-separated scene folders (LLFF, COLMAP, transforms.json)")
    p.add_argument("--protocols", "--protocol", default="sparse", help="comma-separated: sparse, dense (or llff)")
    p.add_argument("--codec", default="taef2")
    p.add_argument("--steps", type=int, default=400, help="per fit (2-core CPU: about 5 min for A, 8 min for B)")
    p.add_argument("--init-points", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rgb-weights", default="0,1.0", help="comma-separated; 0 is recipe A, each other value a recipe B")
    p.add_argument("--rgb-scale", type=float, default=0.125,
                   help="recipe B's RGB render size, x the photos' (default 1/8: latent resolution, as the original "
                        "renders RGB; fit.py's default 1.0 renders the photo's size, 64x the pixels: far too slow on a CPU)")
    p.add_argument("--rgb-sh-degree", type=int, default=3)
    p.add_argument("--rgb-ssim-weight", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--budget-s", type=float, default=float("inf"),
                   help="start no further fit after this many seconds (the rest is reported as not run)")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="auto")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatent-fit-recipe",
                   help="latents, fits, renders and evaluations (default: the system's temporary folder)")
    p.add_argument("--out", type=Path, default=Path("fit_recipe.json"))
    p.add_argument("--report", type=Path, action="append",
                   help="write RESULTS.md's section from this JSON instead of running (repeat: one per run)")
    p.add_argument("--note", default=None, help="with --report: a line added to the section")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = p.parse_args()
    if args.report:
        report = merge_reports([json.loads(path.read_text()) for path in args.report])
        if args.note:
            report["note"] = args.note
        write_section(args.results, SECTION, TITLE, report["command"], report_md(report))
        return
    args.rgb_weights = [float(w) for w in args.rgb_weights.split(",")]
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    run(args)


if __name__ == "__main__":
    main()
