"""Commands whose options are a config dataclass's fields.

A command such as ``splatent fit`` declares each option once, in its signature (flag spellings, default,
help); :func:`config_options` hands the values to the config by name, so nothing is passed through by hand.
The defaults stay literal in the signatures because importing the configs would import torch at CLI start;
``tests/test_options.py`` checks every such command against its config: each option names a field (or a
flat alias of a nested one), has the field's default, and both spellings of multi-word flags exist.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping


def config_options(command: Callable[..., Any], values: Mapping[str, Any], config: type,
                   aliases: Mapping[str, Any] = {}, renames: Mapping[str, str] = {}) -> dict[str, Any]:
    """``{field: value}`` for the parameters of ``command`` that name a field of ``config`` (or a key of
    ``aliases``), ``values`` being the command's ``locals()``; ``renames`` maps a parameter to its field
    where the names differ (a Python keyword, a flag kept from the original scripts)."""
    fields = {f.name for f in dataclasses.fields(config)} | set(aliases)
    out = {}
    for name in inspect.signature(command).parameters:
        key = renames.get(name, name)
        if key in fields:
            out[key] = values[name]
    return out
