"""The ``profiles`` section of ``benchmarks/RESULTS.md`` from the JSON that ``tools/bench/profile_fit.py`` and
``tools/bench/train.py --profile`` wrote: steps/s, device kernel time against wall time per step, and the kernel and
host-operator tables. ::

    python tools/bench/profile_report.py --fit benchmarks/profiles/fit-fox-h100.json \\
        --train benchmarks/profiles/train-h100.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from profiling import markdown
from results_md import recorded_command, write_section  # siblings: tools/bench is on sys.path when its scripts run


def _without_ranges(top: list[dict]) -> list[dict]:
    """Kernel rows only (profiles written before profiling.py dropped record_function ranges hold them)."""
    return [r for r in top if "#" not in r["name"] and not r["name"].startswith("ProfilerStep")]


def fit_part(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [f"### fit: fox latent fit ({r['codec']} latents), {r['device']}, torch {r['torch']}", "",
             "| variant | steps | fit s | steps/s | ms / step | Gaussians | test latent PSNR |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, f in r["fits"].items():
        sh = "gsplat's kernel" if r.get("latent_sh") == "gsplat" else "PyTorch"  # files before issue 16: PyTorch
        label = {"baseline": f"multi-tensor Adam (`foreach`), latent SH in {sh}",
                 "torch-sh": "fused Adam, latent SH in PyTorch", "fused": f"fused Adam, latent SH in {sh}"}.get(name, name)
        lines.append(f"| {label} | {f['steps']} | {f['seconds']:.1f} | {f['steps_per_second']:.0f} | "
                     f"{f['ms_per_step']:.2f} | {f['num_gaussians']:,} | {f['test_psnr']:.2f} dB |")
    p = r["profile"]
    kernels = {"ms_per_step": p["kernels"]["ms_per_step"], "top": _without_ranges(p["kernels"]["top"])}
    launches = next((x["calls"] for x in p["host"]["top"] if x["name"] == "cudaLaunchKernel"), None)
    per_step = f"~{launches / p['steps']:.0f}" if launches else "many"
    lines += ["", f"Profile of {p['steps']} steps (fused Adam, the CUDA default): **{kernels['ms_per_step']:.2f} ms of "
              f"GPU kernels per step against {p['profiled_ms_per_step']:.2f} ms of wall time** (profiler on) and "
              f"{p['host']['ms_per_step']:.2f} ms of host operators: the fit is bound by the host (Python, {per_step} "
              f"`cudaLaunchKernel` a step), not by the GPU.", "", "Kernels:", "", markdown(kernels, 10), "",
              "Host operators (self CPU time):", "", markdown(p["host"], 10)]
    return "\n".join(lines)


def rgb_part(path: Path) -> str:
    """``tools/bench/rgb_recipe.py``: our RGB fit against the plain gsplat loop, same views and steps."""
    r = json.loads(path.read_text())
    lines = [f"### RGB 3DGS on fox: `splatent fit --target rgb` vs a plain gsplat recipe (`tools/bench/rgb_recipe.py`), "
             f"{r['device']}, {r['steps']} steps at {r['scale']} of the photos' size", "",
             "| recipe | fit s | steps/s | Gaussians | test PSNR | test SSIM |", "|---|---:|---:|---:|---:|---:|"]
    names = {"gsplat": "plain gsplat (`simple_trainer`'s loop and defaults)", "ours": "ours (`fit_scene`, target rgb)"}
    for name, f in r["recipes"].items():
        lines.append(f"| {names.get(name, name)} | {f['seconds']:.1f} | {f['steps_per_second']:.0f} | "
                     f"{f['num_gaussians']:,} | {f['test_psnr']:.2f} dB | {f['test_ssim']:.4f} |")
    ours, plain = r["recipes"].get("ours"), r["recipes"].get("gsplat")
    if ours and plain:
        met = ours["seconds"] <= plain["seconds"] and ours["test_psnr"] >= plain["test_psnr"] - 0.05
        lines += ["", f"- Ours takes {ours['seconds'] / plain['seconds']:.2f}× the plain recipe's time at "
                      f"{ours['test_psnr'] - plain['test_psnr']:+.2f} dB (goal: as fast at equal PSNR or better: "
                      f"{'met' if met else 'NOT met'})."]
    return "\n".join(lines)


# Kernel families a training step's profile is read by (name fragments, first match wins).
FAMILIES = (
    ("cuDNN layout conversions NCHW↔NHWC", ("nchwToNhwc", "nhwcToNchw")),
    ("memory-efficient attention (heads wider than flash/cuDNN take)", ("fmha_cutlass",)),
    ("flash / cuDNN attention", ("sdpa", "flash")),
    ("AdamW and gradient clipping (multi-tensor kernels)", ("multi_tensor_apply",)),
    ("GroupNorm (eager, float32 statistics)", ("RowwiseMoments", "ComputeInternalGradients")),
    ("convolutions and matmuls", ("xmma", "implicit_gemm", "nvjet", "gemm")),
)


def families(top: list[dict]) -> list[tuple[str, float]]:
    """``(family, ms per step)`` of the table's rows, largest first (rows in no family are left out)."""
    totals: dict[str, float] = {}
    for row in top:
        for name, fragments in FAMILIES:
            if any(f in row["name"] for f in fragments):
                totals[name] = totals.get(name, 0.0) + row["ms_per_step"]
                break
    return sorted(totals.items(), key=lambda kv: -kv[1])


def train_part(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [f"### train: enhancer step, {r['device']}, torch {r['torch']}, {r['size']}×{r['size']}, batch "
             f"{r['batch']}, {r['top_k']} references", "", "| recipe | steps/s | × original |", "|---|---:|---:|"]
    base = r["recipes"].get("original", {}).get("steps_per_s")
    for name, rec in r["recipes"].items():
        ratio = f"{rec['steps_per_s'] / base:.2f}" if base else ""
        lines.append(f"| {name} | {rec['steps_per_s']:.2f} | {ratio} |")
    for prof in r.get("profiles", []):
        top = _without_ranges(prof["top"])
        kernel_ms = prof["kernel_ms_per_step"] - sum(x["ms_per_step"] for x in prof["top"] if x not in top)
        launches = next((x["calls"] for x in prof.get("host_top", []) if x["name"] == "cudaLaunchKernel"), None)
        graphs = next((x["calls"] for x in prof.get("host_top", []) if x["name"] == "cudaGraphLaunch"), None)
        wall = 1e3 / r["recipes"][prof["recipe"]]["steps_per_s"] if prof["recipe"] in r["recipes"] else None
        head = (f"Profile of `{prof['recipe']}` (5 steps): **{kernel_ms:.0f} ms of GPU kernels per step against "
                f"{wall:.0f} ms of wall time** unprofiled" if wall else f"Profile of `{prof['recipe']}` (5 steps): "
                f"**{kernel_ms:.0f} ms of GPU kernels per step**")
        head += f" ({launches // 5 if launches else '?'} `cudaLaunchKernel`"
        head += f" and {graphs // 5} CUDA graph launches a step)." if graphs else " a step)."
        parts = [f"{name} {ms:.1f} ms ({ms / kernel_ms:.0%})" for name, ms in families(top)]
        lines += ["", head + (" By kind (the table's rows): " + "; ".join(parts) + "." if parts else ""), "",
                  "Kernels:", "",
                  markdown({"ms_per_step": kernel_ms, "top": [dict(x, share=x["ms_per_step"] / kernel_ms) for x in top]}, 12),
                  "", "Host operators (self CPU time):", "", markdown({"top": _without_ranges(prof.get("host_top", []))}, 10)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", type=Path, action="append", default=[])
    parser.add_argument("--rgb", type=Path, action="append", default=[])
    parser.add_argument("--train", type=Path, action="append", default=[])
    parser.add_argument("--note", type=Path, help="A Markdown file whose paragraph goes first (what was measured, what is next).")
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()
    parts = [args.note.read_text().strip()] if args.note else []
    parts += [fit_part(path) for path in args.fit]
    parts += [rgb_part(path) for path in args.rgb]
    parts += [train_part(path) for path in args.train]
    write_section(args.results, "profiles", "profiles: where the steps go (`tools/bench/profile_fit.py`, "
                  "`tools/bench/train.py --profile`)", recorded_command("profile_report.py", ("--results", "--note")),
                  "\n\n".join(parts))


if __name__ == "__main__":
    main()
