"""Reconstruction PSNR of the ``pca`` codec on a real capture (default ``../shared/data/fox``).

``tools/bench/codec_psnr.py --codec pca`` under its original name: runs the real
stages on a temporary copy of the scene downscaled by each factor (``images_1`` =
as captured): ``extract_latents(codec="pca")`` fits the basis on the LLFF training
views, ``decode_latents`` turns every latent back into a PNG, and PSNR is taken
against the image as it was encoded (its size rounded down to a multiple of 8).
CPU only; about a minute for fox::

    python tools/bench/pca_psnr.py --out pca_psnr.json
    python tools/bench/pca_psnr.py --report pca_psnr.json --results benchmarks/RESULTS.md
"""

from __future__ import annotations

from codec_psnr import main  # a sibling: tools/bench is on sys.path when its scripts run

if __name__ == "__main__":
    main(default_codec="pca")
