"""Train/test splits, deterministic and documented.

* ``llff`` (default): sort images by name; every ``every``-th image, starting
  with the first (index 0, 8, 16, ...), is a test view. This is the usual
  novel-view-synthesis protocol of LLFF / Mip-NeRF 360 / 3DGS.
* ``dense`` / ``sparse``: the paper's view protocols (arXiv 2512.09923, Sec. 4): 30 / 5 input
  views chosen by furthest-point sampling over the camera centres (:func:`furthest_point_views`);
  every other view is a test view. The seed point is the camera nearest the centroid of all
  centres (ties: the smaller name), so the choice depends on the poses only, not on file order.
* ``file``: an explicit split file, JSON ``{"train": [...], "test": [...]}`` or
  two text files' worth of names, matched by name or stem.
* ``benchmark``: every view is a test view (no training split).
* A split the scene format carries itself (Blender's ``transforms_test.json``, nerfstudio's
  ``test_filenames``, else its ``val_filenames``) is used when no other is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SceneError
from .images import image_stem
from .scene import Scene

logger = logging.getLogger("splatent")

#: Input views of the paper's view protocols.
PROTOCOL_VIEWS = {"dense": 30, "sparse": 5}
#: The protocols a user picks with ``--protocol``.
PROTOCOLS = ("llff", *PROTOCOL_VIEWS)
SPLIT_MODES = (*PROTOCOLS, "file", "benchmark")


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


def furthest_point_views(names: list[str], centres: np.ndarray, count: int) -> list[str]:
    """``count`` names whose camera centres (``[N, 3]``) are spread out: furthest-point sampling.

    Starts at the centre nearest the centroid, then repeatedly adds the camera farthest from every one
    chosen so far (ties: the smaller name). Deterministic; returns names in the order they were chosen.
    """
    if count < 1:
        raise SceneError(f"furthest-point sampling needs a count of at least 1, got {count}")
    order = sorted(range(len(names)), key=lambda i: names[i])  # ties go to the smaller name
    pts = np.asarray(centres, dtype=np.float64)[order]
    ranked = [names[i] for i in order]
    if count >= len(ranked):
        return ranked
    first = int(np.argmin(np.linalg.norm(pts - pts.mean(axis=0), axis=1)))
    chosen = [first]
    dist = np.linalg.norm(pts - pts[first], axis=1)
    for _ in range(count - 1):
        dist[chosen] = -1.0  # a chosen view is never chosen again, even where centres coincide (all distances 0)
        nxt = int(np.argmax(dist))  # argmax returns the first (smallest-name) maximum
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[nxt], axis=1))
    return [ranked[i] for i in chosen]


def protocol_split(scene: Scene, protocol: str, views: int | None = None) -> Split:
    """The ``dense`` or ``sparse`` protocol: ``views`` (30 / 5) furthest-point input views, the rest test views."""
    count = views if views is not None else PROTOCOL_VIEWS[protocol]
    stems = scene.stems
    if len(stems) <= count:
        fewer = [p for p, n in PROTOCOL_VIEWS.items() if n < len(stems) and p != protocol] + ["llff"]
        raise SceneError(f"the {protocol} protocol takes {count} input views and tests on the rest, but "
                         f"{scene.root} has {len(stems)} views; use --protocol {' or '.join(fewer)}")
    centres = np.stack([scene.camera(s).center for s in stems])
    train = furthest_point_views(stems, centres, count)
    return Split(train=tuple(sorted(train)), test=tuple(sorted(set(stems) - set(train))))


def read_split_file(path: Path, stems: list[str]) -> Split:
    """Read ``{"train": [...], "test": [...]}``; names may carry extensions or folders."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SceneError(f"cannot read split file {path}: {exc}; it must be JSON with 'train' and 'test' lists") from None
    if not isinstance(data, dict) or not isinstance(data.get("test"), list):
        raise SceneError(f"split file {path} must be a JSON object with a 'test' list (and optionally 'train')")
    for key in ("train", "test"):  # a string would be read as a list of its letters
        listed = data.get(key, [])
        if not isinstance(listed, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in listed):
            raise SceneError(f"split file {path}: '{key}' must be a list of view names, got {json.dumps(listed)[:60]}")
    known = set(stems)
    # a view's name as listed when it is one (a stem with a dot, "1695.100"), else without folder and extension
    norm = lambda n: Path(str(n)).name if Path(str(n)).name in known else image_stem(n)  # noqa: E731
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
    if mode in PROTOCOL_VIEWS:
        return protocol_split(scene, mode)
    if mode != "llff":
        raise SceneError(f"unknown split mode {mode!r}; use one of {', '.join(SPLIT_MODES)}")
    own = scene_test_views(scene)
    if own:
        if every != 8:  # the default: anything else was asked for, and the scene's own test list wins
            logger.warning("%s names its own test views, so every %d-th view is not one: --split-every is ignored "
                           "(pass --split-file to choose the views)", scene.source, every)
        test = {image_stem(n) for n in own} & set(stems)
        # where the format lists its training views (Blender's transforms_train.json, nerfstudio's
        # train_filenames) only those train, as its benchmarks do: the val views are neither trained on nor tested
        listed = (scene.split_hint or {}).get("train")
        train = ({image_stem(n) for n in listed} & set(stems)) - test if listed else set(stems) - test
        return Split(train=tuple(sorted(train)), test=tuple(sorted(test)))
    return llff_split(stems, every)


def scene_test_views(scene: Scene) -> list[str] | None:
    """The test views the scene format names itself (``split_hint``'s ``test``; else its ``val``, which nerfstudio
    evaluates on when a transforms.json lists ``train_filenames`` and ``val_filenames`` only), or None."""
    hint = scene.split_hint or {}
    return hint.get("test") or hint.get("val") or None


def benchmark_scene_names(folder: str | Path) -> list[str]:
    """The scene names a benchmark folder holds (its sub-folders): ``--benchmark_path``'s exclusion list."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SceneError(f"--benchmark_path {folder} is not a folder; pass the folder holding the benchmark's scenes")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


@dataclass(frozen=True)
class SceneSplit:
    """Which scenes train the enhancer and which judge it; ``excluded`` scenes do neither here."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    excluded: tuple[str, ...] = ()


def split_scene_names(names: list[str], test_fraction: float = 0.1, seed: int = 42,
                      exclude: list[str] | tuple[str, ...] = ()) -> SceneSplit:
    """The original's scene-level split: the sorted names shuffled by ``random.Random(seed)``; the first
    ``ceil(test_fraction * n)`` (at least one) are test scenes, the rest training scenes. Scenes named in
    ``exclude`` (a benchmark's, ``--benchmark_path``) are left out first, so they are never trained on."""
    if not 0.0 <= test_fraction <= 1.0:
        raise SceneError(f"--test_fraction must be in [0, 1], got {test_fraction}")
    excluded = sorted(set(names) & set(exclude))
    pool = sorted(set(names) - set(excluded))
    random.Random(seed).shuffle(pool)
    n_test = min(len(pool), max(1 if pool and test_fraction > 0 else 0, math.ceil(test_fraction * len(pool))))
    return SceneSplit(train=tuple(sorted(pool[n_test:])), test=tuple(sorted(pool[:n_test])), excluded=tuple(excluded))
