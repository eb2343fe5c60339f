"""The VAE's mid-block attention: SDPA against two matmuls, in the three places the VAE runs.

The SD VAE's attention has one head of 512 channels, which flash and cuDNN attention do not take, so SDPA runs its
memory-efficient kernel; the training profile showed that kernel's backward pass at 6.2 ms a step. This times, for
each ``VaeCodec(attention=...)`` mode, eager and ``torch.compile``d (default mode):

* ``encode``: the encoder, batch 16 at 512² (extraction);
* ``decode``: the decoder, batch 16 from 64² latents (enhancement);
* ``decode-backward``: the decoder forward and backward to its input, batch 1 (the training step's RGB and LPIPS
  losses), weights frozen;

and how far each mode's outputs (and input gradients) are from SDPA's. Random weights in SD-Turbo's VAE
architecture, bf16.

    python tools/bench/vae_attention.py --out $OUT/vae_attention.json
    python tools/bench/vae_attention.py --report benchmarks/vae_attention.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section
from train_step import time_per_call

SECTION = "vae-attention"


def measure(vae, mode: str, compiled: bool, size: int, batch: int, repeats: int) -> dict:
    from splatent_latents import VaeCodec

    codec = VaeCodec(copy.deepcopy(vae), attention=mode).to("cuda", torch.bfloat16)
    if compiled:
        codec.vae.encoder.compile()
        codec.vae.decoder.compile()
    g = torch.Generator(device="cuda").manual_seed(0)
    images = torch.rand(batch, 3, size, size, device="cuda", generator=g)
    latents = torch.randn(batch, 4, size // 8, size // 8, device="cuda", generator=g) * 5
    one = latents[:1].clone().requires_grad_(True)
    outputs = {}

    def encode():
        with torch.no_grad():
            outputs["encode"] = codec.encode(images)

    def decode():
        with torch.no_grad():
            outputs["decode"] = codec.decode(latents)

    def decode_backward():
        one.grad = None
        codec.decode(one).square().mean().backward()
        outputs["decode-backward"] = one.grad

    row = {"mode": mode, "compiled": compiled, "batch": batch, "size": size}
    began = time.perf_counter()
    for name, fn, reps in (("encode", encode, repeats), ("decode", decode, repeats),
                           ("decode-backward", decode_backward, 4 * repeats)):
        row[f"{name}_ms"] = 1e3 * time_per_call(fn, reps, torch.device("cuda"))
    row["seconds"] = time.perf_counter() - began
    row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del codec
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()
    return row, {k: v.float().cpu() for k, v in outputs.items()}


def table(report: dict) -> str:
    rows = report["rows"]
    lines = [f"Date: {report['date']} · device: {report['device']} · torch {report['torch']} (CUDA {report['cuda']}) · "
             f"SD-Turbo VAE architecture, random weights, bf16 · {rows[0]['size']}² images, encode and decode in "
             f"batches of {rows[0]['batch']}, decode + backward to the latents in batches of 1", "",
             "| attention | compiled | encode ms | decode ms | decode + backward ms | peak GiB | max. difference to eager SDPA (encode / decode / gradient) |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        diff = " / ".join(f"{r[f'{k}_max_abs_diff']:.3g}" for k in ("encode", "decode", "decode-backward"))
        lines.append(f"| {r['mode']} | {'yes' if r['compiled'] else 'no'} | {r['encode_ms']:.1f} | {r['decode_ms']:.1f} | "
                     f"{r['decode-backward_ms']:.1f} | {r['peak_gib']:.1f} | {diff} |")
    by = {(r["mode"], r["compiled"]): r for r in rows}
    for compiled in (False, True):
        a, b = by.get(("sdpa", compiled)), by.get(("matmul", compiled))
        if a and b:
            lines.append(f"\n- {'Compiled' if compiled else 'Eager'}: matmul against SDPA: encode "
                         f"{b['encode_ms'] / a['encode_ms']:.2f}×, decode {b['decode_ms'] / a['decode_ms']:.2f}×, "
                         f"decode + backward {b['decode-backward_ms'] / a['decode-backward_ms']:.2f}× the time.")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--modes", default="sdpa,matmul")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--out", type=Path)
    p.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    p.add_argument("--results", type=Path, help="RESULTS.md whose vae-attention section to replace.")
    args = p.parse_args()
    if args.report:
        report = json.loads(args.report.read_text())
        print(table(report))
        if args.results:
            write_section(args.results, SECTION, "VAE attention: SDPA against two matmuls (`tools/bench/vae_attention.py`)",
                          report["command"], table(report))
        return
    from diffusers import AutoencoderKL

    from splatent_latents import sd_vae_config

    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    vae = AutoencoderKL(**sd_vae_config())
    rows, reference = [], {}
    for compiled in ([False, True] if args.compile else [False]):
        for mode in args.modes.split(","):
            row, outputs = measure(vae, mode, compiled, args.size, args.batch, args.repeats)
            for name, value in outputs.items():  # against eager SDPA
                base = reference.setdefault(name, value)
                row[f"{name}_max_abs_diff"] = float((value - base).abs().max())
                row[f"{name}_mean_abs"] = float(base.abs().mean())
            rows.append(row)
            print(json.dumps(row), flush=True)
    report = {**machine("cuda"), "rows": rows, "command": recorded_command("vae_attention.py")}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
