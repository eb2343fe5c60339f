"""Benchmark enhancer training: the original recipe against ``splatent_train``, in one run.

Setting (the original README's): 512x512 views (64x64 latents), batch 1, 3 references
(a 2x2 grid: the UNet sees 128x128 latents), full UNet fine-tune, losses L2 + 2 x LPIPS
(VGG) + RGB MSE through the VAE decoder, bf16 mixed precision. Weights are random in
SD-Turbo's architecture (``sd_turbo_unet_config``, ``sd_vae_config``; same layers and
FLOPs as the real ones); LPIPS has a random VGG trunk; data are random latents and PNG
images written to a temporary folder. Nothing is downloaded.

Recipes (``--recipes``):

* ``original``: ``src/train.py``'s loop with the model kept in float32 ("fp32 master
  weights"): accelerate's bf16 autocast around the UNet only (what ``--mixed_precision=bf16``
  does), VAE decoding and LPIPS outside it in float32, ``torch.optim.AdamW`` with its
  defaults, eager, three ``.item()`` per step for the logs; the VAE's attention is diffusers' default (SDPA).
* ``ours``: ``splatent_train.train_enhancer`` on CUDA, eager (``--no-compile``): bf16 autocast over the UNet and
  the losses, frozen VAE and LPIPS in bf16, fused AdamW, TF32, losses synchronised every 10 steps, NCHW.
* ``ours-nhwc``: the same with ``--channels_last``.
* ``ours-compile``: ``--compile`` (``torch.compile`` of the UNet, the VAE decoder and LPIPS; its warm-up is excluded
  from steps/s and reported), NCHW (``--no_channels_last``).
* ``ours-compile-graphs``: ``--compile --compile_mode reduce-overhead --no_channels_last``: the compiled regions
  replayed as CUDA graphs (the profile shows the eager step bound by its ~5 700 kernel launches, not by the GPU).
* ``ours-compile-graphs-nhwc``: the same NHWC (UNet, VAE decoder and LPIPS; ``train_enhancer``'s default when it
  compiles): the compiled step's profile showed 17.7 ms a step of cuDNN converting NCHW tensors to NHWC and back.

Until 2026-12-07 ``train_enhancer`` ran LPIPS eager when compiling; the recipe that compiled it too
(``ours-compile-graphs-nhwc-lpips``, 95.8 against 99.3 ms a step on an H100) is now what every ``ours-compile*``
recipe does.

``--profile RECIPE`` runs one recipe under ``torch.profiler`` and prints (and stores in the
JSON) the CUDA kernels that take the most time, to see where a step goes.

Steps/s are measured after ``--warmup`` steps; peak memory is ``max_memory_allocated``.

One GPU (about 5 minutes on an H100)::

    python tools/bench/train.py --out $OUT/train.json

Two GPUs (1 GPU batch 2 vs 2 GPUs batch 1 each: loss curves; 2 GPUs vs 1 GPU at batch 1:
throughput scaling), through ``accelerate launch --multi_gpu``::

    python tools/bench/train.py --gpus 2 --out $OUT/train_2gpu.json

Results into ``benchmarks/RESULTS.md``::

    python tools/bench/train.py --report train.json [--report train_2gpu.json] --results benchmarks/RESULTS.md

``--device cpu --tiny`` (and ``--gpus 2 --device cpu --tiny``, through torchrun) checks the script anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "train"
GOAL_SPEEDUP, GOAL_SCALING, CURVE_TOLERANCE = 2.5, 1.8, 0.02
PROMPT = "A photo of a scene"


# --------------------------------------------------------------------------- data and parts


def make_dataset(root: Path, size: int, count: int, top_k: int, seed: int = 0) -> Path:
    """``count`` train entries: random render / target latents, a PNG beside each target, references from a pool."""
    from PIL import Image

    from splatent_data import DatasetEntry, write_dataset_json
    from splatent_latents import save_latent

    rng = np.random.default_rng(seed)
    h = size // 8
    entries = []
    pool = []
    for j in range(max(top_k, 4)):
        pool.append(root / "refs" / f"{j}.pt")
        save_latent(pool[-1], torch.from_numpy(rng.normal(0, 5, (4, h, h)).astype(np.float32)))
    for i in range(count):
        render, target = root / "nvs" / f"{i:04d}.pt", root / "nvs_gt" / f"{i:04d}.pt"
        latent = torch.from_numpy(rng.normal(0, 5, (4, h, h)).astype(np.float32))
        save_latent(target, latent)
        save_latent(render, latent + torch.from_numpy(rng.normal(0, 1, (4, h, h)).astype(np.float32)))
        image = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(image).save(target.with_suffix(".png"))
        refs = tuple(pool[(i + k) % len(pool)] for k in range(top_k))
        entries.append(DatasetEntry(f"bench_{i:04d}", "train", render, target, refs, PROMPT))
    path = root / "dataset.json"
    write_dataset_json(path, entries)
    return path


def build_parts(device: torch.device, tiny: bool, seed: int = 0, vae_attention: str = "auto"):
    """``(enhancer, codec, lpips)`` with random weights, built on ``device``; ``vae_attention``: ``VaeCodec``'s."""
    from diffusers import AutoencoderKL

    from splatent_latents import VaeCodec, sd_vae_config, tiny_vae_config
    from splatent_model import SD_TURBO, TINY, SplatentEnhancer, tiny_unet_config
    from splatent_train import build_lpips

    torch.manual_seed(seed)
    with torch.device(device):
        if tiny:
            model = SplatentEnhancer(unet_config=tiny_unet_config(), base_model=TINY, top_k=3, scale=True)
        else:
            model = SplatentEnhancer(base_model=SD_TURBO, top_k=3, scale=True)
        vae = AutoencoderKL(**(tiny_vae_config() if tiny else sd_vae_config()))
    dim = model.unet.config.cross_attention_dim
    model.prompt_cache[PROMPT] = torch.randn(1, 77, dim, generator=torch.Generator().manual_seed(seed))
    codec = VaeCodec(vae, "tiny-random" if tiny else "sd-vae", seed=seed, attention=vae_attention)
    lpips = build_lpips("alex" if tiny else "vgg", pretrained=False, seed=seed)
    return model, codec, lpips


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# --------------------------------------------------------------------------- the recipes


def original_recipe(dataset: Path, device: torch.device, steps: int, warmup: int, workers: int, tiny: bool,
                    on_step=None) -> dict:
    """``src/train.py``'s loop, model in float32 (see the module doc)."""
    from accelerate import Accelerator
    from diffusers.optimization import get_scheduler

    from splatent_data import read_dataset_json
    from splatent_train import EnhancerDataset, EnhancerLoss, collate_samples
    from splatent_train.build import release_accelerator

    accelerator = Accelerator(mixed_precision="bf16", cpu=device.type == "cpu")
    # diffusers' default attention (SDPA) in the VAE, as the original runs it
    model, codec, lpips = build_parts(accelerator.device, tiny, vae_attention="sdpa")
    model.train()
    model.requires_grad_(False)
    model.unet.requires_grad_(True)
    codec.to(accelerator.device, torch.float32)
    lpips.to(accelerator.device)
    params = list(model.unet.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-5, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=steps)
    entries = read_dataset_json(dataset).split("train")
    data = EnhancerDataset(entries, [PROMPT], top_k=3, crop=0)
    loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=True, num_workers=workers,
                                         collate_fn=collate_samples)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loss_fn = EnhancerLoss(1.0, 2.0, 1.0, scale_factor=accelerator.unwrap_model(model).scale_factor, codec=codec,
                           lpips=lpips)
    embeds = accelerator.unwrap_model(model).prompt_cache[PROMPT].to(accelerator.device)
    step, start, losses = 0, None, []
    began = time.perf_counter()
    while step < steps:
        for batch in loader:
            batch = batch.to(accelerator.device)
            with accelerator.accumulate(model):
                pred = model(batch.views, prompt_embeds=embeds)
                terms = loss_fn(pred, batch.target, batch.float_images())
                accelerator.backward(terms.total)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            logs = {"loss_l2": terms.l2.item(), "loss_lpips": terms.lpips.item(), "loss_rgb": terms.rgb.item()}
            losses.append(sum(logs.values()))
            step += 1
            if on_step is not None:
                on_step(step)
            if step == warmup:
                sync(accelerator.device)
                start = time.perf_counter()
            if step >= steps:
                break
    sync(accelerator.device)
    elapsed = time.perf_counter() - start
    result = {"steps_per_s": (steps - warmup) / elapsed, "warmup_s": start - began, "losses": losses,
              "peak_gib": torch.cuda.max_memory_allocated(accelerator.device) / 2**30
              if accelerator.device.type == "cuda" else None}
    del model, optimizer, loader, scheduler, codec, lpips, loss_fn
    release_accelerator(accelerator)
    return result


def ours(dataset: Path, out: Path, device: torch.device, steps: int, workers: int, tiny: bool,
         compile: bool = False, batch_size: int = 1, log_every: int = 10, channels_last: bool = False,
         on_step=None, compile_mode: str = "default") -> dict:
    """``train_enhancer`` with its defaults (plus ``compile`` / ``channels_last``) on random SD-Turbo parts."""
    from splatent_train import loss_curve, train_enhancer

    model, codec, lpips = build_parts(device, tiny)
    config = bench_config(dataset, out, device, steps, workers, compile, batch_size, log_every)
    config.channels_last = channels_last
    config.compile_mode = compile_mode
    began = time.perf_counter()
    result = train_enhancer(config, model=model, codec=codec, lpips_model=lpips,
                            step_callback=None if on_step is None else lambda state: on_step(state.step))
    total = time.perf_counter() - began
    curve = loss_curve(out)
    del model, codec, lpips
    warm = min(10, max(1, steps // 5))  # train_enhancer's untimed steps
    return {"steps_per_s": result.steps_per_second, "samples_per_s": result.samples_per_second,
            "peak_gib": result.peak_memory_gb, "seconds": total,
            "warmup_s": max(0.0, result.seconds - (steps - warm) / result.steps_per_second),
            "losses": [curve[s] for s in sorted(curve)]}


def bench_config(dataset: Path, out: Path, device: torch.device, steps: int, workers: int, compile: bool,
                 batch_size: int, log_every: int):
    from splatent_train import TrainConfig

    return TrainConfig(dataset_path=dataset, output_dir=out, base_model="stabilityai/sd-turbo (random weights)",
                       codec="random", top_k=3, resolution=0, train_batch_size=batch_size, dataloader_num_workers=workers,
                       max_train_steps=steps, learning_rate=2e-5, lambda_l2=1.0, lambda_lpips=2.0, lambda_rgb=1.0,
                       mixed_precision="bf16", compile=compile, cpu=device.type == "cpu", checkpointing_steps=0,
                       eval_freq=0, viz_freq=0, logger="none", log_every=log_every, save_enhancer=False)


def worker(config_file: Path) -> None:
    """One process of the multi-GPU run (started by ``accelerate launch`` or ``torchrun``)."""
    spec = json.loads(config_file.read_text())
    from splatent_train import TrainConfig, train_enhancer

    config = TrainConfig.from_json(spec["config"])
    device = torch.device("cpu") if config.cpu else torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    model, codec, lpips = build_parts(device, spec["tiny"])
    result = train_enhancer(config, model=model, codec=codec, lpips_model=lpips)
    if int(os.environ.get("RANK", 0)) == 0:
        Path(spec["result"]).write_text(json.dumps({
            "steps_per_s": result.steps_per_second, "samples_per_s": result.samples_per_second,
            "peak_gib": result.peak_memory_gb}))


def multi_process(dataset: Path, out: Path, device: torch.device, gpus: int, steps: int, workers: int,
                  tiny: bool) -> dict:
    """``gpus`` processes with batch 1 each, launched through accelerate (torchrun on CPU)."""
    from splatent_train import loss_curve

    config = bench_config(dataset, out, device, steps, workers, False, 1, 1)
    spec_file = out.parent / f"{out.name}.json"
    result_file = out.parent / f"{out.name}.result.json"
    spec_file.write_text(json.dumps({"config": config.to_json(), "tiny": tiny, "result": str(result_file)}))
    if device.type == "cuda":
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
                    "--num_processes", str(gpus), "--mixed_precision", "bf16", "--dynamo_backend", "no"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus)]
    began = time.perf_counter()
    proc = subprocess.run([*launcher, __file__, "--worker", str(spec_file)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the {gpus}-process run failed:\n{proc.stderr[-4000:]}")
    result = json.loads(result_file.read_text())
    curve = loss_curve(out)
    return {**result, "seconds": time.perf_counter() - began, "losses": [curve[s] for s in sorted(curve)]}


# --------------------------------------------------------------------------- runs


def environment(device: torch.device) -> dict:
    return {**machine(device), "gpus": torch.cuda.device_count() if device.type == "cuda" else 0}


RECIPES = ("original", "ours", "ours-nhwc", "ours-compile", "ours-compile-graphs", "ours-compile-graphs-nhwc")


def run_recipe(recipe: str, dataset: Path, root: Path, device: torch.device, args, on_step=None) -> dict:
    if recipe == "original":
        return original_recipe(dataset, device, args.steps, args.warmup, args.workers, args.tiny, on_step=on_step)
    if recipe in RECIPES:
        return ours(dataset, root / recipe, device, args.steps, args.workers, args.tiny,
                    compile=recipe.startswith("ours-compile"), channels_last="-nhwc" in recipe, on_step=on_step,
                    compile_mode="reduce-overhead" if recipe.startswith("ours-compile-graphs") else "default")
    raise SystemExit(f"unknown recipe {recipe!r}; use {', '.join(RECIPES)}")


def profile(recipe: str, dataset: Path, root: Path, device: torch.device, args, rows: int = 25) -> dict:
    """Kernels of ``recipe`` by total device time over 5 steps after its warm-up, and its host operators."""
    from torch.profiler import schedule

    from profiling import activities, host_table, kernel_table, print_table

    warm = max(args.warmup, args.steps - 6)
    prof = torch.profiler.profile(activities=activities(device), schedule=schedule(wait=warm - 1, warmup=1, active=5, repeat=1))
    prof.start()
    try:
        run_recipe(recipe, dataset, root / f"profile-{recipe}", device, args, on_step=lambda step: prof.step())
    finally:
        prof.stop()
    kernels, host = kernel_table(prof, 5, device, rows), host_table(prof, 5)
    print_table(f"[train bench] profile of {recipe}, kernels", kernels)
    print_table(f"[train bench] profile of {recipe}, host operators", host)
    return {"recipe": recipe, "kernel_ms_per_step": kernels["ms_per_step"], "top": kernels["top"],
            "host_ms_per_step": host["ms_per_step"], "host_top": host["top"]}


def run(args: argparse.Namespace) -> dict:
    args.warmup = args.warmup if args.warmup is not None else min(10, max(1, args.steps // 5))
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    size = 64 if args.tiny else 512
    report = {**environment(device), "size": size, "batch": 1, "top_k": 3, "steps": args.steps,
              "warmup": args.warmup, "tiny": args.tiny, "mode": f"{args.gpus}gpu"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = make_dataset(root / "data", size, args.count, 3)
        if args.profile:
            report["profiles"] = [profile(r, dataset, root, device, args) for r in args.profile.split(",")]
        if args.gpus == 1 and args.recipes:
            report["recipes"] = {}
            for recipe in args.recipes.split(","):
                free(device)
                print(f"[train bench] {recipe} ...", flush=True)
                r = run_recipe(recipe, dataset, root, device, args)
                report["recipes"][recipe] = r
                print(f"[train bench] {recipe}: {r['steps_per_s']:.2f} steps/s", flush=True)
            base = report["recipes"].get("original", {}).get("steps_per_s")
            if base:
                report["speedup"] = {k: v["steps_per_s"] / base for k, v in report["recipes"].items()}
        elif args.gpus > 1:
            free(device)
            runs = {}
            print("[train bench] 1 process, batch 2 (loss curve) ...", flush=True)
            runs["1x_batch2"] = ours(dataset, root / "one_b2", device, args.steps, args.workers, args.tiny,
                                     batch_size=2, log_every=1)
            free(device)
            print("[train bench] 1 process, batch 1 (throughput) ...", flush=True)
            runs["1x_batch1"] = ours(dataset, root / "one_b1", device, args.steps, args.workers, args.tiny,
                                     batch_size=1, log_every=1)
            free(device)
            print(f"[train bench] {args.gpus} processes, batch 1 each ...", flush=True)
            runs[f"{args.gpus}x_batch1"] = multi_process(dataset, root / "multi", device, args.gpus, args.steps,
                                                         args.workers, args.tiny)
            multi = runs[f"{args.gpus}x_batch1"]
            a, b = np.array(runs["1x_batch2"]["losses"]), np.array(multi["losses"])
            rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-12)
            report["runs"] = runs
            report["curve"] = {"max_rel_diff": float(rel.max()), "mean_rel_diff": float(rel.mean()),
                               "steps": len(a)}
            report["scaling"] = multi["samples_per_s"] / runs["1x_batch1"]["samples_per_s"]
    return report


# --------------------------------------------------------------------------- reporting


def table(report: dict) -> str:
    head = (f"Date: {report.get('date', '?')} · device: {report['device']} · torch {report['torch']} "
            f"(CUDA {report['cuda']}) · {report['cpu_count']} CPU cores · {report['size']}x{report['size']}, batch "
            f"{report['batch']}, {report['top_k']} references, {report['steps']} steps ({report['warmup']} warm-up)"
            + (" · TINY model (script check, not a measurement)" if report.get("tiny") else ""))
    lines = [head, ""]
    if "recipes" in report:
        lines += ["| recipe | steps/s | × original | peak GiB | warm-up s |", "|---|---:|---:|---:|---:|"]
        for name, r in report["recipes"].items():
            speed = report.get("speedup", {}).get(name)
            peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
            lines.append(f"| {name} | {r['steps_per_s']:.2f} | {f'{speed:.2f}' if speed else ''} | {peak} | "
                         f"{r.get('warmup_s', 0):.0f} |")
        profiled = [p["recipe"] for p in report.get("profiles", []) if p["recipe"] in report["recipes"]]
        if profiled:  # the profile ran first, in this process: its compile filled the caches the timed run reused
            lines += ["", f"Warm-up of {', '.join(profiled)}: from the compile caches its profile run (before, in the "
                          "same process) filled; a cold compile takes minutes."]
        best = max((v for k, v in report.get("speedup", {}).items() if k != "original"), default=None)
        if best is not None:
            lines += ["", f"- Best of ours: {best:.2f}× the original recipe's steps/s "
                          f"(goal ≥ {GOAL_SPEEDUP}×: {'met' if best >= GOAL_SPEEDUP else 'NOT met'})."]
    for prof in report.get("profiles", []):
        lines += ["", f"Profile of `{prof['recipe']}`: {prof['kernel_ms_per_step']:.1f} ms of device kernels per step; "
                      "the largest:", "", "| kernel | ms / step | share |", "|---|---:|---:|"]
        lines += [f"| `{r['name'][:70]}` | {r['ms_per_step']:.2f} | {r['share']:.1%} |" for r in prof["top"][:8]]
    if "runs" in report:
        lines += ["| run | samples/s | peak GiB (main process) |", "|---|---:|---:|"]
        for name, r in report["runs"].items():
            peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
            lines.append(f"| {name} | {r['samples_per_s']:.2f} | {peak} |")
        c = report["curve"]
        lines += ["", f"- Loss curves, 1 GPU batch 2 vs {report['mode'][0]} GPUs batch 1 (equal effective batch): "
                      f"max relative difference {c['max_rel_diff']:.2e}, mean {c['mean_rel_diff']:.2e} over "
                      f"{c['steps']} steps (agree within {CURVE_TOLERANCE:.0%}: "
                      f"{'yes' if c['max_rel_diff'] <= CURVE_TOLERANCE else 'NO'}).",
                  f"- Throughput scaling {report['mode'][0]} GPUs / 1 GPU at batch 1 per GPU: {report['scaling']:.2f}× "
                  f"(goal ≥ {GOAL_SCALING}×: {'met' if report['scaling'] >= GOAL_SCALING else 'NOT met'})."]
    return "\n".join(lines)


def write_sections(results: Path, reports: list[dict]) -> None:
    """One RESULTS.md section per mode: ``train`` (recipes on one GPU), ``train-<N>gpu`` (scaling)."""
    for report in reports:
        multi = report.get("mode", "1gpu") != "1gpu"
        section = f"{SECTION}-{report['mode']}" if multi else SECTION
        title = (f"train: {report['mode'][0]} GPUs vs 1 (`tools/bench/train.py --gpus {report['mode'][0]}`)" if multi
                 else "train: enhancer training steps, original recipe vs ours (`tools/bench/train.py`)")
        write_section(results, section, title, report.get("command", "python tools/bench/train.py"), table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu.")
    parser.add_argument("--gpus", type=int, default=1, help="1: recipes compared; N > 1: multi-GPU curves and scaling.")
    parser.add_argument("--recipes", default="original,ours,ours-nhwc,ours-compile",
                        help="Comma-separated (1-GPU mode); empty: none.")
    parser.add_argument("--profile", default="", help="Comma-separated recipes to profile first (kernel table).")
    parser.add_argument("--steps", type=int, default=60, help="Optimizer steps per run.")
    parser.add_argument("--warmup", type=int, default=None, help="Steps not timed (default, as train_enhancer: min(10, steps/5)).")
    parser.add_argument("--count", type=int, default=16, help="Dataset entries.")
    parser.add_argument("--workers", type=int, default=4, help="Data-loader workers per process.")
    parser.add_argument("--tiny", action="store_true", help="Tiny model and 64x64 views (checks the script).")
    parser.add_argument("--report", type=Path, action="append", help="Print (and with --results, write) existing JSON(s).")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose train section to replace.")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.report:
        reports = [json.loads(p.read_text()) for p in args.report]
    else:
        report = run(args)
        report["command"] = recorded_command("train.py")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
        reports = [report]
    for report in reports:
        print(table(report))
    if args.results:
        write_sections(args.results, reports)


if __name__ == "__main__":
    main()
