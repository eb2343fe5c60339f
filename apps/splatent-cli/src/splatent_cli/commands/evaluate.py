"""``splatent eval``: PSNR / SSIM / LPIPS of renders, enhanced renders and the codec ceiling, with a report."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import guarded


@guarded("eval")
def evaluate(
    result_dir: Path = typer.Argument(..., help="A pipeline result folder, or a render folder (nvs/, nvs_gt/)."),
    output: Path = typer.Option(None, "--output", "-o", help="Report folder (default: RESULT_DIR/eval)."),
    enhanced: Path = typer.Option(None, "--enhanced", help="Folder of enhanced latents (default: RESULT_DIR/enhanced)."),
    dataset: Path = typer.Option(None, "--dataset_path", "--dataset-path", help="Dataset JSON (for the references)."),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="Score LPIPS (needs the backbone weights)."),
    lpips_net: str = typer.Option("vgg", "--lpips_net", "--lpips-net", help="LPIPS backbone: vgg or alex."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
) -> None:
    """Score renders and enhanced renders against ground truth; write a report."""
    from splatent_data import SplatentError
    from splatent_train.evaluate import evaluate_results

    renders = result_dir
    if not (renders / "nvs").is_dir():  # a pipeline folder: renders/<scene>/
        found = sorted(p for p in (result_dir / "renders").glob("*") if (p / "nvs").is_dir())
        if not found:
            raise SplatentError(f"{result_dir} holds neither nvs/ nor renders/<scene>/nvs/; pass a render or pipeline folder")
        renders = found[0]
    enhanced = enhanced or (result_dir / "enhanced" if (result_dir / "enhanced").is_dir() else None)
    dataset = dataset or (result_dir / "data" / "dataset.json" if (result_dir / "data" / "dataset.json").is_file() else None)
    out = output or (result_dir / "eval")
    ev = evaluate_results(renders, out, enhanced=enhanced, dataset=dataset, lpips=lpips, lpips_net=lpips_net, device=device)
    print(f"report: {ev.report}")
    print("mean PSNR over {} views: ".format(ev.views) + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in ev.means.items()))
