"""Initialisation of a fit's Gaussians on the CPU: the nearest-neighbour scale (scipy's k-d tree) alone and the
whole ``FeatureGaussians.create`` (scales, random orientations, opacities, SH features) for N points in a
cameras' frustum-sized box. Issue 15's goal: 100 000 points under 2 s on CPU. ::

    python tools/bench/init.py --points 100000 --repeat 5 --out benchmarks/init.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from machine import machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import recorded_command, write_section  # a sibling: tools/bench is on sys.path when its scripts run

GOAL_SECONDS = 2.0


def _timed(fn, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--channels", type=int, default=4, help="latent channels of the features")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("init.json"))
    parser.add_argument("--results", type=Path, help="also write the RESULTS.md section")
    args = parser.parse_args()

    from splatent_splat import FeatureGaussians
    from splatent_splat.gaussians import nearest_neighbour_distance

    g = torch.Generator().manual_seed(0)
    xyz = (torch.rand(args.points, 3, generator=g) - 0.5) * torch.tensor([8.0, 6.0, 10.0])
    features = torch.randn(args.points, args.channels, generator=g)
    knn = _timed(lambda: nearest_neighbour_distance(xyz), args.repeat)
    create = _timed(lambda: FeatureGaussians.create(xyz, features, sh_degree=3, feature_kind="latent",
                                                    feature_mean=torch.zeros(args.channels),
                                                    feature_scale=torch.ones(args.channels)), args.repeat)
    report = {
        "points": args.points, "channels": args.channels, "repeat": args.repeat,
        "knn_seconds": {"min": min(knn), "median": statistics.median(knn), "max": max(knn)},
        "create_seconds": {"min": min(create), "median": statistics.median(create), "max": max(create)},
        "goal_seconds": GOAL_SECONDS, "goal_met": statistics.median(create) < GOAL_SECONDS,
        **machine("cpu"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if args.results:
        k, c = report["knn_seconds"], report["create_seconds"]
        body = (f"{args.points:,} points, {os.cpu_count()} CPU cores, torch {torch.__version__}, {args.repeat} runs "
                f"(min / median / max):\n\n"
                f"| step | seconds |\n|---|---|\n"
                f"| nearest-neighbour scale (scipy cKDTree, k = 3) | {k['min']:.3f} / {k['median']:.3f} / {k['max']:.3f} |\n"
                f"| `FeatureGaussians.create` (all parameters, SH degree 3, {args.channels} channels) | "
                f"{c['min']:.3f} / {c['median']:.3f} / {c['max']:.3f} |\n\n"
                f"Goal: under {GOAL_SECONDS:.0f} s: **{'met' if report['goal_met'] else 'not met'}** "
                f"(the all-pairs `cdist` it replaced took about 90 s for 100 000 points).")
        write_section(args.results, "init", "fit initialisation on the CPU (`tools/bench/init.py`)",
                      recorded_command("init.py", ("--out", "--results")), body)


if __name__ == "__main__":
    main()
