"""Reconstruction PSNR and speed of a latent codec (``pca`` or ``taef2``) on a real capture (default ``../shared/data/fox``).

PSNR runs the real stages on a temporary copy of the scene downscaled by each
factor (``images_1`` = as captured): ``extract_latents`` (pca fits its basis on
the LLFF training views; taef2 uses its packaged weights), ``decode_latents``
turns every latent back into a PNG, and PSNR is taken against the image as it
was encoded (its size rounded down to a multiple of 8), on the test views
(every 8th by sorted name, from the first) and on the training views. The
standard deviation of all latent values of the training views is reported too:
its inverse is the codec's natural ``scaling_factor`` (taef2's constant comes
from the ``images_4`` row).

Speed: batches of random images of each ``--speed`` size (W×H) are encoded and
decoded after a warm-up, for each ``--speed-dtypes`` entry, on ``--device``
(CPU or CUDA; ``--compile`` for ``torch.compile``d encoder and decoder).
``--merge`` keeps the rows of an earlier JSON that this run did not measure,
so CPU and GPU numbers can share one section::

    python tools/bench/codec_psnr.py --codec taef2 --out benchmarks/taef2.json --results benchmarks/RESULTS.md
    python tools/bench/codec_psnr.py --codec taef2 --device cuda --factors 4 --speed-dtypes float32,bfloat16 \\
        --merge benchmarks/taef2.json --out benchmarks/taef2.json --results benchmarks/RESULTS.md
    python tools/bench/codec_psnr.py --codec pca --out pca_psnr.json     # what tools/bench/pca_psnr.py runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from machine import device_label, machine  # a sibling: tools/bench is on sys.path when its scripts run
from results_md import write_section  # a sibling: tools/bench is on sys.path when its scripts run

FOX = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fox"
CODECS = ("pca", "taef2")
SECTIONS = {"pca": "pca-psnr", "taef2": "taef2"}
TITLES = {"pca": "pca codec: reconstruction PSNR (`tools/bench/pca_psnr.py`)",
          "taef2": "taef2 codec: reconstruction PSNR and speed (`tools/bench/codec_psnr.py --codec taef2`)"}
DEFAULT_FACTORS = {"pca": "8,4,1", "taef2": "8,4"}  # taef2 as captured (1080x1920) takes ~30 s per image on 2 cores
DEFAULT_SPEED = {"pca": "", "taef2": "264x480,512x512"}
FITTING = {"pca": "basis fitted on the LLFF training views (every 8th view, from the first, is a test view and stays unseen)",
           "taef2": "pretrained weights shipped in splatent-latents (no fitting on the scene); test views are every 8th "
                    "by sorted name, from the first"}
NOTES = {"pca": "",
         "taef2": "taef2's `scaling_factor` (`SCALING_FACTOR` in `splatent_latents/taef2.py`) is 1 / the latent std of the "
                  "training views at images_4 size. Speed: random images, after two warm-up batches, for at least "
                  "`--seconds`; CPU rows use torch's default threads."}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
    return float(-10.0 * np.log10(mse))


def measure(scene: Path, factor: int, tmp: Path, codec: str, device: str, dtype: str) -> dict:
    """Extract + decode a copy of ``scene`` downscaled by ``factor``; PSNR per split and the training latents' spread."""
    import torch

    from splatent_data import llff_split
    from splatent_latents import decode_latents, extract_latents, load_latent
    from splatent_latents.images import probe_images, read_image

    copy = tmp / f"{codec}-x{factor}"
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
    result = extract_latents(copy, images=folder.name, codec=codec, device=device, dtype=dtype, workers=0)
    decode_latents(result.output, copy / "decoded", device=device, dtype=dtype)
    seconds = time.perf_counter() - start
    items = {i.stem: i for i in probe_images(folder)[0]}
    split = llff_split(list(items))
    scores = {s: psnr(np.asarray(Image.open(copy / "decoded" / f"{s}.png")), read_image(items[s]).permute(1, 2, 0).numpy())
              for s in items}
    test, train = [scores[s] for s in split.test], [scores[s] for s in split.train]
    latents = torch.stack([load_latent(result.output / f"{s}.pt") for s in split.train])  # [N, C, h, w]
    first = next(iter(items.values()))
    return {"factor": factor, "image_size": [first.width, first.height], "encoded": list(first.encoded_size[::-1]),
            "device": device_label(device), "dtype": result.dtype, "channels": int(latents.shape[1]),
            "test_mean": float(np.mean(test)), "test_min": float(np.min(test)), "train_mean": float(np.mean(train)),
            "latent_std": float(latents.std()), "latent_channel_mean_max": float(latents.mean(dim=(0, 2, 3)).abs().max()),
            "views": {"train": len(train), "test": len(test)}, "seconds": seconds}


def speed(codec_name: str, width: int, height: int, device: str, dtype: str, batch: int, seconds: float, compile: bool) -> dict:
    """Encode and decode throughput (images/s) on random images, after a warm-up."""
    import torch

    from splatent_latents import PCACodec, load_codec
    from splatent_latents import parse_dtype

    torch_dtype = parse_dtype(dtype)
    if codec_name == "pca":
        codec = PCACodec.fit(torch.rand(2, 3, 64, 64))
    else:
        codec = load_codec(codec_name)
    codec.to(device, torch_dtype)
    if compile:
        codec.compile()
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device, torch_dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

    def rate(step) -> float:
        step(), step()  # warm-up (and compilation)
        sync()
        runs, start = 0, time.perf_counter()
        while runs < 2 or time.perf_counter() - start < seconds:
            step()
            runs += 1
            sync()
        return runs * batch / (time.perf_counter() - start)

    with torch.inference_mode():
        z = codec.encode(x)
        encode = rate(lambda: codec.encode(x))
        decode = rate(lambda: codec.decode(z))
    return {"size": [width, height], "device": device_label(device), "dtype": dtype.replace("bf16", "bfloat16").replace("fp32", "float32"),
            "compiled": compile, "batch": batch, "min_seconds": seconds, "encode_images_per_s": encode,
            "decode_images_per_s": decode}


def merge(old: dict, new: dict) -> dict:
    """``new`` plus the rows of ``old`` it did not re-measure (same factor/size, device, dtype)."""
    def keyed(rows, key):
        return {key(r): r for r in rows}

    psnr_key = lambda r: (r["factor"], r.get("device"), r.get("dtype"))  # noqa: E731
    speed_key = lambda r: (tuple(r["size"]), r["device"], r["dtype"], r["compiled"])  # noqa: E731
    results = {**keyed(old.get("results", []), psnr_key), **keyed(new["results"], psnr_key)}
    speeds = {**keyed(old.get("speed", []), speed_key), **keyed(new["speed"], speed_key)}
    return {**old, **new, "results": list(results.values()), "speed": list(speeds.values())}


def table(report: dict) -> str:
    codec = report.get("codec", "pca")
    lines = [f"Date: {report.get('date', '?')} · scene: {report['scene']} · {FITTING[codec]} · PSNR against the image as encoded"]
    if NOTES[codec]:
        lines += ["", NOTES[codec]]
    if report["results"]:
        lines += ["", "| images | encoded at (W×H) | device, dtype | test views: mean PSNR (min) | training views: mean PSNR "
                      "| latent std (training views) | extract + decode s |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for r in report["results"]:
            name = "as captured" if r["factor"] == 1 else f"1/{r['factor']} (images_{r['factor']})"
            device = r.get("device", f"CPU ({report.get('cpu_count', '?')} cores)")
            std = f"{r['latent_std']:.4f}" if "latent_std" in r else "—"
            lines.append(f"| {name} | {r['encoded'][0]}x{r['encoded'][1]} | {device}, {r.get('dtype', 'float32')} "
                         f"| {r['test_mean']:.2f} dB ({r['test_min']:.2f}) | {r['train_mean']:.2f} dB | {std} | {r['seconds']:.1f} |")
    if report.get("speed"):
        lines += ["", "| device | dtype | compiled | images (W×H) | batch | timed (s, at least) | encode images/s | decode images/s |",
                  "|---|---|---|---|---:|---:|---:|---:|"]
        for s in report["speed"]:
            lines.append(f"| {s['device']} | {s['dtype']} | {'yes' if s['compiled'] else 'no'} | {s['size'][0]}x{s['size'][1]} "
                         f"| {s['batch']} | {s.get('min_seconds', '?')} | {s['encode_images_per_s']:.2f} | {s['decode_images_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, default_codec: str | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", choices=CODECS, default=default_codec, help="Required unless --report names a JSON.")
    parser.add_argument("--scene", type=Path, default=FOX, help="A scene with images/ and poses.")
    parser.add_argument("--factors", help="Downscale factors for PSNR ('' for none) [default: pca 8,4,1; taef2 8,4].")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N.")
    parser.add_argument("--dtype", default="float32", help="Precision of the PSNR runs.")
    parser.add_argument("--speed", help="Image sizes WxH to time ('' for none) [default: pca none; taef2 264x480,512x512].")
    parser.add_argument("--speed-dtypes", default="float32", help="Comma-separated precisions to time (float32,bfloat16).")
    parser.add_argument("--batch", type=int, help="Images per timed batch [default: 4 on CPU, 16 on CUDA].")
    parser.add_argument("--seconds", type=float, default=10.0, help="Minimum timed seconds per measurement.")
    parser.add_argument("--compile", action="store_true", help="torch.compile the codec for the speed runs.")
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument("--merge", type=Path, help="An earlier JSON whose rows this run does not re-measure are kept.")
    parser.add_argument("--report", type=Path, help="Print (and with --results, write) the markdown of an existing JSON.")
    parser.add_argument("--results", type=Path, help="RESULTS.md whose section for this codec to replace.")
    args = parser.parse_args(argv)
    codec = args.codec
    if codec is None and not args.report:
        parser.error("--codec is required (pca or taef2)")
    if args.report:
        report = json.loads(args.report.read_text())
        codec = report.get("codec", codec or "pca")  # the pca JSONs before 0.3.0 name no codec
    else:
        factors = [int(f) for f in (DEFAULT_FACTORS[codec] if args.factors is None else args.factors).split(",") if f]
        sizes = [tuple(int(v) for v in s.split("x")) for s in (DEFAULT_SPEED[codec] if args.speed is None else args.speed).split(",") if s]
        if factors and not (args.scene / "images").is_dir():
            raise SystemExit(f"codec_psnr: no images/ in {args.scene}; pass --scene")
        with tempfile.TemporaryDirectory(prefix=f"splatent-{codec}-") as tmp:
            results = [measure(args.scene, f, Path(tmp), codec, args.device, args.dtype) for f in factors]
        batch = args.batch or (16 if args.device.startswith("cuda") else 4)
        speeds = [speed(codec, w, h, args.device, d, batch, args.seconds, args.compile)
                  for d in args.speed_dtypes.split(",") if d for w, h in sizes]
        report = {"section": SECTIONS[codec], "codec": codec, "scene": args.scene.name, **machine(args.device),
                  "results": results, "speed": speeds}
        if args.merge and args.merge.is_file():
            report = merge(json.loads(args.merge.read_text()), report)
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.results:
        if codec == "pca":
            factors = ",".join(str(r["factor"]) for r in report["results"])
            command = f"python tools/bench/pca_psnr.py --factors {factors}"
        else:
            command = f"python tools/bench/codec_psnr.py --codec {codec} [--device cuda --speed-dtypes float32,bfloat16 --merge J]"
        write_section(args.results, SECTIONS[codec], TITLES[codec], command, table(report))


if __name__ == "__main__":
    main()
