"""Benchmark and check the 3D stage on a CUDA GPU, in one run:

* ``build``: compile (or load) gsplat's CUDA extension, timed, and where it is cached;
* ``agree``: the PyTorch rasteriser against gsplat on the same Gaussians and cameras
  (images, alphas, gradients; tolerances in ``splatent_splat.agreement``);
* ``latent``: fox, undistorted, latents from the ``pca`` codec and from the
  ``tiny-random`` SD-VAE, each fitted at latent resolution (135x240) for
  ``--latent-steps`` (10 000): steps/s, wall time, peak GPU memory, final Gaussian
  count, test-view latent PSNR (goal: 10 000 steps in under 2 minutes on one H100);
* ``rgb``: the same fitter as plain 3DGS (N = 3, SH degree 3) on the undistorted
  fox photos at ``--rgb-scale`` of their size: test PSNR / SSIM every 10 000 steps
  up to ``--rgb-steps``, to compare with published 3DGS recipes.

Run on the GPU machine (``--fox`` is the capture; ``--work`` keeps the undistorted
copy and its latents between runs, so a second run skips that preparation)::

    MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0 python tools/bench/splat.py --fox FOX --out $OUT/splat.json

``--parts build,agree`` / ``--parts latent`` / ``--parts rgb`` split it across
calls (the JSON is rewritten after every part). Then put the numbers into
``benchmarks/RESULTS.md``::

    python tools/bench/splat.py --report splat.json --results benchmarks/RESULTS.md

``--device cpu --synthetic`` checks the script itself anywhere (torch backend,
a small procedural scene instead of fox, a few steps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "splat"
TITLE = "fit: latent Gaussian splatting on gsplat (`tools/bench/splat.py`)"
GOAL_SECONDS = 120.0
REPO = Path(__file__).resolve().parents[2]
DEFAULT_FOX = REPO.parent / "shared" / "data" / "fox"
PARTS = ("build", "agree", "latent", "rgb")


def _undistort_one(job: tuple):
    from splatent_data import load_rgb, save_rgb, undistort_image, undistorted_camera

    camera, dst = job
    if not Path(dst).exists():
        save_rgb(Path(dst), undistort_image(load_rgb(camera.image_path), camera)[0])
    return dataclasses.replace(undistorted_camera(camera), name=Path(dst).name, image_path=Path(dst))


def prepare_scene(fox: Path, work: Path, synthetic: bool) -> Path:
    """A pinhole copy of the capture (``splatent_data.undistort_scene``'s output, written by a process pool)."""
    from splatent_data import load_scene, make_synthetic_scene, write_transforms

    out = work / ("synthetic" if synthetic else "fox_undistorted")
    if (out / "transforms.json").is_file():
        return out
    if synthetic:
        make_synthetic_scene(out, n_views=16, width=128, height=96)
        return out
    scene = load_scene(fox)
    jobs = [(cam, out / "images" / f"{cam.stem}.png") for cam in scene.cameras]
    (out / "images").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=max(1, min(16, os.cpu_count() or 1))) as pool:
        cams = list(pool.map(_undistort_one, jobs))
    write_transforms(cams, out / "transforms.json")
    return out


def part_build(report: dict, args) -> None:
    from splatent_splat import build_gsplat_kernels

    if not torch.cuda.is_available():
        report["build"] = {"skipped": "no CUDA device"}
        return
    t0 = time.perf_counter()
    build = build_gsplat_kernels()
    report["build"] = {"status": build.status, "seconds": build.seconds, "wall_seconds": time.perf_counter() - t0,
                       "path": str(build.path) if build.path else None, "max_jobs": os.environ.get("MAX_JOBS"),
                       "arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST")}


def part_agree(report: dict, args) -> None:
    from splatent_splat.agreement import TOLERANCES, compare_backends, random_scene

    if not torch.cuda.is_available():
        report["agree"] = {"skipped": "no CUDA device"}
        return
    rows = []
    for channels, sh, mode, packed in ((4, None, "classic", True), (4, None, "antialiased", False),
                                       (3, 3, "classic", True), (4, 2, "classic", True)):
        scene = random_scene(num_gaussians=3000, width=96, height=72, channels=channels, sh_degree=sh,
                             seed=channels + (sh or 0))
        rep = compare_backends(scene, rasterize_mode=mode, packed=packed)
        rows.append({"channels": channels, "sh_degree": sh, "mode": mode, "packed": packed, **rep})
    report["agree"] = {"tolerances": TOLERANCES, "rows": rows, "ok": all(r["ok"] for r in rows)}


def _fit(scene: Path, model: Path, cfg) -> dict:
    from splatent_splat import fit_scene

    t0 = time.perf_counter()
    result = fit_scene(scene, model, cfg, overwrite=True)
    wall = time.perf_counter() - t0
    return {
        "steps": result.steps, "seconds": result.seconds, "wall_seconds": wall,
        "steps_per_second": result.steps_per_second, "num_gaussians": result.num_gaussians,
        "peak_gib": result.peak_memory_bytes / 2**30 if result.peak_memory_bytes else None,
        "test_psnr": result.test.get("psnr"), "test_ssim": result.test.get("ssim"),
        "history": [{k: v for k, v in h.items() if k != "per_view"} for h in result.history],
    }


def part_latent(report: dict, args, scene: Path) -> None:
    from splatent_latents import extract_latents, read_manifest
    from splatent_splat import FitConfig

    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    rows = []
    for codec in args.codecs.split(","):
        folder = f"features_{codec.replace('-', '_')}"
        t0 = time.perf_counter()
        extract_latents(scene, output=folder, images="images", codec=codec, device=device)
        extract_seconds = time.perf_counter() - t0
        shape = read_manifest(scene / folder).latent_shape(sorted(read_manifest(scene / folder).sizes)[0])
        cfg = FitConfig(steps=args.latent_steps, latents=folder, device=device, strategy=args.strategy,
                        init_points=args.init_points, eval_every=0, checkpoint_every=0, tensorboard=False,
                        progress=False)
        row = {"codec": codec, "latent_shape": list(shape), "extract_seconds": extract_seconds,
               **_fit(scene, args.work / f"model_{codec}", cfg)}
        row["goal_met"] = row["seconds"] < GOAL_SECONDS * args.latent_steps / 10_000
        rows.append(row)
        report["latent"] = {"strategy": args.strategy, "rows": rows}
        _save(report, args)


def part_rgb(report: dict, args, scene: Path) -> None:
    from splatent_splat import FitConfig

    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    cfg = FitConfig(steps=args.rgb_steps, target="rgb", sh_degree=3, rgb_scale=args.rgb_scale, device=device,
                    strategy=args.strategy, init_points=args.init_points, eval_every=min(10_000, args.rgb_steps),
                    checkpoint_every=0, tensorboard=False, progress=False)
    from splatent_data import load_scene

    cam = load_scene(scene).cameras[0]
    size = [round(cam.width * args.rgb_scale), round(cam.height * args.rgb_scale)]
    report["rgb"] = {"size": size, "strategy": args.strategy, **_fit(scene, args.work / "model_rgb", cfg)}


def _save(report: dict, args) -> None:
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def run(args) -> dict:
    import gsplat

    report = {
        **machine(), "gsplat": gsplat.__version__,
        "scene": "synthetic" if args.synthetic else str(args.fox),
    }
    if args.out and args.out.is_file():  # a run split into parts adds to the same JSON
        report = {**json.loads(args.out.read_text()), **report}
    parts = args.parts.split(",")
    for name in parts:
        if name not in PARTS:
            raise SystemExit(f"unknown part {name!r}; use {','.join(PARTS)}")
    if "build" in parts:
        part_build(report, args)
        _save(report, args)
    if "agree" in parts:
        part_agree(report, args)
        _save(report, args)
    if "latent" in parts or "rgb" in parts:
        t0 = time.perf_counter()
        scene = prepare_scene(args.fox, args.work, args.synthetic)
        report["prepare_seconds"] = time.perf_counter() - t0
        if "latent" in parts:
            part_latent(report, args, scene)
            _save(report, args)
        if "rgb" in parts:
            part_rgb(report, args, scene)
            _save(report, args)
    return report


def _f(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _home_relative(path: str) -> str:
    """``/root/.cache/x`` -> ``~/.cache/x``: the device's home folder means nothing to a reader."""
    return re.sub(r"^/(?:root|home/[^/]+)(?=/)", "~", str(path))


def table(report: dict) -> str:
    lines = [f"Date: {report.get('date', '?')} · device: {report.get('device')} · torch {report.get('torch')} "
             f"(CUDA {report.get('cuda')}) · gsplat {report.get('gsplat')} · scene: {report.get('scene')}", ""]
    build = report.get("build")
    if build and "status" in build:
        lines += [f"- gsplat CUDA extension: {build['status']} in {build['seconds']:.1f} s "
                  f"(MAX_JOBS={build.get('max_jobs')}, TORCH_CUDA_ARCH_LIST={build.get('arch_list')}); cached at `{_home_relative(build['path'])}`", ""]
    agree = report.get("agree")
    if agree and "rows" in agree:
        tol = agree["tolerances"]
        lines += [f"torch backend vs gsplat (3000 Gaussians, 3 views of 96x72; tolerances: image mean ≤ {tol['image_mean']:g}, "
                  f"max ≤ {tol['image_max']:g}, gradient relative L2 ≤ {tol['grad_rel']:g}):", "",
                  "| features | mode | packed | image mean / max | alpha max | worst gradient (rel. L2) | ok |",
                  "|---|---|---|---:|---:|---:|---|"]
        for r in agree["rows"]:
            feat = f"{r['channels']}-ch" + (f", SH {r['sh_degree']}" if r["sh_degree"] is not None else "")
            worst = max(r["grad_rel"], key=r["grad_rel"].get)
            lines.append(f"| {feat} | {r['mode']} | {r['packed']} | {r['image_mean']:.1e} / {r['image_max']:.1e} | "
                         f"{r['alpha_max']:.1e} | {worst} {r['grad_rel'][worst]:.1e} | {'yes' if r['ok'] else 'NO'} |")
        lines.append("")
    latent = report.get("latent")
    if latent:
        lines += [f"Latent fits at latent resolution (densification: {latent['strategy']}; "
                  f"goal: 10 000 steps in under {GOAL_SECONDS:.0f} s):", "",
                  "| codec | latent (C×h×w) | steps | fit s | steps/s | peak GiB | Gaussians | test latent PSNR | goal |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in latent["rows"]:
            lines.append(f"| {r['codec']} | {'×'.join(map(str, r['latent_shape']))} | {r['steps']} | {r['seconds']:.1f} | "
                         f"{r['steps_per_second']:.0f} | {_f(r['peak_gib'], '.2f')} | {r['num_gaussians']:,} | "
                         f"{_f(r['test_psnr'], '.2f')} dB | {'met' if r['goal_met'] else 'NOT met'} |")
        lines.append("")
    for rgb in report.get("rgb_runs") or ([report["rgb"]] if report.get("rgb") else []):
        if lines[-1]:
            lines.append("")
        lines += [f"RGB 3DGS with the same fitter (N = 3, SH degree 3, {rgb['size'][0]}x{rgb['size'][1]}, "
                  f"{rgb['steps']} steps in {rgb['seconds']:.0f} s, {rgb['steps_per_second']:.0f} steps/s, "
                  f"peak {_f(rgb['peak_gib'], '.2f')} GiB, {rgb['num_gaussians']:,} Gaussians):", "",
                  "| step | test PSNR | test SSIM | Gaussians |", "|---:|---:|---:|---:|"]
        evaluated = [h for h in rgb["history"] if h["step"] and h["psnr"] is not None]
        for h in evaluated:
            lines.append(f"| {h['step']} | {_f(h['psnr'], '.2f')} dB | {_f(h['ssim'], '.4f')} | {h['num_gaussians']:,} |")
        best = max(evaluated, key=lambda h: h["psnr"], default=None)
        if best is not None and best is not evaluated[-1]:
            lines += ["", f"- Test PSNR peaks at step {best['step']} and is {best['psnr'] - evaluated[-1]['psnr']:.2f} dB "
                          f"lower at step {evaluated[-1]['step']}: more steps fit the training views, not the test views."]
    return "\n".join(lines)


def merge(reports: list[dict]) -> dict:
    """One report from several runs of this script (parts run on separate device calls): later
    build/agree results win, latent rows accumulate by codec, RGB runs are listed in order."""
    merged: dict = {"command": [], "rgb_runs": []}
    rows: dict[str, dict] = {}
    for report in reports:
        for key, value in report.items():
            if key == "latent":
                rows.update({r["codec"]: r for r in value["rows"]})
                merged["latent"] = {**value, "rows": list(rows.values())}
            elif key == "rgb":
                merged["rgb_runs"].append(value)
            elif key == "rgb_runs":
                merged["rgb_runs"].extend(value)
            elif key == "command":
                merged["command"].extend(value if isinstance(value, list) else [value])
            else:
                merged[key] = value
    return merged


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write (rewritten after every part).")
    parser.add_argument("--parts", default=",".join(PARTS), help="Comma-separated: build, agree, latent, rgb.")
    parser.add_argument("--fox", type=Path, default=DEFAULT_FOX, help="The fox capture (transforms.json + images/).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/splatent_splat_bench"),
                        help="Undistorted scene, latents and models (kept between runs; not under $OUT).")
    parser.add_argument("--synthetic", action="store_true", help="A small procedural scene instead of fox (script check).")
    parser.add_argument("--device", default="auto", help="auto or cpu (cpu: torch backend, for checking the script).")
    parser.add_argument("--codecs", default="pca,tiny-random", help="Codecs whose latents are fitted.")
    parser.add_argument("--latent-steps", type=int, default=10_000)
    parser.add_argument("--rgb-steps", type=int, default=10_000, help="30000 for the 3DGS recipe's length (evaluated every 10 000).")
    parser.add_argument("--rgb-scale", type=float, default=0.5, help="Fraction of the photo size for the RGB fit.")
    parser.add_argument("--strategy", default="default", help="default or mcmc.")
    parser.add_argument("--init-points", type=int, default=100_000, help="Random initial points (fox has no sparse points).")
    parser.add_argument("--report", type=Path, action="append",
                        help="Print (and with --results, write) the markdown of existing JSON(s), merged in order.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose splat section to replace.")
    args = parser.parse_args()
    if args.report:
        report = merge([json.loads(p.read_text()) for p in args.report])
    else:
        needs = {"latent", "rgb"} & set(args.parts.split(","))
        if needs and not args.synthetic and not (args.fox / "transforms.json").is_file():
            raise SystemExit(f"no fox capture at {args.fox}; pass --fox PATH (parts {', '.join(sorted(needs))} need it)")
        args.work.mkdir(parents=True, exist_ok=True)
        report = run(args)
        report["command"] = recorded_command("splat.py", ("--out", "--fox", "--work"))  # this machine's paths left out
        _save(report, args)
    print(table(report))
    if args.results:
        write_section(args.results, SECTION, TITLE, report.get("command", "python tools/bench/splat.py"), table(report))


if __name__ == "__main__":
    main()
