"""Reconstruction PSNR of the ``pca`` codec on a real capture (default ``../shared/data/fox``).

Runs the real stages on a temporary copy of the scene downscaled by each
factor (``images_1`` = as captured): ``extract_latents(codec="pca")`` fits the
basis on the LLFF training views, ``decode_latents`` turns every latent back
into a PNG, and PSNR is taken against the image as it was encoded (its size
rounded down to a multiple of 8). CPU only; about a minute for fox::

    python tools/bench/pca_psnr.py --out pca_psnr.json
    python tools/bench/pca_psnr.py --report pca_psnr.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from results_md import write_section  # a sibling: tools/bench is on sys.path when its scripts run

SECTION = "pca-psnr"
FOX = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fox"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
    return float(-10.0 * np.log10(mse))


def measure(scene: Path, factor: int, tmp: Path) -> dict:
    from splatent_data import llff_split
    from splatent_latents import decode_latents, extract_latents
    from splatent_latents.images import probe_images, read_image

    copy = tmp / f"x{factor}"
    folder = copy / f"images_{factor}"
    folder.mkdir(parents=True)
    for pose_file in scene.glob("transforms*.json"):
        shutil.copy(pose_file, copy / pose_file.name)
    for path in sorted((scene / "images").iterdir()):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            with Image.open(path) as img:
                size = (round(img.width / factor), round(img.height / factor))
                img.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(folder / f"{path.stem}.png")
    start = time.perf_counter()
    result = extract_latents(copy, images=folder.name, codec="pca", workers=0)
    decode_latents(result.output, copy / "decoded")
    seconds = time.perf_counter() - start
    items = {i.stem: i for i in probe_images(folder)[0]}
    split = llff_split(list(items))
    scores = {s: psnr(np.asarray(Image.open(copy / "decoded" / f"{s}.png")), read_image(items[s]).permute(1, 2, 0).numpy())
              for s in items}
    test, train = [scores[s] for s in split.test], [scores[s] for s in split.train]
    first = next(iter(items.values()))
    return {"factor": factor, "image_size": [first.width, first.height], "encoded": list(first.encoded_size[::-1]),
            "test_mean": float(np.mean(test)), "test_min": float(np.min(test)), "train_mean": float(np.mean(train)),
            "views": {"train": len(train), "test": len(test)}, "seconds": seconds}


def table(report: dict) -> str:
    lines = [f"Date: {report.get('date', '?')} · CPU ({report.get('cpu_count', '?')} cores) · scene: {report['scene']} · basis fitted on the LLFF training views (every 8th view, from the first, is a test view "
             "and stays unseen) · PSNR against the image as encoded", "",
             "| images | encoded at (W×H) | test views: mean PSNR (min) | training views: mean PSNR | extract + decode s (CPU) |",
             "|---|---|---:|---:|---:|"]
    for r in report["results"]:
        name = "as captured" if r["factor"] == 1 else f"1/{r['factor']} (images_{r['factor']})"
        lines.append(f"| {name} | {r['encoded'][0]}x{r['encoded'][1]} | {r['test_mean']:.2f} dB ({r['test_min']:.2f}) "
                     f"| {r['train_mean']:.2f} dB | {r['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, default=FOX, help="A scene with images/ and poses.")
    parser.add_argument("--factors", default="8,4,1", help="Downscale factors to measure.")
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose pca-psnr section to replace.")
    args = parser.parse_args()
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        if not (args.scene / "images").is_dir():
            raise SystemExit(f"pca_psnr: no images/ in {args.scene}; pass --scene")
        with tempfile.TemporaryDirectory(prefix="splatent-pca-") as tmp:
            results = [measure(args.scene, int(f), Path(tmp)) for f in args.factors.split(",")]
        report = {"section": SECTION, "scene": args.scene.name, "date": time.strftime("%Y-%m-%d"),
                  "cpu_count": os.cpu_count(), "results": results}
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.results:
        factors = ",".join(str(r["factor"]) for r in report["results"])
        write_section(args.results, SECTION, "pca codec: reconstruction PSNR (`tools/bench/pca_psnr.py`)",
                      f"python tools/bench/pca_psnr.py --factors {factors}", table(report))


if __name__ == "__main__":
    main()
