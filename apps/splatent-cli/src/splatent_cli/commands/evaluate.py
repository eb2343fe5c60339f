"""``splatent eval``: PSNR / SSIM / LPIPS / FID of renders, enhanced renders and the codec ceiling, with a report."""

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
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", " /--no_lpips", help="Score LPIPS (needs the backbone weights)."),
    lpips_net: str = typer.Option("vgg", "--lpips_net", "--lpips-net", help="LPIPS backbone: vgg or alex."),
    fid: bool = typer.Option(None, "--fid/--no-fid", " /--no_fid", help="FID against the photos (default: when "
                             "torch-fidelity's Inception weights load; --fid requires them)."),
    fid_weights: Path = typer.Option(None, "--fid_weights", "--fid-weights", help="A local copy of the Inception "
                                     "weights (weights-inception-2015-12-05-6726825d.pth)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
) -> None:
    """Score renders and enhanced renders against ground truth; write a report."""
    from splatent_latents import progress_bar
    from splatent_pipeline import evaluate_folder

    # lazy: the bar appears with the first scored view, after the LPIPS and FID networks load
    with progress_bar("eval", 0, unit="views", lazy=True) as bar:
        ev = evaluate_folder(result_dir, output, enhanced=enhanced, dataset=dataset, lpips=lpips, lpips_net=lpips_net,
                             device=device, fid=fid, fid_weights=fid_weights, progress=bar.report)
    print(f"report: {ev.report}")
    # a mean over fewer views (an enhanced folder covering part of them) says so: it is not comparable as it stands
    print("mean PSNR over {} views: ".format(ev.views) + ", ".join(
        f"{k} {v['psnr']:.2f} dB" + (f" ({ev.counts[k]} of the {ev.views} views)" if ev.counts[k] < ev.views else "")
        for k, v in ev.means.items()))
