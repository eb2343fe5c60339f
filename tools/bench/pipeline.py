"""Benchmark the whole method end to end: ``splatent pipeline`` on the fox capture, stage by stage.

For each codec (``--codecs``, default ``pca,tiny-random``) it runs undistort → extract → fit →
render → dataset → enhance → eval in-process with the tiny enhancer (random weights: the
enhanced column measures mechanics, not quality; SD-Turbo weights cannot be downloaded here),
LPIPS off, and collects each run's ``pipeline.json`` (stage seconds, fit speed and test PSNR,
mean PSNR/SSIM of render, enhanced and codec ceiling) into one JSON report.

On the GPU machine (one call of ``tools/gpu_check.sh pipeline`` does it)::

    python tools/bench/pipeline.py --fox .device/fox --out $OUT/pipeline.json

From ``pipeline.json`` files of earlier runs, and into ``benchmarks/RESULTS.md``::

    python tools/bench/pipeline.py --collect A/pipeline.json B/pipeline.json --out pipeline.json
    python tools/bench/pipeline.py --report pipeline.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "pipeline"
TITLE = "pipeline: the whole method on fox, stage by stage (`tools/bench/pipeline.py`)"
STAGES = ("undistort", "extract", "fit", "render", "dataset", "enhance", "eval")
DEFAULT_FOX = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fox"


def summarise(record: dict) -> dict:
    """The numbers of one ``pipeline.json`` that the table shows."""
    stages = record["stages"]
    fit = stages.get("fit", {})
    return {"codec": record["config"]["codec"], "steps": record["config"]["steps"],
            "seconds": {s: stages[s]["seconds"] for s in STAGES if s in stages},
            "fit_steps_per_second": fit.get("steps_per_second"), "gaussians": fit.get("gaussians"),
            "fit_test_psnr": (fit.get("test") or {}).get("psnr"),
            "means": stages.get("eval", {}).get("means", {})}


def run(args: argparse.Namespace) -> dict:
    from splatent_pipeline import PipelineConfig, run_pipeline

    report = {**machine(), "scene": str(args.fox), "runs": []}
    for codec in args.codecs.split(","):
        output = args.work / f"fox-{codec}"
        cfg = PipelineConfig(scene_path=args.fox, output_dir=output, codec=codec, model_splatent_path="tiny",
                             steps=args.steps, lpips=False, device=args.device)
        run_pipeline(cfg)
        report["runs"].append(summarise(json.loads((output / "pipeline.json").read_text())))
    return report


def table(report: dict) -> str:
    lines = [f"Date: {report.get('date', '?')} · device: {report.get('device')} · torch {report.get('torch')} "
             f"(CUDA {report.get('cuda')}) · scene: fox (50 photos of 1080×1920, OPENCV distortion) · "
             "enhancer: the `tiny` preset with random weights (mechanics only) · LPIPS off", "",
             "| codec | " + " | ".join(f"{s} s" for s in STAGES) + " | total s | fit steps/s | Gaussians | "
             "render PSNR | enhanced PSNR | ceiling PSNR |",
             "|---|" + "---:|" * (len(STAGES) + 6)]
    for r in report["runs"]:
        secs = [r["seconds"].get(s) for s in STAGES]
        means = r["means"]
        psnr = [f"{means[k]['psnr']:.2f} dB" if k in means else "" for k in ("render", "enhanced", "ceiling")]
        lines.append(f"| {r['codec']} | " + " | ".join("" if s is None else f"{s:.1f}" for s in secs)
                     + f" | {sum(s for s in secs if s):.1f} | {r['fit_steps_per_second'] or 0:.0f} | "
                     f"{r['gaussians'] or 0:,} | " + " | ".join(psnr) + " |")
    lines += ["", "- The fit includes building gsplat's CUDA kernels when the machine had not built them yet "
                  "(about 80 s; `splatent fit --build-kernels` does it ahead of time).",
              "- `tiny-random` is a randomly initialised SD-VAE: its latents carry little of the image, so its "
              "PSNRs say nothing about quality; `pca` gives meaningful images."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--fox", type=Path, default=DEFAULT_FOX, help="The fox capture (transforms.json + images/).")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatent_pipeline_bench", help="Scratch folder.")
    parser.add_argument("--codecs", default="pca,tiny-random")
    parser.add_argument("--steps", type=int, default=10_000, help="Fit steps.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--collect", type=Path, nargs="+", help="Build the report from these pipeline.json files.")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) an existing JSON report.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose pipeline section to replace.")
    args = parser.parse_args()
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        if args.collect:
            report = {"runs": [summarise(json.loads(p.read_text())) for p in args.collect]}
        else:
            if not (args.fox / "transforms.json").is_file():
                raise SystemExit(f"no fox capture at {args.fox}; pass --fox PATH")
            report = run(args)
        report["command"] = "python tools/bench/pipeline.py"
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.results:
        write_section(args.results, SECTION, TITLE, report.get("command", "python tools/bench/pipeline.py"),
                      table(report))


if __name__ == "__main__":
    main()
