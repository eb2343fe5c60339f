"""Test data: a small, honest training set built the way the pipeline builds one, minus the Gaussians.

A procedural scene (``splatent_data.make_synthetic_scene``) is encoded by the real
``extract`` stage with the ``pca`` codec (fitted on its training views). In place of
3DGS renders, each view's "render" is its ground-truth latent degraded by a blur
(2x average-pool, bilinear 2x upsample) plus a little noise: this stands in for the
blur and floaters of a Gaussian render in these unit tests only. Renders are laid out
as ``splatent render`` writes them (``nvs/``, ``nvs_gt/``, ``train/``, ``train_gt/``,
``manifest.json`` naming the latents folder) and paired by the real ``build_dataset``:
held-out views (the LLFF split's test views) go to the test split with their nearest
training views as references and are never trained on.

Used by this package's tests, the CLI's tests and anyone who needs a dataset JSON in
seconds; it is not a substitute for real renders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from splatent_data import atomic_write_json, build_dataset, load_scene, split_scene, write_dataset_json

SCENE_NAME = "synth"


def degrade(latent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # [C, h, w] -> [C, h, w]
    """The stand-in for a 3DGS render: blurred (average-pool 2, bilinear back) with faint noise."""
    h, w = latent.shape[-2:]
    blurred = F.interpolate(F.avg_pool2d(latent[None], 2, ceil_mode=True), size=(h, w), mode="bilinear",
                            align_corners=False)[0]
    return blurred + 0.02 * latent.std() * torch.randn(latent.shape, generator=generator)


def build_degraded_dataset(root: Path, n_views: int = 24, width: int = 128, height: int = 96, top_k: int = 3,
                           colocated_images: bool = True) -> Path:
    """Write scene, latents, renders and ``dataset.json`` under ``root``; returns the JSON's path."""
    from splatent_data import make_synthetic_scene
    from splatent_latents import extract_latents, load_latent, save_latent

    scene_dir = root / "scenes" / SCENE_NAME
    make_synthetic_scene(scene_dir, n_views=n_views, width=width, height=height, seed=0)
    scene = load_scene(scene_dir)
    split = split_scene(scene)
    extract_latents(scene_dir, codec="pca", images="images", device="cpu", split=split, workers=0)
    latents = scene_dir / "features_sd_turbo"
    renders = root / "renders" / SCENE_NAME
    generator = torch.Generator().manual_seed(0)
    for kind, stems in (("nvs", split.test), ("train", split.train)):
        for stem in stems:
            gt = load_latent(latents / f"{stem}.pt")
            save_latent(renders / kind / f"{stem}.pt", degrade(gt, generator))
            save_latent(renders / f"{kind}_gt" / f"{stem}.pt", gt)
            if colocated_images:
                shutil.copy(scene.camera(stem).image_path, renders / f"{kind}_gt" / f"{stem}.png")
    atomic_write_json(renders / "manifest.json", {"stage": "render", "latents": str(latents.resolve()),
                                                  "codec": "pca", "scene": str(scene_dir.resolve())})
    entries = build_dataset(renders, scene_dir, top_k=top_k)
    path = root / "dataset.json"
    write_dataset_json(path, entries)
    return path
