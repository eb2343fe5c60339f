"""The one error this package raises for bad input or an impossible request."""

from __future__ import annotations

from splatent_data import SplatentError


class LatentError(SplatentError):
    """A latent file, latents folder, codec or extraction request that cannot be used."""
