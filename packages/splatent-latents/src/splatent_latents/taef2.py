"""``taef2``: an embedded, learned latent space that works offline.

TAEF2 is madebyollin's distilled tiny autoencoder for the FLUX.2 VAE (MIT
licence; the weights ship in this package under ``weights/taef2/`` with their
LICENSE and origin). Images in [0, 1] become 32-channel, 1/8-resolution
latents; about 1.34 M parameters per side, so it runs on a CPU.

The architecture is rebuilt here as the ``nn.Sequential`` stacks the weights
were saved from, so the state-dict keys match exactly (``0.weight``,
``1.conv.0.weight``, ``11.pool.0.weight``, ...)::

    Block(n)    x = x + pool(x)              # 1/8-resolution Blocks only: the "pool" branch,
                                             #   1x1 conv n->4n, GroupNorm(4), ReLU, 1x1 conv 4n->n
                relu(conv(x) + x)            # conv = conv3x3-ReLU-conv3x3-ReLU-conv3x3

    encoder     conv(3,64) Block | 3x [conv(64,64,stride 2) Block Block Block] | conv(64,32)
    decoder     tanh(x/3)*3 conv(32,64) ReLU Block Block Block
                | Up conv Block Block Block | Up conv Block Block Block | Up conv Block | conv(64,3)

The decoder's output is not bounded (it overshoots [0, 1] slightly on edges),
so :meth:`Taef2Codec.decode` clamps it like every codec. The encoder's output
*is* the latent (unscaled); :data:`SCALING_FACTOR` brings it to unit standard
deviation on photos.

The weights are read with ``torch.load(weights_only=True)`` (no pickled code)
and loaded with ``strict=True``: a file with a missing, extra or misshapen
tensor is refused, never half-loaded.
"""

from __future__ import annotations

import pickle
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .codec import LatentCodec
from .errors import LatentError

LATENT_CHANNELS = 32
ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"
# TAEF2's latents carry no scale of their own. This is 1 / 0.8420, the standard deviation of all latent values of
# fox's 43 LLFF training views at images_4 size (264x480, CPU, float32), as tools/bench/codec_psnr.py --codec taef2
# reports it ("latent_std", benchmarks/taef2.json; every channel's mean is within 0.35 of 0). Scaled latents then
# have unit standard deviation on those photos (at 1/8 size the spread is 0.8653, i.e. 1.03 after scaling).
SCALING_FACTOR = 1.1876


def packaged_weights():
    """The folder of the weights shipped in this package (an ``importlib.resources`` Traversable)."""
    return files("splatent_latents") / "weights" / "taef2"


def _conv(n_in: int, n_out: int, **kwargs: Any) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """``tanh(x / 3) * 3``: the decoder's soft clamp of its input latents to (-3, 3)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block; with ``pool`` (the 1/8-resolution blocks) a GroupNorm branch is added to the input first."""

    def __init__(self, n_in: int, n_out: int, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if pool:
            wide = 4 * n_in
            self.pool = nn.Sequential(nn.Conv2d(n_in, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(),
                                      nn.Conv2d(wide, n_in, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def taef2_encoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """``[B, 3, H, W]`` in [0, 1] -> ``[B, latent_channels, H/8, W/8]`` (random weights until loaded)."""
    down = lambda: _conv(64, 64, stride=2, bias=False)  # noqa: E731
    return nn.Sequential(
        _conv(3, 64), Block(64, 64),
        down(), Block(64, 64), Block(64, 64), Block(64, 64),
        down(), Block(64, 64), Block(64, 64), Block(64, 64),
        down(), Block(64, 64, pool=True), Block(64, 64, pool=True), Block(64, 64, pool=True),
        _conv(64, latent_channels),
    )


def taef2_decoder(latent_channels: int = LATENT_CHANNELS) -> nn.Sequential:
    """``[B, latent_channels, h, w]`` -> ``[B, 3, 8h, 8w]``, roughly in [0, 1] (random weights until loaded)."""
    up = lambda: nn.Upsample(scale_factor=2)  # noqa: E731  (nearest)
    return nn.Sequential(
        Clamp(), _conv(latent_channels, 64), nn.ReLU(),
        Block(64, 64, pool=True), Block(64, 64, pool=True), Block(64, 64, pool=True),
        up(), _conv(64, 64, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        up(), _conv(64, 64, bias=False), Block(64, 64), Block(64, 64), Block(64, 64),
        up(), _conv(64, 64, bias=False), Block(64, 64),
        _conv(64, 3),
    )


def load_weights(module: nn.Module, path: str | Path) -> nn.Module:
    """Load a state-dict file into ``module``: tensors only (``weights_only``), every key and shape must match."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LatentError(f"taef2 weights {path} do not exist; pass a weights folder holding {ENCODER_FILE} and "
                          f"{DECODER_FILE}, or drop the weights option to use the packaged copy") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise LatentError(f"cannot read taef2 weights {path} ({reason}); it must be a state dict of tensors "
                          f"saved with torch.save (pickled code is refused)") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise LatentError(f"taef2 weights {path} hold a {type(state).__name__}, not a state dict of tensors")
    expected = module.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or extra or wrong:
        parts = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", extra), ("misshapen", wrong)) if keys]
        raise LatentError(f"taef2 weights {path} do not fit the architecture ({'; '.join(parts)}); "
                          f"use the files of madebyollin/taesd (taef2_encoder.pth, taef2_decoder.pth)")
    module.load_state_dict(state, strict=True)
    return module


class Taef2Codec(LatentCodec):
    """TAEF2 as a codec. Build with :meth:`load` (the packaged weights, or a folder holding the two files).

    Args:
        encoder, decoder: :func:`taef2_encoder` / :func:`taef2_decoder` with their weights loaded.
        weights: The folder they came from, recorded by :meth:`config`; None: the packaged copy.
    """

    name = "taef2"
    channels = LATENT_CHANNELS
    downsample = 8

    def __init__(self, encoder: nn.Module, decoder: nn.Module, weights: str | Path | None = None):
        self.encoder = encoder.eval().requires_grad_(False)
        self.decoder = decoder.eval().requires_grad_(False)
        self.weights = str(Path(weights).expanduser().resolve()) if weights is not None else None

    @classmethod
    def load(cls, weights: str | Path | None = None, compile: bool = False) -> "Taef2Codec":
        """Read ``weights/taef2_{encoder,decoder}.pth`` (default: the copy shipped in this package)."""
        with ExitStack() as stack:
            if weights is None:
                folder = packaged_weights()
                paths = [stack.enter_context(as_file(folder / f)) for f in (ENCODER_FILE, DECODER_FILE)]
            else:
                folder = Path(weights).expanduser()
                if not folder.is_dir():
                    raise LatentError(f"taef2 weights folder {folder} does not exist; pass a folder holding "
                                      f"{ENCODER_FILE} and {DECODER_FILE}, or drop the weights option to use the packaged copy")
                paths = [folder / ENCODER_FILE, folder / DECODER_FILE]
            encoder = load_weights(taef2_encoder(), paths[0])
            decoder = load_weights(taef2_decoder(), paths[1])
        codec = cls(encoder, decoder, weights)
        return codec.compile() if compile else codec

    @property
    def scaling_factor(self) -> float:
        return SCALING_FACTOR

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.encoder.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "Taef2Codec":
        self.encoder.to(device=device, dtype=dtype)
        self.decoder.to(device=device, dtype=dtype)
        return self

    def compile(self) -> "Taef2Codec":
        """``torch.compile`` encoder and decoder (compiled on first use; faster batches of one size after)."""
        self.encoder.compile()
        self.decoder.compile()
        return self

    def encode(
        self,
        images: Tensor,  # [B, 3, H, W] in [0, 1]
        sample: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> Tensor:  # [B, 32, H/8, W/8] unscaled
        self.check_images(images)
        if sample:
            raise LatentError("the taef2 codec is deterministic: it has no posterior to sample; drop --sample")
        return self.encoder(images.to(self.device, self.dtype, non_blocking=True))

    def decode(self, latents: Tensor) -> Tensor:  # [B, 32, h, w] -> [B, 3, 8h, 8w] in [0, 1]
        self.check_latents(latents)
        return self.decoder(latents.to(self.device, self.dtype, non_blocking=True)).clamp_(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **({"weights": self.weights} if self.weights is not None else {})}
