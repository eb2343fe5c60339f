"""``manifest.json``: what a latents folder holds, read by every later stage.

Example (``SCENE/features_sd_turbo/manifest.json``)::

    {"format_version": 1, "codec": "sd-vae",
     "codec_config": {"name": "sd-vae", "model": "stabilityai/sd-turbo", "revision": null},
     "dtype": "bfloat16", "scaling_factor": 0.18215, "channels": 4, "downsample": 8,
     "sample": false, "seed": null, "images": "images_4",
     "count": 2, "sizes": {"0001": [480, 264], "0002": [480, 264]}}

``sizes`` maps each latent's stem to the ``[height, width]`` its image was
encoded at (a multiple of 8; the latent is ``[channels, height / 8, width / 8]``,
``channels`` being the codec's: 4 for ``sd-vae`` and ``pca``, 32 for ``taef2``).
For ``pca``, ``codec_config["basis"]`` names the basis file relative to the folder;
for ``taef2``, ``codec_config`` is ``{"name": "taef2"}`` (the packaged weights) or
names a ``weights`` folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatent_data import atomic_write_json

from .codec import LatentCodec
from .errors import LatentError
from .registry import load_codec

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class LatentManifest:
    """The codec, precision and per-image sizes of a latents folder.

    Attributes:
        codec: Codec name (``sd-vae``, ``pca``, ``taef2``, ``tiny-random``).
        codec_config: ``load_codec(**codec_config)`` rebuilds the codec (pca: basis path relative to the folder).
        dtype: Precision the encoder ran in (files are float32 regardless).
        count: Number of latents listed in ``sizes``.
        sizes: Stem -> ``[height, width]`` of the image as encoded.
        scaling_factor: Multiply latents by this for unit variance (files are unscaled).
        channels, downsample: Latent channels (the codec's; 4 in manifests that predate the field) and the
            image-to-latent size ratio.
        sample: Latents are posterior draws (``seed`` seeds them) rather than posterior means.
        images: The image folder they were encoded from (relative to the scene when inside it).
    """

    codec: str
    codec_config: dict[str, Any]
    dtype: str
    count: int
    sizes: dict[str, list[int]]
    scaling_factor: float = 1.0
    channels: int = 4
    downsample: int = 8
    sample: bool = False
    seed: int | None = None
    images: str | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def latent_shape(self, stem: str) -> tuple[int, int, int]:
        """``(channels, h, w)`` of the latent of ``stem``."""
        height, width = self.sizes[stem]
        return (self.channels, height // self.downsample, width // self.downsample)

    @property
    def model(self) -> str | None:
        return self.codec_config.get("model")

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/manifest.json`` atomically."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_json(path, dataclasses.asdict(self))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "LatentManifest":
        """Read ``folder/manifest.json`` (or the manifest file itself); one clear error when unusable."""
        folder = Path(folder)
        path = folder if folder.name == MANIFEST_NAME else folder / MANIFEST_NAME
        if not path.is_file():
            raise LatentError(f"no {MANIFEST_NAME} in {path.parent}: not a latents folder written by `splatent extract`; run it to write one")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise LatentError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); delete it and re-run `splatent extract --overwrite`") from None
        if not isinstance(data, dict):
            raise LatentError(f"{path} must hold a JSON object; delete it and re-run `splatent extract --overwrite`")
        redo = "delete it and re-run `splatent extract --overwrite`"
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise LatentError(f"{path}: format_version must be a whole number, got {version!r}; {redo}")
        if version > FORMAT_VERSION:
            raise LatentError(f"{path} has format_version {version!r}, newer than this splatent-latents reads ({FORMAT_VERSION}); upgrade it")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        lacking = sorted(required - set(data))
        if lacking:
            raise LatentError(f"{path} lacks {', '.join(map(repr, lacking))}; delete it and re-run `splatent extract --overwrite`")
        if not isinstance(data.get("extra", {}), dict):
            raise LatentError(f"{path}: 'extra' must be a JSON object, got {data['extra']!r}; {redo}")
        for key in ("codec", "dtype"):
            if key in data and not isinstance(data[key], str):
                raise LatentError(f"{path}: {key!r} must be a string, got {data[key]!r}; {redo}")
        for key in ("channels", "downsample"):  # latent_shape divides by downsample
            value = data.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LatentError(f"{path}: {key!r} must be a positive whole number, got {value!r}; {redo}")
        known = {k: v for k, v in data.items() if k in names}
        known["extra"] = {**known.get("extra", {}), **{k: v for k, v in data.items() if k not in names}}
        manifest = cls(**known)
        if not isinstance(manifest.codec_config, dict) or not isinstance(manifest.sizes, dict) or not all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) for v in s) for s in manifest.sizes.values()
        ):
            raise LatentError(f"{path}: codec_config must be an object and sizes map stems to [height, width]; delete it and re-extract")
        return manifest


def read_manifest(latents_dir: str | Path) -> LatentManifest:
    """The manifest of a latents folder (see :meth:`LatentManifest.load`)."""
    return LatentManifest.load(latents_dir)


def codec_from_manifest(latents_dir: str | Path) -> LatentCodec:
    """Rebuild the codec that wrote ``latents_dir`` (on CPU, float32); pca reads its basis from the folder."""
    latents_dir = Path(latents_dir)
    if latents_dir.name == MANIFEST_NAME:
        latents_dir = latents_dir.parent
    manifest = read_manifest(latents_dir)
    config = dict(manifest.codec_config)
    name = config.pop("name", manifest.codec)
    if name != manifest.codec:
        raise LatentError(f"{latents_dir / MANIFEST_NAME} names codec {manifest.codec!r} but its codec_config is for {name!r}")
    if name == "pca":
        if not config.get("basis"):
            raise LatentError(f"{latents_dir / MANIFEST_NAME} names no pca basis file; re-run `splatent extract --codec pca --overwrite`")
        config["basis"] = latents_dir / config["basis"]
    return load_codec(name, **config)
