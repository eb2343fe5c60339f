"""Benchmark the enhancer: latent in → enhanced image out, the original's per-view loop vs ours.

SD-Turbo's architecture with random weights (``sd_turbo_unet_config()``, the CLIP
ViT-H text tower ``sd_turbo_text_config()`` and the SD VAE ``sd_vae_config()``:
same layers, same FLOPs as the real weights), 512×512 images (64×64 latents) with
3 references (a 2×2 grid, 128×128 latent through the UNet), measured in one run:

* ``loop``: the original ``inference_custom.py`` / ``inference_dataset.py`` way: for each
  view, float32, batch 1, the prompt tokens through the text encoder, the UNet on the
  grid, the x0 step, the VAE decode, the image to the host as uint8; PyTorch defaults
  (cuDNN may use TF32 for float32 convolutions, as the original did).
* ``ours``: ``splatent_model``'s path (what ``splatent enhance`` runs): batched targets,
  bf16, SDPA (flash) attention, fused QKV, channels_last, cached prompt embedding,
  batched bf16 decode, uint8 on the device; per batch size, NCHW for comparison, and
  ``torch.compile`` (CUDA graphs) unless ``--no-compile``. Output difference to eager
  is recorded (bf16 tolerance).
* ``files``: ``splatent_model.enhance_dataset`` end to end on a synthetic dataset JSON
  (``.pt`` files in, ``.pt`` + PNG out, no metrics), with the best eager batch size.

Run on the GPU machine (one command; about 5 minutes; writes JSON, prints a table)::

    python tools/bench/enhance.py --out $OUT/enhance.json

then put the numbers into ``benchmarks/RESULTS.md``::

    python tools/bench/enhance.py --report enhance.json --results benchmarks/RESULTS.md

``--device cpu --tiny --views 4`` checks the script itself anywhere.
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

SECTION = "enhance"
GOAL_RATE, GOAL_SPEEDUP = 60.0, 3.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def build(tiny: bool, seed: int = 0):
    """(enhancer, codec, text encoder, prompt ids) with random weights, on the CPU in float32."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from splatent_latents import VaeCodec, sd_vae_config, tiny_vae_config
    from splatent_model import SplatentEnhancer, sd_turbo_text_config, sd_turbo_unet_config
    from splatent_model.enhancer import _on_meta

    torch.manual_seed(seed)
    if tiny:
        from splatent_model import tiny_prompt_encoder

        model = SplatentEnhancer.tiny()
        encoder = tiny_prompt_encoder()
        text, ids = encoder.text_encoder, encoder.tokenizer(
            [model.config.prompt], max_length=77, padding="max_length", truncation=True, return_tensors="pt").input_ids
        vae = AutoencoderKL(**tiny_vae_config())
    else:
        with _on_meta():
            model = SplatentEnhancer(unet_config=sd_turbo_unet_config())
        from diffusers import UNet2DConditionModel

        model.unet = UNet2DConditionModel.from_config(sd_turbo_unet_config())  # random init, real tensors
        text = CLIPTextModel(CLIPTextConfig(**sd_turbo_text_config()))
        ids = torch.randint(0, 49406, (1, 77))
        vae = AutoencoderKL(**sd_vae_config())
    model.eval().requires_grad_(False)
    text.eval().requires_grad_(False)
    with torch.no_grad():
        model.prompt_cache[model.config.prompt] = text(ids)[0].detach()
    return model, VaeCodec(vae, "sd-vae"), text, ids


def bench_loop(model, codec, text, ids, latents: torch.Tensor, device: torch.device, warmup: int = 2) -> dict:
    """The original's per-view loop, float32, batch 1, text encoder every call, decode, image to host."""
    from splatent_model import alpha_bar, one_step_denoise, tile_views, untile_views

    torch.nn.Module.to(model, device, torch.float32)
    torch.nn.Module.to(text, device, torch.float32)
    codec.to(device, torch.float32)
    vae, sf = codec.vae, float(codec.vae.config.scaling_factor)
    t = int(model.config.timestep)
    a = alpha_bar(model.scheduler, t)
    ids = ids.to(device)
    timesteps = torch.tensor([t], device=device).long()

    def one(x: torch.Tensor) -> np.ndarray:  # x: [1, V, 4, h, w] unscaled
        x = x.to(device) * sf  # --scale
        caption = text(ids)[0]
        grid = tile_views(x)
        eps = model.unet(grid, timesteps, encoder_hidden_states=caption).sample
        out = untile_views(one_step_denoise(grid, eps, a), x.shape[1])[:, 0]
        img = (vae.decode(out / sf).sample.clamp(-1, 1) * 0.5 + 0.5).clamp(0, 1)
        return (img[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)

    reset_peak(device)
    with torch.no_grad():
        for i in range(warmup):
            one(latents[i:i + 1])
        sync(device)
        start = time.perf_counter()
        for i in range(latents.shape[0]):
            one(latents[i:i + 1])
        sync(device)
        seconds = time.perf_counter() - start
    torch.nn.Module.to(text, "cpu")
    torch.nn.Module.to(model, "cpu")
    codec.to("cpu")
    return {"views": latents.shape[0], "seconds": seconds, "views_per_s": latents.shape[0] / seconds,
            "peak_gib": peak_gib(device), "tf32_conv": torch.backends.cudnn.allow_tf32}


def ours(model, codec, device: torch.device, batch: int, channels_last: bool | None, compile_mode: str | None):
    """A fresh copy of the enhancer and codec prepared by ``splatent_model.runtime``."""
    import copy

    from splatent_latents import VaeCodec
    from splatent_model import RuntimeOptions, prepare_codec, prepare_enhancer

    m = copy.deepcopy(model)
    c = VaeCodec(copy.deepcopy(codec.vae), "sd-vae")  # the decoder as `enhance` runs it: VaeCodec's default (NCHW)
    options = RuntimeOptions(device=str(device), channels_last=channels_last, batch_size=batch,
                             compile=compile_mode)
    prepare_enhancer(m, options)
    prepare_codec(c, options)
    return m, c, options


def run_batches(m, c, latents: torch.Tensor, batch: int, pad: bool) -> list[torch.Tensor]:
    from splatent_model import decode_images, enhance_latents, to_uint8

    images = []
    embeds = m.prompt_embeds()
    for start in range(0, latents.shape[0], batch):
        out = enhance_latents(m, latents[start:start + batch], embeds, pad_to=batch if pad else None)
        with torch.inference_mode():
            images.append(to_uint8(decode_images(c, out)).cpu())
    return images


def profile_batches(m, c, latents: torch.Tensor, device: torch.device, batch: int, pad: bool, batches: int = 3) -> dict:
    """Kernels and host operators of ``batches`` batches (after the timed run: compiled and warm), per view."""
    from profiling import activities, host_table, kernel_table, print_table

    views = latents[: batch * batches]
    with torch.profiler.profile(activities=activities(device)) as prof:
        run_batches(m, c, views, batch, pad)
        sync(device)
    kernels, host = kernel_table(prof, views.shape[0], device), host_table(prof, views.shape[0])
    print_table(f"[enhance bench] batch {batch} kernels (per view)", kernels)
    print_table(f"[enhance bench] batch {batch} host operators (per view)", host)
    return {"kernel_ms_per_view": kernels["ms_per_step"], "top": kernels["top"],
            "host_ms_per_view": host["ms_per_step"], "host_top": host["top"]}


def bench_ours(model, codec, latents: torch.Tensor, device: torch.device, batch: int,
               channels_last: bool | None = None, compile_mode: str | None = None, reference=None,
               profile: bool = False) -> dict:
    reset_peak(device)
    t0 = time.perf_counter()
    m, c, _ = ours(model, codec, device, batch, channels_last, compile_mode)
    warm = latents[: batch * 2] if compile_mode else latents[:batch]
    run_batches(m, c, warm, batch, pad=compile_mode is not None)  # cuDNN autotune / compile / graph capture
    if compile_mode:
        run_batches(m, c, warm, batch, pad=True)
    sync(device)
    warmup_s = time.perf_counter() - t0
    start = time.perf_counter()
    run_batches(m, c, latents, batch, pad=compile_mode is not None)
    sync(device)
    seconds = time.perf_counter() - start
    row = {"batch": batch, "dtype": str(m.dtype).removeprefix("torch."), "channels_last": bool(m.channels_last),
           "compile": compile_mode,
           "views": latents.shape[0], "seconds": seconds, "views_per_s": latents.shape[0] / seconds,
           "warmup_s": warmup_s, "peak_gib": peak_gib(device)}
    if reference is not None:  # same inputs through eager: the enhanced latents and the images
        from splatent_model import enhance_latents

        probe = latents[:batch]
        out = enhance_latents(m, probe, pad_to=batch if compile_mode else None)
        ref = reference["latents"]
        n = min(len(ref), len(out))  # the eager reference's targets (its batch may be another size)
        diff = (out[:n].float().cpu() - ref[:n]).abs()
        row["latent_abs_diff_vs_eager"] = {"mean": float(diff.mean()), "max": float(diff.max()),
                                           "ref_mean_abs": float(ref.abs().mean())}
        img = run_batches(m, c, probe, batch, pad=compile_mode is not None)[0].float()
        diff = (img[:n] - reference["images"][:n]).abs()
        row["image_abs_diff_vs_eager"] = {"mean": float(diff.mean()), "max": float(diff.max())}
    if profile:
        row["profile"] = profile_batches(m, c, latents, device, batch, pad=compile_mode is not None)
    del m, c
    return row


def eager_reference(model, codec, latents: torch.Tensor, device: torch.device, batch: int) -> dict:
    from splatent_model import enhance_latents

    m, c, _ = ours(model, codec, device, batch, None, None)
    probe = latents[:batch]
    out = enhance_latents(m, probe).float().cpu()
    images = run_batches(m, c, probe, batch, pad=False)[0].float()
    return {"latents": out, "images": images}


def count_flops(model, codec, latents: torch.Tensor, device: torch.device) -> dict | None:
    """FLOPs of one view (UNet on the grid + decode), counted by ``torch.utils.flop_counter``."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        from splatent_model import decode_images, enhance_latents

        m, c, _ = ours(model, codec, device, 1, None, None)
        x = latents[:1]
        with FlopCounterMode(display=False) as unet_counter:
            out = enhance_latents(m, x)
        with FlopCounterMode(display=False) as vae_counter:
            decode_images(c, out)
        return {"unet_tflop": unet_counter.get_total_flops() / 1e12, "decode_tflop": vae_counter.get_total_flops() / 1e12}
    except Exception as exc:  # a counting failure must not cost the measurements
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def bench_files(model, codec, latents: torch.Tensor, device: torch.device, batch: int) -> dict:
    """``enhance_dataset`` on ``.pt`` files: reads, UNet, decode, ``.pt`` + PNG writes."""
    import copy

    from splatent_data import DatasetEntry, write_dataset_json
    from splatent_latents import VaeCodec, save_latent
    from splatent_model import RuntimeOptions, enhance_dataset

    n, v = latents.shape[:2]
    with tempfile.TemporaryDirectory(prefix="splatent-bench-") as tmp:
        root = Path(tmp)
        for sub in ("nvs", "nvs_gt", "train_gt"):
            (root / sub).mkdir()
        entries = []
        for i in range(n):
            save_latent(root / "nvs" / f"{i:05d}.pt", latents[i, 0])
            save_latent(root / "nvs_gt" / f"{i:05d}.pt", latents[i, 0])
            refs = []
            for j in range(1, v):
                save_latent(root / "train_gt" / f"{i:05d}_{j}.pt", latents[i, j])
                refs.append(root / "train_gt" / f"{i:05d}_{j}.pt")
            entries.append(DatasetEntry(f"s_{i:05d}", "test", root / "nvs" / f"{i:05d}.pt",
                                        root / "nvs_gt" / f"{i:05d}.pt", tuple(refs), model.config.prompt))
        write_dataset_json(root / "data.json", entries)
        m = copy.deepcopy(model)
        c = VaeCodec(copy.deepcopy(codec.vae), "sd-vae")
        options = RuntimeOptions(device=str(device), batch_size=batch)
        workers = max(4, min(16, (os.cpu_count() or 4)))
        # warm-up on a copy of the first entries (cuDNN autotuning), then the timed run
        write_dataset_json(root / "warm.json", entries[: 2 * batch])
        enhance_dataset(root / "warm.json", root / "warm", m, c, options=options, metrics=False, workers=workers)
        reset_peak(device)
        start = time.perf_counter()
        result = enhance_dataset(root / "data.json", root / "out", m, c, options=options, metrics=False,
                                 workers=workers)
        wall = time.perf_counter() - start
    return {"batch": batch, "views": result.enhanced, "seconds": result.seconds,
            "views_per_s": result.views_per_second, "wall_s_with_setup": wall, "workers": workers,
            "peak_gib": peak_gib(device)}


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model, codec, text, ids = build(args.tiny)
    h = w = args.size // 8
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(args.views, 1 + args.top_k, 4, h, w, generator=g) * 5.0  # unscaled SD latents: std ~5
    if device.type == "cuda":
        latents = latents.pin_memory()
    report = {
        "section": SECTION,
        "model": "tiny preset (random)" if args.tiny else "SD-Turbo UNet + OpenCLIP-H text + SD VAE architectures, random weights",
        **machine(device), "image": [args.size, args.size], "latent": [h, w],
        "references": args.top_k, "grid": None, "views": args.views,
    }
    from splatent_model import grid_shape

    rows, cols = grid_shape(1 + args.top_k)
    report["grid"] = [rows * h, cols * w]
    report["flops_per_view"] = count_flops(model, codec, latents, device)
    print(f"flops per view: {report['flops_per_view']}", flush=True)

    report["loop"] = bench_loop(model, codec, text, ids, latents[: args.loop_views], device)
    print(f"loop: {report['loop']['views_per_s']:.2f} views/s", flush=True)

    batches = [int(b) for b in args.batch_sizes.split(",")]
    reference = eager_reference(model, codec, latents, device, batches[0])
    report["ours"] = []
    configs = [(b, None, None) for b in batches]
    if device.type == "cuda":
        configs.append((batches[min(1, len(batches) - 1)], False, None))  # NCHW, for comparison
    if not args.no_compile:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
        formats = {"channels_last": None, "nchw": False}  # None: RuntimeOptions' default (channels_last on CUDA)
        configs += [(int(b), formats[f], mode) for f in args.compile_formats.split(",")
                    for b in args.compile_batch_sizes.split(",")]
    for batch, channels_last, mode in configs:
        try:
            row = bench_ours(model, codec, latents, device, batch, channels_last, mode,
                             reference if batch == batches[0] or mode else None, profile=args.profile and bool(mode))
        except torch.cuda.OutOfMemoryError:
            row = {"batch": batch, "channels_last": channels_last, "compile": mode, "error": "out of memory"}
        except Exception as exc:  # e.g. a compile failure: record it, keep the other rows
            row = {"batch": batch, "channels_last": channels_last, "compile": mode,
                   "error": f"{type(exc).__name__}: {exc}"[:300]}
        report["ours"].append(row)
        print(f"ours: { {k: v for k, v in row.items() if k != 'profile'} }", flush=True)
        reset_peak(device)
    ok = [r for r in report["ours"] if "error" not in r]
    best_eager = max((r for r in ok if not r["compile"] and r["channels_last"] == (device.type == "cuda")),
                     key=lambda r: r["views_per_s"], default=None)
    if best_eager is not None and not args.no_files:
        report["files"] = bench_files(model, codec, latents, device, best_eager["batch"])
        print(f"files: {report['files']}", flush=True)
    best = max(ok, key=lambda r: r["views_per_s"], default=None)
    if best is not None:
        report["best"] = {"config": {k: best[k] for k in ("batch", "channels_last", "compile")},
                          "views_per_s": best["views_per_s"],
                          "speedup_vs_loop": best["views_per_s"] / report["loop"]["views_per_s"]}
    return report


def _cfg(r: dict) -> str:
    parts = [f"batch {r['batch']}", "channels_last" if r.get("channels_last") else "NCHW"]
    if r.get("compile"):
        parts.append(f"torch.compile {r['compile']}")
    return ", ".join(parts)


def table(report: dict) -> str:
    loop = report["loop"]["views_per_s"]
    f = report.get("flops_per_view") or {}
    flops = (f"; per view: UNet {f['unet_tflop']:.2f} TFLOP on the {report['grid'][0]}×{report['grid'][1]} grid, "
             f"decode {f['decode_tflop']:.2f} TFLOP") if "unet_tflop" in f else ""
    lines = [
        f"Date: {report['date']} · device: {report['device']} · torch {report['torch']} (CUDA {report['cuda']}) · "
        f"{report['cpu_count']} CPU cores · {report['model']} · {report['image'][0]}×{report['image'][1]} images "
        f"({report['latent'][0]}×{report['latent'][1]} latents), {report['references']} references{flops}",
        "",
        "| pipeline (latent in → uint8 image on the host) | dtype | views/s | × loop | peak GiB | warm-up s | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    pk = report["loop"].get("peak_gib")
    lines.append(f"| (a) original-style per-view loop: text encoder + UNet + decode, batch 1 | float32 | {loop:.2f} | 1.0 | "
                 f"{pk:.1f} | | cuDNN TF32 convs: {report['loop']['tf32_conv']} |" if pk is not None else
                 f"| (a) original-style per-view loop | float32 | {loop:.2f} | 1.0 | | | |")
    for r in report["ours"]:
        if "error" in r:
            lines.append(f"| (b) ours, {_cfg(r)} | | {r['error']} | | | | |")
            continue
        notes = []
        if "latent_abs_diff_vs_eager" in r and r.get("compile"):
            d, i = r["latent_abs_diff_vs_eager"], r["image_abs_diff_vs_eager"]
            notes.append(f"vs eager: latent abs. difference mean {d['mean']:.3g} (latents' mean abs. {d['ref_mean_abs']:.3g}), "
                         f"image mean {i['mean']:.2f} / max {i['max']:.0f} of 255")
        peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
        lines.append(f"| (b) ours, {_cfg(r)} | {r.get('dtype', '')} | {r['views_per_s']:.1f} | {r['views_per_s'] / loop:.1f} | "
                     f"{peak} | {r['warmup_s']:.0f} | {'; '.join(notes)} |")
    if "files" in report:
        r = report["files"]
        peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
        lines.append(f"| `enhance_dataset`: .pt files in, .pt + PNG out, batch {r['batch']}, {r['workers']} I/O threads "
                     f"| {report['ours'][0].get('dtype', '')} | {r['views_per_s']:.1f} | {r['views_per_s'] / loop:.1f} | {peak} | | |")
    if "best" in report:
        b = report["best"]
        met_rate = "met" if b["views_per_s"] >= GOAL_RATE else "NOT met"
        met_speed = "met" if b["speedup_vs_loop"] >= GOAL_SPEEDUP else "NOT met"
        lines += ["", f"- Best: {_cfg(b['config'])}: {b['views_per_s']:.1f} views/s (goal ≥ {GOAL_RATE:.0f}: {met_rate}), "
                      f"{b['speedup_vs_loop']:.1f}× the loop (goal ≥ {GOAL_SPEEDUP:.0f}×: {met_speed})."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=512, help="Image side in pixels (latent side = size / 8).")
    parser.add_argument("--top-k", type=int, default=3, help="References per target (3: a 2x2 grid).")
    parser.add_argument("--views", type=int, default=256, help="Targets per timed run of ours.")
    parser.add_argument("--loop-views", type=int, default=32, help="Targets for the one-at-a-time loop.")
    parser.add_argument("--batch-sizes", default="8,4,16", help="Batch sizes of ours; the first is also compiled.")
    parser.add_argument("--compile-batch-sizes", default="8,16",
                        help="Batch sizes compiled (CUDA graphs); each compile takes ~2 minutes of warm-up.")
    parser.add_argument("--compile-formats", default="channels_last,nchw",
                        help="The UNet's memory formats compiled: channels_last (the CUDA default), nchw, or both.")
    parser.add_argument("--no-compile", action="store_true", help="Skip the torch.compile rows (saves minutes).")
    parser.add_argument("--no-files", action="store_true", help="Skip the files-in/files-out row.")
    parser.add_argument("--profile", action="store_true",
                        help="Profile 3 batches of each compiled row after its timing (kernel and host tables per view).")
    parser.add_argument("--tiny", action="store_true", help="The tiny preset instead of SD-Turbo's architecture (checks the script).")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose enhance section to replace.")
    args = parser.parse_args()
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        report = run(args)
        report["command"] = recorded_command("enhance.py")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.results:
        write_section(args.results, SECTION, "enhance: single-step enhancer, latent in → image out (`tools/bench/enhance.py`)",
                      report.get("command", "python tools/bench/enhance.py"), table(report))


if __name__ == "__main__":
    main()
