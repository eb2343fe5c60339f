"""Benchmark the live viewer's frame (``splatent view``): ``splatent_pipeline.render_frame``, what each browser frame
costs on the server: rasterise the latents at the view, enhance them with 3 references (enhanced mode), decode, the
uint8 image on the host. 512×512 frames (64×64 latents) along an orbit, in ``decoded`` and ``enhanced`` modes, for
both codec architectures:

* ``taef2``: the learned 32-channel codec shipped with splatent-latents (its real weights);
* ``sd-vae``: SD-Turbo's VAE architecture (``sd_vae_config()``), random weights (hub weights need not download):
  same layers, same FLOPs.

The enhancer is SD-Turbo's UNet architecture with random weights, its input and output convolutions for the codec's
channels (``taef2``: 32), a random prompt embedding, 3 references (a 2×2 grid); eager, bf16 on CUDA
(``RuntimeOptions`` defaults, as ``splatent view`` runs it). The scene is ``--gaussians`` random latent Gaussians
(150 000: a fox-sized latent fit) inside a ring of 24 training cameras, whose references are random latents.
Rasteriser: gsplat on CUDA (build its kernels first: ``splatent fit --build-kernels``), PyTorch on a CPU.

Run on the GPU machine (a few minutes; writes JSON, prints a table)::

    python tools/bench/view.py --out $OUT/view.json

then put the numbers into ``benchmarks/RESULTS.md``::

    python tools/bench/view.py --report view.json --results benchmarks/RESULTS.md

``--device cpu --quick`` checks the script itself anywhere in seconds (64² frames, tiny enhancer and VAE presets,
2 000 Gaussians).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "view"
CODECS = ("taef2", "sd-vae")
MODES = ("decoded", "enhanced")
RING = 24


def ring_cameras(size: int, count: int, radius: float = 4.0, height: float = 1.0, prefix: str = "train"):
    """``count`` cameras of ``size``² pixels (60° field of view) on a ring, looking at the origin."""
    from splatent_data import Camera, look_at

    focal = size / (2 * math.tan(math.radians(30)))
    cameras = []
    for i in range(count):
        angle = 2 * math.pi * i / count
        centre = np.array([radius * math.cos(angle), radius * math.sin(angle), height])
        cameras.append(Camera(name=f"{prefix}_{i:03d}.png", image_path=Path(f"{prefix}_{i:03d}.png"), width=size,
                              height=size, fx=focal, fy=focal, cx=size / 2, cy=size / 2,
                              camtoworld=look_at(centre, np.zeros(3))))
    return cameras


def build_codec(name: str, quick: bool):
    from diffusers import AutoencoderKL

    from splatent_latents import VaeCodec, load_codec, sd_vae_config, tiny_vae_config

    if name == "taef2":
        return load_codec("taef2")
    torch.manual_seed(0)
    return VaeCodec(AutoencoderKL(**(tiny_vae_config() if quick else sd_vae_config())), "sd-vae")


def build_enhancer(channels: int, quick: bool):
    """SD-Turbo's UNet architecture for ``channels``-channel latents with random weights (``quick``: the tiny
    preset), and a random prompt embedding in its cache (no text encoder: its cost is paid once per prompt)."""
    from diffusers import UNet2DConditionModel

    from splatent_model import SplatentEnhancer, sd_turbo_unet_config
    from splatent_model.enhancer import _on_meta

    torch.manual_seed(0)
    if quick:
        model = SplatentEnhancer.tiny(channels=channels)
    else:
        config = {**sd_turbo_unet_config(), "in_channels": channels, "out_channels": channels}
        with _on_meta():
            model = SplatentEnhancer(unet_config=config)
        model.unet = UNet2DConditionModel.from_config(config)  # random init, real tensors
    width = int(model.unet.config.cross_attention_dim)
    model.prompt_cache[model.config.prompt] = torch.randn(1, 77, width)
    return model


def build_scene(codec_name: str, args: argparse.Namespace, latents_dir: Path):
    """A :class:`splatent_pipeline.LatentScene` from random parts, prepared as ``splatent view`` prepares them."""
    from splatent_latents import save_latent
    from splatent_model import RuntimeOptions, prepare_codec, prepare_enhancer
    from splatent_pipeline import LatentScene
    from splatent_splat import FeatureGaussians, resolve_backend

    options = RuntimeOptions(device=args.device, batch_size=1)
    device = options.resolved_device()
    codec = prepare_codec(build_codec(codec_name, args.quick), options)
    channels = int(codec.channels)
    enhancer = prepare_enhancer(build_enhancer(channels, args.quick), options)
    g = torch.Generator().manual_seed(0)
    points = torch.randn(args.gaussians, 3, generator=g)
    points = points / points.norm(dim=1, keepdim=True) * torch.rand(args.gaussians, 1, generator=g).pow(1 / 3)
    features = torch.randn(args.gaussians, channels, generator=g)
    gaussians = FeatureGaussians.create(points, features, init_opacity=0.5).to(device)
    train = ring_cameras(args.size, RING)
    latent = args.size // 8
    latents_dir.mkdir(parents=True, exist_ok=True)
    for cam in train:
        save_latent(latents_dir / f"{cam.stem}.pt", torch.randn(channels, latent, latent, generator=g))
    return LatentScene(gaussians=gaussians, codec=codec, train=train, test=[], latents_dir=latents_dir, device=device,
                       backend=resolve_backend(args.backend, device), enhancer=enhancer)


def bench_mode(scene, mode: str, args: argparse.Namespace) -> dict:
    """Frames per second of ``render_frame`` along an orbit (between the ring's cameras, at a smaller radius)."""
    from splatent_pipeline import render_frame
    from splatent_pipeline.view_frame import latent_resolution

    orbit = [latent_resolution(c) for c in ring_cameras(args.size, args.warmup + args.frames, radius=3.2,
                                                        height=0.8, prefix="orbit")]
    if scene.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(scene.device)
    for cam in orbit[:args.warmup]:  # cuDNN autotuning, caches of the references
        render_frame(scene, cam, mode)
    frames = []
    start = time.perf_counter()
    for cam in orbit[args.warmup:]:
        frames.append(render_frame(scene, cam, mode))
    wall = time.perf_counter() - start
    steps = {k: 1000 * float(np.mean([f.seconds[k] for f in frames])) for k in frames[0].seconds}
    return {"mode": mode, "frames": len(frames), "seconds": wall, "fps": len(frames) / wall,
            "ms": steps, "image": list(frames[0].image.shape[:2]), "references": len(frames[0].references),
            "peak_gib": (torch.cuda.max_memory_allocated(scene.device) / 2**30 if scene.device.type == "cuda"
                         else None)}


def run(args: argparse.Namespace) -> dict:
    if args.quick:
        args.size, args.gaussians = min(args.size, 64), min(args.gaussians, 2000)
        args.frames, args.warmup = min(args.frames, 3), min(args.warmup, 1)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    args.device = str(device)
    report = {
        "section": SECTION,
        **machine(device), "size": args.size, "gaussians": args.gaussians, "quick": args.quick,
        "enhancer": "tiny preset (random)" if args.quick else "SD-Turbo UNet architecture, random weights",
        "rows": [],
    }
    for codec_name in CODECS:
        with tempfile.TemporaryDirectory(prefix="splatent-bench-view-") as tmp:
            scene = build_scene(codec_name, args, Path(tmp) / "latents")
            report["backend"] = scene.backend
            for mode in MODES:
                try:
                    row = bench_mode(scene, mode, args)
                except torch.cuda.OutOfMemoryError:
                    row = {"mode": mode, "error": "out of memory"}
                row.update(codec=codec_name, channels=int(scene.codec.channels),
                           dtype=str(scene.codec.dtype).removeprefix("torch."))
                report["rows"].append(row)
                print(f"{codec_name} {mode}: " + (f"{row['fps']:.1f} frames/s {row['ms']}" if "fps" in row
                                                   else row["error"]), flush=True)
            del scene
    return report


def table(report: dict) -> str:
    size = report["size"]
    lines = [
        f"Date: {report['date']} · device: {report['device']} · torch {report['torch']} (CUDA {report['cuda']}) · "
        f"{report['cpu_count']} CPU cores · {report['backend']} rasteriser · {report['gaussians']:,} random latent "
        f"Gaussians · enhancer: {report['enhancer']}, 3 references"
        + (" · **--quick smoke run, not a measurement**" if report.get("quick") else ""),
        "",
        f"| codec | mode | frames/s at {size}² | frame ms | render ms | enhance ms | decode ms | dtype | peak GiB |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"| {r['codec']} ({r['channels']} ch) | {r['mode']} | {r['error']} | | | | | | |")
            continue
        ms = r["ms"]
        peak = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else ""
        enhance = f"{ms['enhance']:.1f}" if "enhance" in ms else "–"
        lines.append(f"| {r['codec']} ({r['channels']} ch) | {r['mode']} | {r['fps']:.1f} | {ms['total']:.1f} | "
                     f"{ms['render']:.1f} | {enhance} | {ms['decode']:.1f} | {r['dtype']} | {peak} |")
    lines += ["", "Frame = `render_frame` end to end, synchronised after each step (the viewer's server side; the "
                  "JPEG encoding and the websocket are not in it). Decode includes the copy of the uint8 image to the "
                  "host."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto", help="Rasteriser: auto (gsplat on CUDA), gsplat or torch.")
    parser.add_argument("--size", type=int, default=512, help="Frame side in pixels (a multiple of 8).")
    parser.add_argument("--gaussians", type=int, default=150_000)
    parser.add_argument("--frames", type=int, default=60, help="Timed frames per codec and mode.")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="Check the script: 64² frames, tiny presets, 3 frames.")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose view section to replace.")
    args = parser.parse_args()
    if args.size % 8:
        parser.error(f"--size must be a multiple of 8, got {args.size}")
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        report = run(args)
        report["command"] = recorded_command("view.py")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))
    text = table(report)
    print(text)
    if args.results:
        write_section(args.results, SECTION, f"view: the live viewer's frame, render → enhance → decode "
                      f"(`tools/bench/view.py`)", report.get("command", "python tools/bench/view.py"), text)


if __name__ == "__main__":
    main()
