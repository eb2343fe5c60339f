"""``sd-vae`` and ``tiny-random``: a diffusers ``AutoencoderKL`` as a :class:`LatentCodec`.

diffusers is imported only when a VAE is built, so the ``pca`` codec and the
file helpers never pay for it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .codec import LatentCodec
from .errors import LatentError

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

DEFAULT_MODEL = "stabilityai/sd-turbo"
VAE_ATTENTION = ("auto", "matmul", "sdpa")
MATMUL_SCORES_BYTES = 2**31  # above this many bytes of float32 scores, "auto" attention takes SDPA (memory-efficient)


def sd_vae_config() -> dict[str, Any]:
    """The ``AutoencoderKL`` config of SD 2.1 / SD-Turbo's VAE (83.7 M parameters).

    Building it with random weights gives the real architecture and FLOPs,
    for benchmarks on machines that cannot download the weights.
    """
    return dict(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
        act_fn="silu", sample_size=768, scaling_factor=0.18215,
    )


def tiny_vae_config() -> dict[str, Any]:
    """A tiny ``AutoencoderKL`` with the same structure (4 blocks, so still 8x down, 4 channels)."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=4,
        act_fn="silu", sample_size=64, scaling_factor=0.18215,
    )


class VaeAttnProcessor:
    """The VAE's self-attention: diffusers' matmul-and-softmax processor where its score matrix is small, SDPA where not.

    Why: the VAE's mid-block attention has a single head of 512 channels. Flash and cuDNN attention do not take
    heads that wide, so ``scaled_dot_product_attention`` falls back to its memory-efficient kernel, whose backward
    pass took 6.2 ms of the 111 ms of kernels in a compiled enhancer training step on an H100
    (``benchmarks/RESULTS.md``, profiles). Two batched matmuls (diffusers' ``AttnProcessor``, softmax in float32) run
    on cuBLAS at full speed but hold the whole ``[B, N, N]`` score matrix, so past ``max_scores_bytes`` of it (more
    than two 1024² images a batch) "auto" keeps SDPA.

    Args:
        mode: ``"auto"`` (as above), ``"matmul"`` or ``"sdpa"`` (diffusers' ``AttnProcessor2_0``, the default before).
        max_scores_bytes: The float32 score matrix ``"auto"`` allows for the matmul path.
    """

    def __init__(self, mode: str = "auto", max_scores_bytes: int = MATMUL_SCORES_BYTES) -> None:
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        if mode not in VAE_ATTENTION:
            raise LatentError(f"VAE attention {mode!r} is not one of {', '.join(VAE_ATTENTION)}")
        self.mode, self.max_scores_bytes = mode, max_scores_bytes
        self.matmul, self.sdpa = AttnProcessor(), AttnProcessor2_0()

    def uses_matmul(self, batch: int, heads: int, tokens: int) -> bool:
        if self.mode != "auto":
            return self.mode == "matmul"
        return batch * heads * tokens * tokens * 4 <= self.max_scores_bytes

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, *args, **kwargs) -> Tensor:
        tokens = hidden_states.shape[-1] * hidden_states.shape[-2] if hidden_states.ndim == 4 else hidden_states.shape[1]
        if encoder_hidden_states is None and self.uses_matmul(hidden_states.shape[0], attn.heads, tokens):
            return self.matmul(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        return self.sdpa(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


class VaeCodec(LatentCodec):
    """A diffusers ``AutoencoderKL`` mapping ``[0, 1]`` images to its unscaled latents.

    Args:
        vae: The autoencoder; put in eval mode, weights frozen.
        name: ``"sd-vae"`` or ``"tiny-random"``, recorded in manifests.
        channels_last: On CUDA, keep weights and inputs NHWC. Off by default: on an H100 with torch 2.11
            the batched bf16 encoder ran 166 img/s NCHW vs 117 img/s NHWC at 512x512 (benchmarks/RESULTS.md).
        attention: The mid-block attention's kernel (:class:`VaeAttnProcessor`): ``auto``, ``matmul`` or ``sdpa``.
        options: What :func:`load_codec` needs to rebuild it (``model``, ``revision``, ``seed``).
    """

    def __init__(self, vae: "AutoencoderKL", name: str = "sd-vae", *, channels_last: bool = False,
                 attention: str = "auto", **options: Any):
        self.vae = vae.eval().requires_grad_(False)
        self.vae.set_attn_processor(VaeAttnProcessor(attention))
        self.name = name
        self.channels_last = channels_last
        self.options = options
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        self.channels = int(vae.config.latent_channels)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def device(self) -> torch.device:
        return self.vae.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "VaeCodec":
        # nn.Module.to: diffusers' override warns about float32-only modules on every cast, and this VAE has none.
        torch.nn.Module.to(self.vae, device=device, dtype=dtype)
        if self.channels_last and self.device.type == "cuda":
            torch.nn.Module.to(self.vae, memory_format=torch.channels_last)
        return self

    def compile(self) -> "VaeCodec":
        """``torch.compile`` the encoder: minutes of warm-up, then faster batches of one size."""
        self.vae.encoder.compile()
        return self

    def _input(self, x: Tensor) -> Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last and self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def encode(
        self,
        images: Tensor,  # [B, 3, H, W] in [0, 1]
        sample: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> Tensor:  # [B, channels, H/8, W/8]
        self.check_images(images)
        posterior = self.vae.encode(self._input(images) * 2.0 - 1.0).latent_dist
        return posterior.sample(generator=generator) if sample else posterior.mean

    def decode(self, latents: Tensor) -> Tensor:  # [B, channels, h, w] -> [B, 3, 8h, 8w]
        self.check_latents(latents)
        images = self.vae.decode(self._input(latents)).sample
        return ((images + 1.0) / 2.0).clamp_(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


def load_sd_vae(model: str | Path = DEFAULT_MODEL, revision: str | None = None, compile: bool = False) -> VaeCodec:
    """``AutoencoderKL.from_pretrained(model, subfolder="vae")`` as a codec.

    ``model`` is a hub id or a local folder: a diffusers pipeline folder (with
    ``vae/``) or a VAE folder (``config.json`` + weights). Where the weights
    cannot be had, one line says so and names the alternatives.
    """
    from diffusers import AutoencoderKL

    model_id, subfolder = resolve_model(model)
    try:
        with warnings.catch_warnings():  # diffusers passes huggingface_hub an argument newer versions deprecate
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            vae = AutoencoderKL.from_pretrained(model_id, subfolder=subfolder, revision=revision)
    except (OSError, ValueError) as exc:  # hub errors are OSError subclasses; bad ids raise ValueError
        raise LatentError(_load_failure(model_id, revision, exc)) from None
    codec = VaeCodec(vae, "sd-vae", model=model_id, revision=revision)
    return codec.compile() if compile else codec


def resolve_model(model: str | Path) -> tuple[str, str | None]:
    """``(id or absolute folder, subfolder)`` for ``from_pretrained``; a missing local folder is an error."""
    model_id = str(model)
    local = Path(model_id).expanduser()
    if local.is_dir():
        if (local / "vae" / "config.json").is_file():
            return str(local.resolve()), "vae"
        if (local / "config.json").is_file():
            return str(local.resolve()), None
        raise LatentError(f"model folder {local} holds neither vae/config.json nor config.json; pass a diffusers model folder or its vae/ folder")
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:
        raise LatentError(f"model folder {model_id} does not exist; pass a hub id (e.g. {DEFAULT_MODEL}) or an existing folder")
    return model_id, "vae"


def _load_failure(model: str, revision: str | None, exc: BaseException) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    first = " ".join(str(exc).split("\n")[0].split())
    reason = "offline (HF_HUB_OFFLINE is set) and not in the Hugging Face cache" if offline else (first[:200] or type(exc).__name__)
    at = f" at revision {revision}" if revision else ""
    return (
        f"cannot load the VAE of {model!r}{at}: {reason}; pass a local model folder with --model PATH, "
        f"download it once online so HF_HUB_OFFLINE=1 finds it in the cache, or use --codec taef2 (weights shipped "
        f"with splatent) or --codec pca (no weights needed)"
    )


def tiny_random_vae(seed: int = 0) -> VaeCodec:
    """A tiny ``AutoencoderKL`` with weights drawn from ``seed``: exercises the diffusers path, not quality."""
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(**tiny_vae_config())
    return VaeCodec(vae, "tiny-random", seed=seed)
