"""Errors of the enhancer; each is a :class:`splatent_data.SplatentError`, shown as one line."""

from __future__ import annotations

from splatent_data import SplatentError


class CheckpointError(SplatentError):
    """A checkpoint folder or original ``.pkl`` that cannot be read or does not fit the model."""


class WeightsUnavailableError(SplatentError):
    """Base-model weights that are neither local nor downloadable (offline, no cache)."""


class EnhanceInputError(SplatentError):
    """Inputs to enhance that are missing, mismatched in size, or in an unknown format."""
