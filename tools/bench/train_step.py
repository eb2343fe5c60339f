"""Where one enhancer training step goes: the UNet step alone (no data loader), timed and profiled.

For a preset (``--base-model``, default ``small``) at ``--latent`` latent pixels, batch ``--batch`` and each
number of views in ``--views`` (1: no references; 4: three references in a 2x2 grid), this times
forward, forward+backward and the whole optimiser step (bf16 autocast, fused AdamW, as
``splatent_train`` runs it on CUDA) over random latents, eager and (``--compile``) compiled, and prints
``torch.profiler``'s top CUDA kernels and the CPU time per step. Compare its steps/s with the
``train`` stage's to see what the data loader and the loop add.

    python tools/bench/train_step.py --out $OUT/train_step.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run


def time_per_call(fn, steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls, after three untimed ones (compiles, cuDNN tuning)."""
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / steps


def measure(args, views: int, compile: bool) -> dict:
    from splatent_model import SplatentEnhancer

    device = torch.device(args.device)
    model = SplatentEnhancer.preset(args.base_model, channels=args.channels, top_k=views - 1).to(device)
    model.requires_grad_(False)
    model.unet.requires_grad_(True)
    model.train()
    if compile:
        model.unet.compile()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    opt = torch.optim.AdamW([p for p in model.unet.parameters() if p.requires_grad], lr=1e-4,
                            fused=device.type == "cuda")
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.batch, views, args.channels, args.latent, args.latent, generator=g).to(device)
    target = torch.randn(args.batch, args.channels, args.latent, args.latent, generator=g).to(device)
    embeds = model.prompt_embeds().to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def forward():
        with torch.no_grad(), autocast:
            model(x, prompt_embeds=embeds)

    def forward_backward():
        with autocast:
            loss = F.mse_loss(model(x, prompt_embeds=embeds).float(), target)
        loss.backward()

    def step():
        forward_backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t_compile = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = {"views": views, "compile": compile, "first_step_s": time.perf_counter() - t_compile,
           "forward_ms": 1e3 * time_per_call(forward, args.steps, device),
           "forward_backward_ms": 1e3 * time_per_call(forward_backward, args.steps, device),
           "step_ms": 1e3 * time_per_call(step, args.steps, device)}
    out["steps_per_second"] = 1e3 / out["step_ms"]
    if args.profile and not compile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for _ in range(5):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        out["profile"] = prof.key_averages().table(sort_by=key, row_limit=args.rows)
        events = prof.key_averages()
        out["kernel_launches_per_step"] = sum(e.count for e in events if e.key == "cudaLaunchKernel") / 5
    print(json.dumps({k: v for k, v in out.items() if k != "profile"}), flush=True)
    if "profile" in out:
        print(out["profile"], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-model", default="small")
    p.add_argument("--channels", type=int, default=32, help="latent channels (taef2: 32)")
    p.add_argument("--latent", type=int, default=32, help="crop side in latent pixels (256 px / 8)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--views", default="1,4")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    results = [measure(args, int(v), c) for v in args.views.split(",") for c in ([False, True] if args.compile else [False])]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                                        **machine()}, indent=1))


if __name__ == "__main__":
    main()
