"""A latent fit opened for looking at: render any camera's latents, enhance them with the nearest training views'
latents as references, decode them to pixels. What the enhanced fly-through (:mod:`.flythrough`) and the live
viewer (:mod:`.viewer`) share.

References are the ``k`` training views nearest a camera by ``splatent_data.select_references``' camera-aware score
(the dataset stage's choice for a test view), as their extracted latents, brought to the render's latent size. A
render whose aspect differs from a training photo's (a browser window's) gets the centre of each reference cut to
its aspect before the resize, so the references' content is not stretched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splatent_data import Camera, SplatentError, camera_radius, load_rgb, load_scene, select_references


def ground_truth_image(camera: Camera, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """``[3, height, width]`` float32 in [0, 1]: ``camera``'s photo resized (Lanczos) to a decoded latent's pixel
    size, the image every latent method is scored against (the eval stage's ground truth)."""
    from PIL import Image

    photo = Image.fromarray(load_rgb(camera.image_path)).resize((width, height), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0).permute(2, 0, 1).to(device)


def fit_latent(latent: Tensor, height: int, width: int) -> Tensor:  # [C, h, w] -> [C, height, width]
    """``latent`` at another size: the centre cut to the target's aspect, then bilinear resizing (a no-op when
    the size already matches)."""
    h, w = latent.shape[-2:]
    if (h, w) == (height, width):
        return latent
    if abs(w / h - width / height) > 1e-6:
        if w / h > width / height:  # wider than the target: cut columns
            keep = max(1, round(h * width / height))
            latent = latent[..., :, (w - keep) // 2:(w - keep) // 2 + keep]
        else:
            keep = max(1, round(w * height / width))
            latent = latent[..., (h - keep) // 2:(h - keep) // 2 + keep, :]
    return F.interpolate(latent[None].float(), size=(height, width), mode="bilinear", align_corners=False)[0]


@dataclass
class LatentScene:
    """A fitted latent model with what its views need: the codec, the training and test cameras (image
    resolution), the extracted latents (references, the views' latent sizes) and, optionally, an enhancer.

    Built by :func:`open_latent_scene` from a model folder, or directly from parts (the viewer's benchmark does).
    """

    gaussians: Any  # splatent_splat.FeatureGaussians
    codec: Any  # splatent_latents.LatentCodec, prepared on ``device``
    train: list[Camera]
    test: list[Camera]
    latents_dir: Path
    device: torch.device
    backend: str = "torch"
    enhancer: Any | None = None  # splatent_model.SplatentEnhancer, prepared on ``device``
    model_dir: Path | None = None
    rasterize: dict[str, str] = field(default_factory=dict)  # the fit's rasterizer options
    _latents: dict[tuple[str, int, int], Tensor] = field(default_factory=dict, repr=False)
    _radius: float | None = field(default=None, repr=False)

    @property
    def top_k(self) -> int:
        """References per view the enhancer was trained with (0 without an enhancer)."""
        return int(self.enhancer.config.top_k) if self.enhancer is not None else 0

    @property
    def cameras(self) -> dict[str, Camera]:
        """Every training and test camera by stem."""
        return {c.stem: c for c in self.train + self.test}

    def render(self, camera: Camera) -> Tensor:  # [C, camera.height, camera.width] float32 on ``device``
        """The model's latents seen by ``camera`` (a latent-resolution camera: one pixel per latent pixel)."""
        return self.gaussians.render_cameras([camera], backend=self.backend, **self.rasterize)[0].float()

    def references(self, camera: Camera, k: int) -> list[str]:
        """The ``k`` training views nearest ``camera``, best first (never ``camera``'s own view). The score's
        distance unit is the radius of all the fit's cameras, so it does not depend on the cameras asked about."""
        if k <= 0:
            return []
        if self._radius is None:
            self._radius = camera_radius(self.train + self.test)
        return select_references([camera], self.train, k, radius=self._radius)[camera.stem]

    def extracted_latent(self, stem: str) -> Tensor:  # [C, h, w] float32 on the CPU
        from splatent_latents import load_latent

        path = self.latents_dir / f"{stem}.pt"
        if not path.is_file():
            raise SplatentError(f"{path} is missing: the latents {self.latents_dir} do not cover view {stem}")
        return load_latent(path).float()

    def reference_latents(self, stems: list[str], height: int, width: int) -> Tensor:  # [k, C, height, width]
        """The extracted latents of ``stems`` at ``height x width`` (:func:`fit_latent`), cached on ``device``."""
        out = []
        for stem in stems:
            key = (stem, height, width)
            if key not in self._latents:
                if len(self._latents) > 256:  # a browser resized many times: keep the cache bounded
                    self._latents.clear()
                self._latents[key] = fit_latent(self.extracted_latent(stem), height, width).to(self.device)
            out.append(self._latents[key])
        return torch.stack(out) if out else torch.empty(0, self.gaussians.feature_dim, height, width,
                                                        device=self.device)

    def enhance(self, rendered: Tensor, references: list[str]) -> Tensor:  # [C, h, w] -> [C, h, w] float32
        """``rendered`` through the enhancer with the extracted latents of ``references`` (target first)."""
        from splatent_model import enhance_latents

        if self.enhancer is None:
            raise SplatentError("no enhancer was given; pass --enhancer CKPT to enhance views")
        h, w = rendered.shape[-2:]
        views = torch.cat([rendered[None].to(self.device), self.reference_latents(references, h, w)])[None]
        return enhance_latents(self.enhancer, views, prompt_embeds=self.enhancer.prompt_embeds())[0].float()

    def decode(self, latents: Tensor) -> Tensor:  # [B, C, h, w] -> [B, 3, 8h, 8w] float32 in [0, 1]
        from splatent_model import decode_images

        return decode_images(self.codec, latents).clamp(0, 1)

    def latent_camera(self, stem: str) -> Camera:
        """The camera of view ``stem`` at its extracted latent's size: where its render matches the eval stage's."""
        h, w = self.extracted_latent(stem).shape[-2:]
        return self.cameras[stem].scaled(w, h)


def open_latent_scene(
    model_dir: str | Path,
    enhancer: str | Path | None = None,
    device: str = "auto",
    backend: str = "auto",
) -> LatentScene:
    """A model folder of ``splatent fit`` (latent target) opened for rendering, with its codec and, when given, an
    enhancer checkpoint (anything ``splatent_model.load_enhancer`` reads: folder, original ``.pkl``, ``tiny``).

    Refuses, in one line each: a folder without a fit, an RGB fit, a scene or latents folder that moved, an
    enhancer trained on another codec's latents.
    """
    from splatent_latents import codec_from_manifest
    from splatent_model import RuntimeOptions, load_enhancer, prepare_codec, prepare_enhancer
    from splatent_splat import load_ply, rasterize_options, read_fit_manifest, resolve_backend

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise SplatentError(f"{model_dir} is not a folder; pass the model folder `splatent fit` wrote")
    info = read_fit_manifest(model_dir)
    if info.get("target") == "rgb":
        raise SplatentError(f"{model_dir} is an RGB fit (--target rgb): it has no latents to decode or enhance")
    try:
        latents_dir, scene_path, split = Path(info["latents"]), Path(info["scene"]), info["split"]
        train_stems, test_stems = list(split["train"]), list(split["test"])
    except (KeyError, TypeError):
        raise SplatentError(f"{model_dir / 'fit.json'} lacks the scene, latents or split of the fit; "
                            "re-run `splatent fit`") from None
    if not latents_dir.is_dir():
        raise SplatentError(f"the latents {latents_dir} recorded in {model_dir / 'fit.json'} are gone: the references "
                            "and the codec come from them")
    if not scene_path.exists():
        raise SplatentError(f"the scene {scene_path} recorded in {model_dir / 'fit.json'} is gone: the cameras come "
                            "from it")
    options = RuntimeOptions(device=device, batch_size=1)
    dev = options.resolved_device()
    model = prepare_enhancer(load_enhancer(enhancer), options) if enhancer is not None else None
    codec = prepare_codec(codec_from_manifest(latents_dir), options)
    if model is not None:
        model.check_codec(codec)
    gaussians, _ = load_ply(model_dir / info.get("model", "gaussians.ply"), device=dev)
    if gaussians.feature_kind != "latent":
        raise SplatentError(f"{model_dir} holds an RGB model: it has no latents to decode or enhance")
    scene = load_scene(scene_path, images=info.get("images"))
    missing = sorted(set(train_stems + test_stems) - set(scene.stems))
    if missing:
        raise SplatentError(f"{scene_path} lacks views the model was fitted with (first: {missing[0]})")
    return LatentScene(
        gaussians=gaussians, codec=codec, train=[scene.camera(s) for s in train_stems],
        test=[scene.camera(s) for s in test_stems], latents_dir=latents_dir, device=dev,
        backend=resolve_backend(backend, dev), enhancer=model, model_dir=model_dir, rasterize=rasterize_options(info),
    )
