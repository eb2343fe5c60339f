"""Errors every Splatent package raises for bad input.

The CLI turns any :class:`SplatentError` into one line on stderr and a non-zero
exit, so a message must say what is wrong, name the file, and say how to fix it.
"""

from __future__ import annotations


class SplatentError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


class SceneError(SplatentError):
    """A scene folder, pose file or image that cannot be used."""


class DatasetFormatError(SplatentError):
    """A dataset JSON that does not follow the documented format."""
