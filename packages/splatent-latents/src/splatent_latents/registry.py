"""``load_codec``: a :class:`~splatent_latents.codec.LatentCodec` by name.

The codecs:

* ``sd-vae`` (default): a diffusers ``AutoencoderKL``, SD-Turbo's VAE unless
  ``model`` names another hub id or local folder.
* ``pca``: the first 4 principal components of 8x8 RGB patches; weight-free and
  exact up to truncation once fitted (see :mod:`splatent_latents.pca`).
* ``taef2``: TAEF2, a tiny learned autoencoder (32 channels) whose MIT-licensed
  weights ship in this package, so it works offline (see :mod:`splatent_latents.taef2`).
* ``tiny-random``: a tiny ``AutoencoderKL`` with a fixed seed, for tests of the
  diffusers code path.

The factory sits above the implementations, which import the base class from
:mod:`.codec`, so nothing imports in a loop. Importing it does not import
diffusers: :mod:`.vae` does that only when a VAE is built.
"""

from __future__ import annotations

from typing import Any

from .codec import LatentCodec
from .errors import LatentError
from .pca import PCACodec
from .taef2 import Taef2Codec
from .vae import load_sd_vae, tiny_random_vae

CODEC_NAMES = ("sd-vae", "pca", "taef2", "tiny-random")
# Codecs without a posterior: ``sample=True`` is refused.
DETERMINISTIC_CODECS = ("pca", "taef2")
DEFAULT_CODEC = "sd-vae"


def load_codec(name: str = DEFAULT_CODEC, **options: Any) -> LatentCodec:
    """Build a codec by name; ``options`` are those its :meth:`LatentCodec.config` records.

    * ``sd-vae``: ``model`` (hub id or local folder, default ``stabilityai/sd-turbo``),
      ``revision``, ``compile`` (``torch.compile`` the encoder).
    * ``pca``: ``basis`` (a ``pca_basis.safetensors`` file); without it the codec
      must be fitted (:meth:`PCACodec.fit`) before use.
    * ``taef2``: ``weights`` (a folder holding ``taef2_encoder.pth`` and
      ``taef2_decoder.pth``; default: the copy shipped in this package), ``compile``.
    * ``tiny-random``: ``seed``.
    """
    if name == "sd-vae":
        return load_sd_vae(**_options(name, options, ("model", "revision", "compile")))
    if name == "pca":
        basis = _options(name, options, ("basis",)).get("basis")
        return PCACodec.load(basis) if basis is not None else PCACodec()
    if name == "taef2":
        return Taef2Codec.load(**_options(name, options, ("weights", "compile")))
    if name == "tiny-random":
        return tiny_random_vae(**_options(name, options, ("seed",)))
    raise LatentError(f"unknown codec {name!r}; use one of {', '.join(CODEC_NAMES)}")


def _options(name: str, options: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "none"
        raise LatentError(f"codec {name!r} has no option {unknown[0]!r} (its options: {takes})")
    return options
