"""Train/test splits, deterministic and documented.

* ``llff`` (default): sort images by name; every ``every``-th image, starting
  with the first (index 0, 8, 16, ...), is a test view. This is the usual
  novel-view-synthesis protocol of LLFF / Mip-NeRF 360 / 3DGS.
* ``file``: an explicit split file, JSON ``{"train": [...], "test": [...]}`` or
  two text files' worth of names, matched by name or stem.
* ``benchmark``: every view is a test view (no training split).
* A split the scene format carries itself (Blender's ``transforms_test.json``)
  is used when no other is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import SceneError
from .scene import Scene

SPLIT_MODES = ("llff", "file", "benchmark")


@dataclass(frozen=True)
class Split:
    """Names (stems) of the training and test views."""

    train: tuple[str, ...]
    test: tuple[str, ...]

    def of(self, stem: str) -> str:
        """``"train"`` or ``"test"``."""
        return "test" if stem in self.test else "train"


def llff_split(stems: list[str], every: int = 8) -> Split:
    """Every ``every``-th name (sorted), from the first, is a test view."""
    if every < 2:
        raise SceneError(f"the LLFF split needs every >= 2, got {every}")
    ordered = sorted(stems)
    test = tuple(s for i, s in enumerate(ordered) if i % every == 0)
    train = tuple(s for i, s in enumerate(ordered) if i % every != 0)
    return Split(train=train, test=test)


def read_split_file(path: Path, stems: list[str]) -> Split:
    """Read ``{"train": [...], "test": [...]}``; names may carry extensions or folders."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SceneError(f"cannot read split file {path}: {exc}; it must be JSON with 'train' and 'test' lists") from None
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        raise SceneError(f"split file {path} must be a JSON object with a 'test' list (and optionally 'train')")
    known = set(stems)
    norm = lambda n: Path(str(n)).stem  # noqa: E731
    test = [norm(n) for n in data["test"]]
    unknown = [n for n in test + [norm(n) for n in data.get("train", [])] if n not in known]
    if unknown:
        raise SceneError(f"split file {path} names {len(unknown)} views the scene lacks (first: {unknown[0]})")
    train = [norm(n) for n in data["train"]] if "train" in data else [s for s in sorted(stems) if s not in set(test)]
    overlap = set(train) & set(test)
    if overlap:
        raise SceneError(f"split file {path} puts {sorted(overlap)[0]} in both train and test")
    return Split(train=tuple(sorted(train)), test=tuple(sorted(test)))


def split_scene(scene: Scene, mode: str = "llff", every: int = 8, split_file: Path | None = None) -> Split:
    """The scene's split. ``mode`` is one of :data:`SPLIT_MODES`; see the module doc."""
    stems = scene.stems
    if split_file is not None or mode == "file":
        if split_file is None:
            raise SceneError("split mode 'file' needs a split file (--split-file)")
        return read_split_file(split_file, stems)
    if mode == "benchmark":
        return Split(train=(), test=tuple(sorted(stems)))
    if mode != "llff":
        raise SceneError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
    if scene.split_hint and scene.split_hint.get("test"):
        test = {Path(n).stem for n in scene.split_hint["test"]} & set(stems)
        return Split(train=tuple(sorted(set(stems) - test)), test=tuple(sorted(test)))
    return llff_split(stems, every)
