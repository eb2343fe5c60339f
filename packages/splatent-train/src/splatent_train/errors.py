"""Errors of the training stage; each is a :class:`splatent_data.SplatentError`, shown as one line."""

from __future__ import annotations

from splatent_data import SplatentError


class TrainError(SplatentError):
    """A training option, dataset or checkpoint that cannot be used."""


class LpipsUnavailableError(TrainError):
    """LPIPS backbone weights that are neither cached nor downloadable."""


class BrokenEntryError(TrainError):
    """A dataset entry that cannot be loaded, under ``--strict``."""
