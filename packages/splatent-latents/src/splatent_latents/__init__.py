"""splatent-latents: images <-> 1/8-resolution latents, and the ``extract`` / ``decode`` stages.

Latents on disk are unscaled float32 ``[C, H/8, W/8]`` tensors (``C`` is the
codec's channel count: 4 for ``sd-vae`` and ``pca``, 32 for ``taef2``), one
``<stem>.pt`` per image, next to a ``manifest.json`` naming the codec that
wrote them and its channels (and, for ``pca``, its ``pca_basis.safetensors``).
"""

from .codec import LatentCodec
from .devices import DTYPES, cpu_threads, default_dtype, dtype_name, parse_dtype, resolve_device, resolve_dtype
from .decode import DecodeResult, decode_latents
from .errors import LatentError
from .extract import DEFAULT_OUTPUT, ExtractResult, extract_latents
from .files import load_latent, save_latent
from .manifest import LatentManifest, codec_from_manifest, read_manifest
from .metrics import latent_psnr, psnr, ssim
from .pca import PCACodec
from .progress import ProgressCallback, ProgressReporter, progress_bar
from .registry import CODEC_NAMES, load_codec
from .taef2 import Taef2Codec
from .vae import DEFAULT_MODEL, VaeCodec, sd_vae_config, tiny_vae_config

__version__ = "0.5.0"

__all__ = [
    "CODEC_NAMES", "DEFAULT_MODEL", "DEFAULT_OUTPUT", "DTYPES", "DecodeResult", "ExtractResult", "LatentCodec", "LatentError",
    "LatentManifest", "PCACodec", "Taef2Codec", "VaeCodec", "ProgressCallback", "ProgressReporter", "codec_from_manifest", "cpu_threads", "decode_latents",
    "default_dtype", "dtype_name", "extract_latents",
    "latent_psnr", "load_codec", "load_latent", "parse_dtype", "progress_bar", "psnr", "read_manifest", "resolve_device", "resolve_dtype", "save_latent", "sd_vae_config", "ssim",
    "tiny_vae_config",
]
