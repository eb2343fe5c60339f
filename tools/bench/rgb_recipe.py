"""RGB 3DGS on fox: ``splatent fit --target rgb`` against a plain gsplat recipe, same views, same steps, one run.

* ``ours``: ``fit_scene`` with ``target="rgb"`` (SH degree 3, L1 + 0.2 D-SSIM, gsplat's default strategy, the
  fitter's defaults: fused Adam on CUDA, packed rasterisation, random initial points in the cameras' frustums).
* ``gsplat``: the loop of gsplat's ``examples/simple_trainer.py`` written out with its defaults: ``rasterization``
  with ``sh_degree`` raised every 1 000 steps, ``DefaultStrategy()``, one ``torch.optim.Adam`` per parameter
  (eps 1e-15), the means' rate decaying to 0.01× by the last step (``ExponentialLR``), unpacked rasterisation,
  random initial points in a cube of 3 × the scene scale, L1 + 0.2 D-SSIM (the same SSIM as ours: gsplat's
  ``fused_ssim`` is a separate CUDA package; both use the 11×11 Gaussian window).

Both see the same undistorted images at ``--scale`` of their size and the same LLFF split (every 8th view a test
view); wall time excludes loading and the final evaluation; test PSNR on the held-out views at the end. ::

    python tools/bench/rgb_recipe.py --fox .device/fox_und --out $OUT/rgb_recipe.json

``--device cpu --synthetic --steps 30`` checks the script (both recipes on splatent's PyTorch rasteriser, which
stands in for gsplat's ``rasterization`` there: a check of the loop, not a measurement).
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from pathlib import Path

import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from splat import prepare_scene  # a sibling: tools/bench is on sys.path when its scripts run


def ours(scene: Path, work: Path, steps: int, scale: float, device: str, points: int = 100_000) -> dict:
    from splatent_splat import FitConfig, fit_scene

    cfg = FitConfig(steps=steps, target="rgb", sh_degree=3, rgb_scale=scale, device=device, init_points=points, eval_every=0,
                    checkpoint_every=0, tensorboard=False, progress=False)
    result = fit_scene(scene, work / "ours", cfg, overwrite=True)
    return {"seconds": result.seconds, "steps_per_second": result.steps_per_second,
            "num_gaussians": result.num_gaussians, "test_psnr": result.test["psnr"], "test_ssim": result.test["ssim"]}


def plain_gsplat(scene_dir: Path, steps: int, scale: float, device: str = "cuda", points: int = 100_000,
                 seed: int = 0) -> dict:
    """simple_trainer's loop with its defaults (see the module doc)."""
    from gsplat import DefaultStrategy

    from splatent_data import load_scene, split_scene
    from splatent_latents.metrics import psnr, ssim
    from splatent_splat import camera_tensors, rgb_to_sh
    from splatent_splat.fit import _scene_scale  # gsplat's definition; the same number both recipes use
    from splatent_splat.gaussians import nearest_neighbour_distance
    from splatent_splat.views import load_rgb_views

    device = torch.device(device)
    if device.type == "cuda":
        from gsplat import rasterization
    else:  # the script check: splatent's PyTorch rasteriser, same arguments and meta, stands in
        from splatent_splat import rasterize

        rasterization = functools.partial(rasterize, backend="torch")
    torch.manual_seed(seed)
    scene = load_scene(scene_dir)
    split = split_scene(scene, mode="llff", every=8)
    train = load_rgb_views(scene, list(split.train), scale=scale, device=device)
    test = load_rgb_views(scene, list(split.test), scale=scale, device=device)
    cams = [camera_tensors([v.camera], device) for v in train]
    scene_scale = _scene_scale(train)

    n = points  # simple_trainer: init_type="random", init_num_pts=100_000, init_extent=3.0
    points = (3.0 * scene_scale * (torch.rand(n, 3) * 2 - 1)).to(device)
    rgbs = torch.rand(n, 3, device=device)
    # Per-point scale from the 3 nearest neighbours (splatent's k-d tree helper: their mean distance, where
    # simple_trainer takes their RMS: the same scale to a few percent).
    scales = torch.log(nearest_neighbour_distance(points, k=3).clamp_min(1e-7))[:, None].repeat(1, 3)
    params = torch.nn.ParameterDict({
        "means": points, "scales": scales,
        "quats": torch.rand(n, 4, device=device), "opacities": torch.logit(torch.full((n,), 0.1, device=device)),
        "sh0": rgb_to_sh(rgbs)[:, None, :],
        "shN": torch.zeros(n, 15, 3, device=device),
    })
    lrs = {"means": 1.6e-4 * scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3,
           "shN": 2.5e-3 / 20}
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": lrs[k], "name": k}], eps=1e-15) for k in params}
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / steps))
    strategy = DefaultStrategy()
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=scene_scale)

    def render(viewmats, ks, width, height, degree):
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        return rasterization(params["means"], params["quats"], torch.exp(params["scales"]),
                             torch.sigmoid(params["opacities"]), colors, viewmats, ks, width, height,
                             sh_degree=degree, packed=False)

    order = torch.randperm(len(train)).tolist()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        if not order:
            order = torch.randperm(len(train)).tolist()
        i = order.pop()
        view, (viewmats, ks) = train[i], cams[i]
        image, _, info = render(viewmats, ks, view.camera.width, view.camera.height, min(step // 1000, 3))
        pred, gt = image.permute(0, 3, 1, 2), view.target[None]
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss = 0.8 * (pred - gt).abs().mean() + 0.2 * (1 - ssim(pred, gt, data_range=1.0).mean())
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        scheduler.step()
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
    sync()
    seconds = time.perf_counter() - t0
    scores = []
    with torch.no_grad():
        for view in test:
            viewmats, ks = camera_tensors([view.camera], device)
            image, _, _ = render(viewmats, ks, view.camera.width, view.camera.height, 3)
            pred = image.permute(0, 3, 1, 2).clamp(0, 1)
            scores.append((float(psnr(pred, view.target[None], data_range=1.0)),
                           float(ssim(pred, view.target[None], data_range=1.0).mean())))
    return {"seconds": seconds, "steps_per_second": steps / seconds, "num_gaussians": len(params["means"]),
            "test_psnr": sum(s[0] for s in scores) / len(scores), "test_ssim": sum(s[1] for s in scores) / len(scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fox", type=Path, default=None)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "splatent_rgb_recipe")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=0.25, help="Fraction of the photos' size (fox: 267x474).")
    parser.add_argument("--recipes", default="gsplat,ours")
    parser.add_argument("--init-points", type=int, default=100_000, help="Random initial points, both recipes.")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    scene = prepare_scene(args.fox, args.work, synthetic=args.synthetic)
    report: dict = {**machine(args.device), "steps": args.steps, "scale": args.scale, "recipes": {}}
    for recipe in args.recipes.split(","):
        if args.device == "cuda":
            torch.cuda.empty_cache()
        row = ours(scene, args.work, args.steps, args.scale, args.device, args.init_points) if recipe == "ours" else \
            plain_gsplat(scene, args.steps, args.scale, args.device, args.init_points)
        report["recipes"][recipe] = row
        print(recipe, json.dumps(row), flush=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
