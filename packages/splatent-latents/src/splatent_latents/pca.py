"""``pca``: an embedded, weight-free latent space that decodes to recognisable images.

Each 8x8 RGB patch (192 values, ordered as ``pixel_unshuffle`` orders them:
channel, row, column) is projected on the first 4 principal components of the
patches of the images it was fitted on::

    latent[k, y, x] = components[k] . (patch[y, x] - mean)        # [4, H/8, W/8]
    patch[y, x]     = components^T latent[:, y, x] + mean           # exact up to truncation

The components are orthonormal, so decoding is the exact inverse on their
span and a latent-space L2 error equals the image-space L2 error of the
patches. The first component is close to the patch's mean brightness, the
next ones to horizontal and vertical gradients and colour.

``scaling_factor`` is ``1 / sqrt(mean of the 4 eigenvalues)``: the pooled
standard deviation of the latents over the fitting images, so scaled latents
have unit standard deviation there (channel 0 carries most of it).

The basis is stored as ``pca_basis.safetensors`` (``mean [192]``,
``components [4, 192]``, float32) next to the latents it encoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from .codec import LatentCodec
from .errors import LatentError

PATCH = 8
BASIS_FILENAME = "pca_basis.safetensors"
BASIS_FORMAT = "splatent-pca-basis"


class PCACodec(LatentCodec):
    """Patch PCA as a codec. Build with :meth:`fit` or :meth:`load`.

    Args:
        mean: Mean patch, ``[192]``.
        components: Orthonormal principal directions, ``[4, 192]``, strongest first.
        scaling_factor: See the module doc.
        fit_info: How the basis was fitted (``images``, ``split``), kept in the basis file.
    """

    name = "pca"
    channels = 4

    def __init__(
        self,
        mean: Tensor | None = None,  # [192]
        components: Tensor | None = None,  # [4, 192]
        scaling_factor: float = 1.0,
        fit_info: dict[str, str] | None = None,
    ):
        dim = 3 * PATCH * PATCH
        if (mean is None) != (components is None):
            raise LatentError("a pca basis needs both mean and components")
        if mean is not None and (tuple(mean.shape) != (dim,) or tuple(components.shape) != (self.channels, dim)):
            raise LatentError(f"a pca basis has mean [{dim}] and components [{self.channels}, {dim}], "
                              f"got {list(mean.shape)} and {list(components.shape)}")
        self.mean = mean.float() if mean is not None else None
        self.components = components.float() if components is not None else None
        self._scaling_factor = float(scaling_factor)
        self.fit_info = dict(fit_info or {})
        self.basis_path: Path | None = None
        self._device = torch.device("cpu") if mean is None else mean.device
        self._dtype = torch.float32

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def scaling_factor(self) -> float:
        return self._scaling_factor

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "PCACodec":
        self._device = torch.device(device) if device is not None else self._device
        self._dtype = dtype or self._dtype
        if self.fitted:
            self.mean = self.mean.to(self._device, self._dtype)
            self.components = self.components.to(self._device, self._dtype)
        return self

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise LatentError("the pca codec has no basis yet: fit it on images (PCACodec.fit) or load a pca_basis.safetensors")

    def encode(
        self,
        images: Tensor,  # [B, 3, H, W] in [0, 1]
        sample: bool = False,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> Tensor:  # [B, 4, H/8, W/8]
        self._require_fitted()
        self.check_images(images)
        if sample:
            raise LatentError("the pca codec is deterministic: it has no posterior to sample; drop --sample")
        patches = F.pixel_unshuffle(images.to(self._device, self._dtype), PATCH)  # [B, 192, h, w]
        return torch.einsum("kc,bchw->bkhw", self.components, patches - self.mean[:, None, None])

    def decode(self, latents: Tensor) -> Tensor:  # [B, 4, h, w] -> [B, 3, 8h, 8w]
        self._require_fitted()
        self.check_latents(latents)
        patches = torch.einsum("kc,bkhw->bchw", self.components, latents.to(self._device, self._dtype))
        return F.pixel_shuffle(patches + self.mean[:, None, None], PATCH).clamp_(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "basis": str(self.basis_path) if self.basis_path is not None else None}

    @classmethod
    def fit(cls, images: Iterable[Tensor], fit_info: dict[str, str] | None = None) -> "PCACodec":
        """Fit on every 8x8 patch of ``images`` (each ``[3, H, W]`` or ``[B, 3, H, W]`` in [0, 1]).

        Images are streamed: only a 192x192 second-moment matrix is kept, in float64.
        """
        dim = 3 * PATCH * PATCH
        total = torch.zeros(dim, dtype=torch.float64)
        outer = torch.zeros(dim, dim, dtype=torch.float64)
        count = n_images = 0
        checker = cls()
        for image in images:
            batch = image[None] if image.ndim == 3 else image
            checker.check_images(batch)
            n_images += batch.shape[0]
            # Centre on 0.5 before the float32 product so the float64 sums do not cancel.
            patches = F.pixel_unshuffle(batch.float().cpu() - 0.5, PATCH).permute(1, 0, 2, 3).reshape(dim, -1)
            total += patches.sum(1).double()
            outer += (patches @ patches.T).double()
            count += patches.shape[1]
        if count <= checker.channels:
            raise LatentError(f"fitting a pca basis needs more than {checker.channels} patches of 8x8 pixels, the images have {count}")
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        eigvals, components = eigvals.flip(0)[:4], eigvecs.flip(1)[:, :4].T
        # Eigenvectors have no sign: make each one's sum positive so a refit gives the same basis.
        components = components * torch.where(components.sum(1, keepdim=True) < 0, -1.0, 1.0)
        spread = float(eigvals.clamp(min=0).mean())
        scaling = 1.0 / spread**0.5 if spread > 1e-12 else 1.0
        info = {"images": str(n_images), "patches": str(count), **(fit_info or {})}
        return cls(mean.float() + 0.5, components.float(), scaling, info)

    def save(self, path: str | Path) -> Path:
        """Write the basis to a safetensors file (atomically) and remember where it lives."""
        from safetensors.torch import save

        from splatent_data import atomic_write_bytes

        self._require_fitted()
        path = Path(path)
        metadata = {"format": BASIS_FORMAT, "patch": str(PATCH), "scaling_factor": repr(self._scaling_factor), **self.fit_info}
        tensors = {"mean": self.mean.float().cpu().contiguous(), "components": self.components.float().cpu().contiguous()}
        atomic_write_bytes(path, save(tensors, metadata=metadata))
        self.basis_path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PCACodec":
        """Read a basis written by :meth:`save`."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise LatentError(f"pca basis {path} does not exist; re-run `splatent extract --codec pca` to fit one")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as exc:
            raise LatentError(f"cannot read pca basis {path}: {exc}; re-run `splatent extract --codec pca --overwrite`") from None
        if metadata.get("format") != BASIS_FORMAT or set(tensors) != {"mean", "components"}:
            raise LatentError(f"{path} is not a splatent pca basis (expected tensors 'mean' and 'components')")
        fit_info = {k: v for k, v in metadata.items() if k not in ("format", "patch", "scaling_factor")}
        codec = cls(tensors["mean"], tensors["components"], float(metadata.get("scaling_factor", 1.0)), fit_info)
        codec.basis_path = path
        return codec
