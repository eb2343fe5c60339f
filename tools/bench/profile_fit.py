"""Where a latent fit's step goes on the GPU: fox (undistorted like ``tools/bench/splat.py``), extracted with
``--codec``, fitted for ``--steps`` without evaluation (wall time, test PSNR at the end), once per ``--variants``
(``baseline``: the multi-tensor Adam; ``fused``: PyTorch's fused Adam, the CUDA default; ``torch-sh``: fused Adam
with the latent SH evaluated by the PyTorch bases instead of gsplat's kernel on channel groups, the path before
issue 16), then
``--profile-steps`` steps of the default variant under ``torch.profiler``: the kernel table (device time per step)
and the host operators (CPU time per step). Kernel time well under the wall time per step means the loop is
bound by the host (Python and launches), not by the GPU. ::

    python tools/bench/profile_fit.py --fox .device/fox_full --out $OUT/profile_fit.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from profiling import activities, host_table, kernel_table, print_table
from splat import prepare_scene  # siblings: tools/bench is on sys.path when its scripts run


def _fit(scene: Path, model: Path, codec: str, steps: int, fused: bool | None, device: str) -> dict:
    from splatent_splat import FitConfig, fit_scene

    cfg = FitConfig(steps=steps, latents=f"features_{codec.replace('-', '_')}", device=device, eval_every=0,
                    checkpoint_every=0, tensorboard=False, progress=False, fused_adam=fused)
    t0 = time.perf_counter()
    result = fit_scene(scene, model, cfg, overwrite=True)
    return {"steps": steps, "seconds": result.seconds, "wall_seconds": time.perf_counter() - t0,
            "steps_per_second": result.steps_per_second, "ms_per_step": 1e3 * result.seconds / steps,
            "num_gaussians": result.num_gaussians, "test_psnr": result.test.get("psnr"),
            "test_ssim": result.test.get("ssim")}


@contextlib.contextmanager
def _torch_sh(enabled: bool):
    """The latent colours through the PyTorch SH bases (the path before gsplat's kernel took channel groups)."""
    from splatent_splat import gaussians, sh

    if not enabled:
        yield
        return
    gaussians.eval_sh = lambda degree, dirs, coeffs, backend="torch": sh.eval_sh(degree, dirs, coeffs)
    try:
        yield
    finally:
        gaussians.eval_sh = sh.eval_sh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fox", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatent_profile_fit")
    parser.add_argument("--codec", default="pca")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--variants", default="torch-sh,fused")
    parser.add_argument("--profile-steps", type=int, default=1500)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from splatent_latents import extract_latents

    device = torch.device(args.device)
    if device.type == "cuda":
        from splatent_splat import build_gsplat_kernels

        print("gsplat kernels:", build_gsplat_kernels())
    scene = prepare_scene(args.fox, args.work, synthetic=False)
    t0 = time.perf_counter()
    extract_latents(scene, output=f"features_{args.codec.replace('-', '_')}", images="images", codec=args.codec,
                    device=args.device)
    report: dict = {**machine(device), "codec": args.codec, "extract_seconds": time.perf_counter() - t0,
                    "latent_sh": "gsplat" if device.type == "cuda" else "torch",  # the default path's SH evaluation
                    "fits": {}}
    for variant in args.variants.split(","):
        fused = {"baseline": False, "fused": True, "default": None, "torch-sh": True}[variant]
        with _torch_sh(variant == "torch-sh"):
            report["fits"][variant] = _fit(scene, args.work / f"model_{variant}", args.codec, args.steps, fused,
                                           args.device)
        print(variant, json.dumps(report["fits"][variant]))
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    with torch.profiler.profile(activities=activities(device)) as prof:
        short = _fit(scene, args.work / "model_profiled", args.codec, args.profile_steps, None, args.device)
    report["profile"] = {"steps": args.profile_steps, "profiled_ms_per_step": short["ms_per_step"],
                         "kernels": kernel_table(prof, args.profile_steps, device, 30),
                         "host": host_table(prof, args.profile_steps, 30)}
    print_table("kernels", report["profile"]["kernels"])
    print_table("host operators", report["profile"]["host"])
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
