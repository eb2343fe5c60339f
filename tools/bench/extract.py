"""Benchmark latent extraction: the SD-Turbo VAE encoder, one image at a time vs batched.

Random weights in SD-Turbo's VAE architecture (``sd_vae_config()``: same layers,
same FLOPs as the real weights), on synthetic PNG scenes written to a temporary
folder, measured in one run:

* ``loop``: the original script's way: for each file, decode it, encode it in
  float32 with batch 1, ``latent_dist.sample()``, ``torch.save``, with PyTorch's
  defaults (cuDNN may run float32 convolutions as TF32, as the original did), and
  again with TF32 off (strict float32) for reference.
* ``encoder``: the encoder alone on tensors already on the device, per dtype and
  batch size (``channels_last`` for half precision), optionally ``torch.compile``d
  (NCHW and NHWC), optionally with its kernel table per image (``--profile``).
* ``extract``: ``splatent_latents.extract_latents`` end to end (files in, files out):
  batch 1 and the default batch, bf16, CPU workers decoding ahead.

Run on the GPU machine (one command; writes JSON and prints a table)::

    python tools/bench/extract.py --out $OUT/extract.json

then put the numbers into ``benchmarks/RESULTS.md``::

    python tools/bench/extract.py --report extract.json --results benchmarks/RESULTS.md

``--device cpu --tiny --sizes 64x48 --count 8`` checks the script itself anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from profiling import activities, kernel_table, markdown, print_table  # siblings: tools/bench is on sys.path
from results_md import recorded_command, write_section

SECTION = "extract"
GOAL_SPEEDUP, GOAL_RATE_512 = 5.0, 150.0


def write_image(args: tuple[Path, int, int, int]) -> None:
    """A deterministic photo-like PNG: smooth colour fields plus fine texture (so PNG decoding costs what it does on photos)."""
    from PIL import Image

    path, width, height, seed = args
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    texture = rng.normal(0.0, 12.0, (height, width, 1))
    pixels = np.clip(np.asarray(coarse, dtype=np.float32) + texture, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def make_scene(root: Path, width: int, height: int, count: int) -> Path:
    folder = root / f"scene_{width}x{height}" / "images_4"
    folder.mkdir(parents=True)
    jobs = [(folder / f"{i:05d}.png", width, height, i) for i in range(count)]
    with ProcessPoolExecutor(max_workers=max(1, min(16, os.cpu_count() or 1))) as pool:
        list(pool.map(write_image, jobs, chunksize=16))
    return folder.parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_vae(tiny: bool, seed: int = 0):
    from diffusers import AutoencoderKL

    from splatent_latents import sd_vae_config, tiny_vae_config

    torch.manual_seed(seed)
    return AutoencoderKL(**(tiny_vae_config() if tiny else sd_vae_config())).eval().requires_grad_(False)


def bench_loop(vae, scene: Path, device: torch.device, count: int, warmup: int = 3, tf32: bool = True) -> dict:
    """The original script's per-image loop: PIL -> tensor -> fp32 encode -> sample -> torch.save.

    ``tf32``: PyTorch's default lets cuDNN run float32 convolutions on TF32 tensor cores; False is strict float32.
    """
    from PIL import Image

    torch.nn.Module.to(vae, device, torch.float32)  # (diffusers' own .to warns needlessly on casts)
    files = sorted((scene / "images_4").glob("*.png"))[: warmup + count]
    out = scene / "loop_latents"
    out.mkdir(exist_ok=True)

    def one(path: Path) -> None:
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device) * 2.0 - 1.0
        with torch.no_grad():
            latent = vae.encode(x).latent_dist.sample()
        torch.save(latent[0].cpu(), out / f"{path.stem}.pt")

    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        for path in files[:warmup]:
            one(path)
        sync(device)
        start = time.perf_counter()
        for path in files[warmup:]:
            one(path)
        sync(device)
        seconds = time.perf_counter() - start
    finally:
        torch.backends.cudnn.allow_tf32 = before
    return {"images": len(files) - warmup, "seconds": seconds, "images_per_s": (len(files) - warmup) / seconds, "tf32": tf32}


def bench_encoder(vae, width: int, height: int, device: torch.device, dtype: torch.dtype, batch: int,
                  channels_last: bool, compiled: bool, min_seconds: float, profile: bool = False) -> dict:
    """``VaeCodec.encode`` (posterior mean) alone, on a batch already on the device; with ``profile``, the kernels of
    three more batches (warm, compiled) per image."""
    import copy

    from splatent_latents import VaeCodec

    codec = VaeCodec(copy.deepcopy(vae), channels_last=channels_last).to(device, dtype)
    if compiled:
        codec.compile()
    x = torch.rand(batch, 3, height // 8 * 8, width // 8 * 8, device=device, dtype=dtype)
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(3):  # warm-up: cuDNN autotuning, compilation
                codec.encode(x)
            sync(device)
            warmup_s = time.perf_counter() - start
            iters, start = 0, time.perf_counter()
            while True:
                codec.encode(x)
                iters += 1
                if iters % 5 == 0 or device.type != "cuda":
                    sync(device)
                    if time.perf_counter() - start >= min_seconds:
                        break
            seconds = time.perf_counter() - start
            kernels = profile_encoder(codec, x, device) if profile else None
    finally:
        torch.backends.cudnn.benchmark = before
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    row = {"dtype": str(dtype).removeprefix("torch."), "batch": batch, "compiled": compiled,
           "channels_last": channels_last and device.type == "cuda",
           "images_per_s": iters * batch / seconds, "warmup_s": warmup_s, "peak_gib": peak}
    if kernels is not None:
        row["profile"] = kernels
    return row


def profile_encoder(codec, x: torch.Tensor, device: torch.device, batches: int = 3) -> dict:
    """Kernels (operators on the CPU) of ``batches`` encodes, per image."""
    with torch.profiler.profile(activities=activities(device)) as prof:
        for _ in range(batches):
            codec.encode(x)
        sync(device)
    kernels = kernel_table(prof, batches * x.shape[0], device)
    print_table(f"[extract bench] encoder, batch {x.shape[0]}, kernels (per image)", kernels)
    return kernels


def bench_extract(vae, scene: Path, device: torch.device, dtype: str, batch_size: int | None, label: str,
                  channels_last: bool = False, compile: bool = False) -> dict:
    """``extract_latents`` end to end, after a warm-up run on a few images (with ``compile``, the warm-up
    run compiles the encoder; its seconds are recorded; see :func:`compile_warmup`)."""
    import copy

    from splatent_latents import VaeCodec, extract_latents

    codec = VaeCodec(copy.deepcopy(vae), channels_last=channels_last)
    warm = scene / "warm"
    if not warm.exists():
        (warm / "images_4").mkdir(parents=True)
        for path in sorted((scene / "images_4").glob("*.png"))[:32]:
            shutil.copy(path, warm / "images_4" / path.name)
    start = time.perf_counter()
    extract_latents(warm, output=f"latents_{label}", codec=codec, device=str(device), dtype=dtype, batch_size=batch_size,
                    overwrite=True, compile=compile)
    warmup = time.perf_counter() - start  # the timed run's compile call finds Dynamo's cache of this one
    start = time.perf_counter()
    result = extract_latents(scene, output=f"latents_{label}", codec=codec, device=str(device), dtype=dtype,
                             batch_size=batch_size, overwrite=True, compile=compile)
    wall = time.perf_counter() - start
    assert not result.failed, result.failed
    from splatent_latents import read_manifest

    return {"label": label, "dtype": read_manifest(result.output).dtype, "batch": batch_size or "auto",
            "channels_last": channels_last and device.type == "cuda",
            "compile": compile, "images": len(result.written), "seconds": result.seconds,
            "images_per_s": result.images_per_second, "wall_s_with_setup": wall, "warmup_s": warmup}


def cold_extract(scene: Path, device: torch.device, compile: bool, cache: Path, label: str) -> dict:
    """``extract_latents`` in a fresh process, its compile counted: the first run a user's shell makes. ``cache``
    is Inductor's cache folder (a new one: nothing compiled before; a used one: the second scene of a session)."""
    import subprocess
    import sys

    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache))
    command = [sys.executable, __file__, "--child", str(scene), "--device", str(device)] + (["--compile"] if compile else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"label": label, "error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["label"] = label
    return row


def child(args: argparse.Namespace) -> None:
    """The fresh process of :func:`cold_extract`: one ``extract_latents`` call, timed whole (its compile too)."""
    from splatent_latents import VaeCodec, extract_latents

    codec = VaeCodec(build_vae(False))
    start = time.perf_counter()
    result = extract_latents(args.child, output="latents_cold", codec=codec, device=args.device, dtype="auto",
                             overwrite=True, compile=args.compile)
    seconds = time.perf_counter() - start
    print(json.dumps({"compile": args.compile, "images": len(result.written), "seconds": seconds,
                      "images_per_s": len(result.written) / seconds}))


def compile_warmup(entry: dict, row: dict) -> tuple[float, float]:
    """The compile's seconds for a compiled ``extract_latents`` row, and its images/s with them counted.

    Dynamo reuses a graph across copies of the same module, so when the encoder-only compiled row ran first in the
    process, the extract row's own warm-up finds it compiled; the encoder row's warm-up is then the compile's cost.
    """
    compiled = [r.get("warmup_s", 0.0) for r in entry.get("encoder", []) if r.get("compiled") and "error" not in r]
    warmup = max([row["warmup_s"], *compiled])
    return warmup, row["images"] / (row["seconds"] + warmup)


def break_even(entry: dict, row: dict, warmup: float) -> float:
    """Images from which the compiled run (warm-up included) beats the default one."""
    saved = 1 / {r["label"]: r for r in entry["extract"]}["batched"]["images_per_s"] - 1 / row["images_per_s"]
    return warmup / saved if saved > 0 else float("inf")


def run(args: argparse.Namespace) -> dict:
    from splatent_latents import resolve_device

    device = resolve_device(args.device)
    half = torch.bfloat16 if device.type == "cuda" else torch.float32
    vae = build_vae(args.tiny)
    report = {
        "section": SECTION, "model": "tiny_vae_config (random)" if args.tiny else "sd_vae_config (SD-Turbo VAE architecture, random weights)",
        **machine(device), "tf32_conv": torch.backends.cudnn.allow_tf32, "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="splatent-bench-") as tmp:
        for size in args.sizes.split(","):
            width, height = map(int, size.lower().split("x"))
            t = time.perf_counter()
            scene = make_scene(Path(tmp), width, height, args.count)
            print(f"[{size}] wrote {args.count} PNGs in {time.perf_counter() - t:.1f}s", flush=True)
            entry: dict = {"width": width, "height": height, "encoded": [height // 8 * 8, width // 8 * 8]}
            entry["loop"] = bench_loop(vae, scene, device, min(args.loop_count, args.count - 3))
            print(f"[{size}] loop: {entry['loop']['images_per_s']:.1f} img/s", flush=True)
            if device.type == "cuda":
                entry["loop_strict_fp32"] = bench_loop(vae, scene, device, min(args.loop_count // 4, args.count - 3), tf32=False)
                print(f"[{size}] loop, strict fp32: {entry['loop_strict_fp32']['images_per_s']:.1f} img/s", flush=True)
            # (dtype, batch, channels_last, compiled)
            configs = [(torch.float32, 1, False, False)]
            if device.type == "cuda":
                configs += [(half, 1, True, False), (half, 16, False, False), (torch.float16, 16, True, False)]
            configs += [(half, b, True, False) for b in map(int, args.batch_sizes.split(","))]
            if args.compile:
                configs.append((half, 16, False, True))  # NCHW: VaeCodec's default
                if device.type == "cuda":
                    configs.append((half, 16, True, True))
            entry["encoder"] = []
            for dtype, batch, channels_last, compiled in configs:
                try:
                    row = bench_encoder(vae, width, height, device, dtype, batch, channels_last, compiled, args.min_seconds,
                                        profile=args.profile and batch >= 16)
                except torch.cuda.OutOfMemoryError:
                    row = {"dtype": str(dtype).removeprefix("torch."), "batch": batch, "compiled": compiled, "error": "out of memory"}
                    torch.cuda.empty_cache()
                entry["encoder"].append(row)
                print(f"[{size}] encoder { {k: v for k, v in row.items() if k != 'profile'} }", flush=True)
            entry["extract"] = [bench_extract(vae, scene, device, "auto", 1, "batch1"),
                                bench_extract(vae, scene, device, "auto", None, "batched")]
            if device.type == "cuda":  # the default is NCHW (VaeCodec's); this row says whether channels_last would be faster
                entry["extract"].append(bench_extract(vae, scene, device, "auto", None, "batched-channels-last", channels_last=True))
            if args.compile:
                entry["extract"].append(bench_extract(vae, scene, device, "auto", None, "batched-compiled", compile=True))
            if device.type == "cuda" and args.cold:
                cache = Path(tmp) / "inductor-cache"  # new: nothing compiled before in it
                entry["cold"] = [cold_extract(scene, device, False, cache, "defaults"),
                                 cold_extract(scene, device, True, cache, "compile, empty cache"),
                                 cold_extract(scene, device, True, cache, "compile, cache of the previous run")]
                for row in entry["cold"]:
                    print(f"[{size}] cold {row}", flush=True)
            for row in entry["extract"]:
                print(f"[{size}] extract {row}", flush=True)
            loop = entry["loop"]["images_per_s"]
            entry["speedup_vs_loop"] = {row["label"]: row["images_per_s"] / loop for row in entry["extract"]}
            report["sizes"][size] = entry
            shutil.rmtree(scene)
    return report


def table(report: dict) -> str:
    """Markdown: one row per measurement, speed relative to the one-image loop of the same size."""
    lines = [
        f"Date: {report.get('date', '?')} · device: {report['device']} · torch {report['torch']} (CUDA {report['cuda']}) · {report['cpu_count']} CPU cores · "
        f"model: {report['model']} · cuDNN TF32 for fp32 convs: {report['tf32_conv']}",
        "",
        "| images (W×H → encoded) | pipeline | dtype | batch | images/s | × loop | peak GiB |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for size, e in report["sizes"].items():
        loop = e["loop"]["images_per_s"]
        label = f"{size} → {e['encoded'][1]}x{e['encoded'][0]}"
        lines.append(f"| {label} | original-style loop (files in/out), PyTorch defaults (TF32 convs) | float32 | 1 | {loop:.1f} | 1.0 | |")
        if "loop_strict_fp32" in e:
            strict = e["loop_strict_fp32"]["images_per_s"]
            lines.append(f"| {label} | original-style loop, strict float32 (TF32 off) | float32 | 1 | {strict:.1f} | {strict / loop:.2f} | |")
        for r in e["encoder"]:
            if "error" in r:
                lines.append(f"| {label} | `VaeCodec.encode` | {r['dtype']} | {r['batch']} | {r['error']} | | |")
                continue
            name = "`VaeCodec.encode`" + (", channels_last" if r.get("channels_last") else "") + (", torch.compile" if r["compiled"] else "")
            peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
            lines.append(f"| {label} | {name} | {r['dtype']} | {r['batch']} | {r['images_per_s']:.1f} | {r['images_per_s'] / loop:.1f} | {peak} |")
        for r in e["extract"]:
            name = ("`extract_latents` (files in/out)" + (", channels_last" if r.get("channels_last") else "")
                    + (", compile (rate once compiled; warm-up s: {:.0f})".format(compile_warmup(e, r)[0]) if r.get("compile") else ""))
            lines.append(f"| {label} | {name} | {r['dtype']} | {r['batch']} | {r['images_per_s']:.1f} | {r['images_per_s'] / loop:.1f} | |")
    lines.append("")
    for size, e in report["sizes"].items():
        rows = {r["label"]: r for r in e["extract"]}
        speedup = e["speedup_vs_loop"]["batched"]
        line = (f"- {size}: `extract_latents` with its defaults is {speedup:.1f}× the one-image loop "
                f"(goal ≥ {GOAL_SPEEDUP:.0f}×: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'})")
        if size.lower() == "512x512":
            rate = rows["batched"]["images_per_s"]
            line += f"; {rate:.0f} images/s (goal ≥ {GOAL_RATE_512:.0f}: {'met' if rate >= GOAL_RATE_512 else 'NOT met'})"
        if "loop_strict_fp32" in e:
            line += f"; {rows['batched']['images_per_s'] / e['loop_strict_fp32']['images_per_s']:.1f}× a strict-float32 loop"
        if "batched-compiled" in rows:
            r = rows["batched-compiled"]
            warmup, with_warmup = compile_warmup(e, r)
            line += (f"; with `compile=True`: {r['images_per_s']:.0f} images/s, {r['images_per_s'] / e['loop']['images_per_s']:.1f}× "
                     f"the loop once compiled; its compile takes {warmup:.0f} s, which counted in makes "
                     f"{with_warmup:.0f} images/s ({with_warmup / e['loop']['images_per_s']:.1f}×) on these {r['images']} images "
                     f"and pays off from about {break_even(e, r, warmup):,.0f} images on")
        if e.get("cold"):
            runs = ", ".join(f"{r['label']}: {r['error']}" if "error" in r else
                             f"{r['label']} {r['images_per_s']:.0f} images/s ({r['images_per_s'] / e['loop']['images_per_s']:.1f}×)"
                             for r in e["cold"])
            line += f"; in a fresh process, compile included, on {e['cold'][0].get('images', '?')} images: {runs}"
        if "batched-channels-last" in rows:
            line += f"; with channels_last: {rows['batched-channels-last']['images_per_s']:.0f} images/s"
        if "batched-nchw" in rows:  # JSON of a run before NCHW became the default
            line += f"; without channels_last: {rows['batched-nchw']['images_per_s']:.0f} images/s"
        lines.append(line + ".")
    for size, e in report["sizes"].items():
        for r in e["encoder"]:
            if "profile" not in r:
                continue
            name = ", ".join(["`VaeCodec.encode`", r["dtype"], f"batch {r['batch']}"]
                             + (["channels_last"] if r.get("channels_last") else []) + (["torch.compile"] if r["compiled"] else []))
            p = r["profile"]
            lines += ["", f"Kernels of {name} at {size}: {p['ms_per_step']:.2f} ms per image "
                      f"(wall {1e3 / r['images_per_s']:.2f} ms per image unprofiled).", "", markdown(p, per="image")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="512x512,270x480", help="WxH list; 270x480 is fox's images_4 (encoded at 264x480).")
    parser.add_argument("--count", type=int, default=1024, help="Images per size for extract_latents.")
    parser.add_argument("--loop-count", type=int, default=256, help="Images for the one-at-a-time loop.")
    parser.add_argument("--batch-sizes", default="8,16,32", help="Encoder-only batch sizes in half precision.")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="Timing window per encoder configuration.")
    parser.add_argument("--compile", action="store_true", help="Also time a torch.compile'd encoder (adds ~1 min per size).")
    parser.add_argument("--cold", action="store_true",
                        help="Also run extract_latents in fresh processes, compile counted (defaults; compile with a new "
                             "and with a used Inductor cache).")
    parser.add_argument("--profile", action="store_true",
                        help="Also record the kernels of each encoder configuration of batch 16 or more (per image).")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="Tiny random VAE instead of SD-Turbo's architecture (checks the script).")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose extract section to replace.")
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        report = run(args)
        report["command"] = recorded_command("extract.py")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.results:
        write_section(args.results, SECTION, "extract: SD-Turbo VAE encoding (`tools/bench/extract.py`)",
                      report.get("command", "python tools/bench/extract.py"), table(report))


if __name__ == "__main__":
    main()
