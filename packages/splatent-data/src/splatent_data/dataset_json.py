"""The dataset JSON of the original code, read with validation and built from renders.

Format (exactly the original README's)::

    {"train": {"<id>": {"feature": ".../nvs/0001.pt",          # the render to enhance
                        "target_feature": ".../nvs_gt/0001.pt", # its ground-truth latent
                        "ref_features": [".../train_gt/0003.pt", ...],  # best first
                        "prompt": "A photo of a scene"}},
     "test": {...}}

Relative paths are read relative to the JSON file. A ground-truth image sits
next to its ``target_feature`` (``0001.png``) or under ``--rgb_root`` as
``<rgb_root>/<scene>/<images_dir>/<stem>.<ext>``, ``<scene>`` being the folder
above the feature's folder.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import DatasetFormatError, SceneError
from .fileio import atomic_write_json
from .images import find_image
from .layout import REQUIRED_RENDER_FOLDERS, RenderLayout
from .references import select_references
from .splits import split_scene_names
from .loading import load_scene

logger = logging.getLogger("splatent")

SPLITS = ("train", "test")
DEFAULT_PROMPT = "A photo of a scene"
RENDER_DIRS = REQUIRED_RENDER_FOLDERS  # kept for importers of the old name


@dataclass(frozen=True)
class DatasetEntry:
    """One training or evaluation example: a render, its ground truth and its references."""

    id: str
    split: str
    feature: Path
    target_feature: Path
    ref_features: tuple[Path, ...]
    prompt: str = DEFAULT_PROMPT

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": str(self.feature),
            "target_feature": str(self.target_feature),
            "ref_features": [str(p) for p in self.ref_features],
            "prompt": self.prompt,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed dataset JSON."""

    path: Path
    entries: tuple[DatasetEntry, ...]

    def split(self, name: str) -> list[DatasetEntry]:
        return [e for e in self.entries if e.split == name]


def _bad(path: Path, where: str, msg: str) -> DatasetFormatError:
    return DatasetFormatError(f"{path}: {where}: {msg}")


def read_dataset_json(path: str | Path, check_files: bool = True) -> DatasetSpec:
    """Read and validate a dataset JSON; the first bad entry is reported by split, id and field.

    Args:
        path: The JSON file.
        check_files: Also require every referenced file to exist.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFormatError(f"dataset JSON {path} does not exist; build one with `splatent dataset`") from None
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{path} is not UTF-8 text, so not a dataset JSON; build one with `splatent dataset`") from None
    if not isinstance(data, dict) or not any(s in data for s in SPLITS):
        raise DatasetFormatError(f"{path} must be a JSON object with a 'train' and/or 'test' object of entries")
    unknown = [k for k in data if k not in SPLITS]
    if unknown:
        raise DatasetFormatError(f"{path}: unknown top-level key {unknown[0]!r}; only 'train' and 'test' are allowed")
    base = path.parent
    entries: list[DatasetEntry] = []
    for split in SPLITS:
        items = data.get(split, {})
        if not isinstance(items, dict):
            raise DatasetFormatError(f"{path}: '{split}' must be an object mapping ids to entries")
        for key, item in items.items():
            where = f"entry {key!r} in '{split}'"
            if not isinstance(item, dict):
                raise _bad(path, where, "must be an object with feature, target_feature, ref_features, prompt")
            fields: dict[str, Any] = {}
            for name in ("feature", "target_feature"):
                value = item.get(name)
                if not isinstance(value, str) or not value:
                    raise _bad(path, where, f"field '{name}' must be a path string, got {type(value).__name__}")
                fields[name] = base / value
            refs = item.get("ref_features")
            if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r for r in refs):
                raise _bad(path, where, "field 'ref_features' must be a non-empty list of path strings")
            prompt = item.get("prompt", DEFAULT_PROMPT)
            if not isinstance(prompt, str):
                raise _bad(path, where, f"field 'prompt' must be a string, got {type(prompt).__name__}")
            entry = DatasetEntry(key, split, fields["feature"], fields["target_feature"],
                                 tuple(base / r for r in refs), prompt)
            if check_files:
                for name, file in (("feature", entry.feature), ("target_feature", entry.target_feature),
                                   *(("ref_features", r) for r in entry.ref_features)):
                    if not file.is_file():
                        raise _bad(path, where, f"field '{name}' points to {file}, which does not exist")
            entries.append(entry)
    if not entries:
        raise DatasetFormatError(f"{path} has no entries in 'train' or 'test'")
    return DatasetSpec(path=path, entries=tuple(entries))


def write_dataset_json(path: str | Path, entries: list[DatasetEntry], manifest: dict[str, Any] | None = None) -> None:
    """Write entries in the original format (atomic); ``manifest`` (how the dataset was built: protocol,
    scene split, top_k) goes beside it as ``<name>.manifest.json``, since the original format has no room
    for it."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SPLITS}
    for e in entries:
        out[e.split][e.id] = e.to_json()
    atomic_write_json(Path(path), out)
    if manifest is not None:
        atomic_write_json(dataset_manifest_path(path), manifest)


def dataset_manifest_path(path: str | Path) -> Path:
    """``data/dataset.json`` -> ``data/dataset.manifest.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.manifest.json")


def _render_manifest(layout: RenderLayout) -> dict[str, Any]:
    """A rendered scene's ``manifest.json``; ``{}`` where it is missing or unreadable."""
    try:
        data = json.loads(layout.manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def render_image_folder(layout: RenderLayout, scene: Path) -> str | None:
    """The image folder (``images_4``) the rendered scene's fit read, as its manifest records it, where ``scene``
    (a folder or its pose file) holds that folder; else ``None``, the scene's default."""
    folder = _render_manifest(layout).get("image_folder")
    root = scene if scene.is_dir() else scene.parent
    return folder if isinstance(folder, str) and (root / folder).is_dir() else None


def render_protocol(layout: RenderLayout) -> str | None:
    """The view protocol a rendered scene's fit used (``split.mode`` of its manifest), if recorded."""
    return (_render_manifest(layout).get("split") or {}).get("mode")


def scene_protocols(renders: str | Path) -> dict[str, str | None]:
    """``{scene: protocol}`` of every rendered scene under ``renders``."""
    return {layout.name: render_protocol(layout) for layout in RenderLayout.find(renders)}


def resolve_image_path(feature: Path, rgb_root: Path | None = None, images_dir: str = "images_4") -> Path | None:
    """The ground-truth image of a latent: co-located (same stem) or under ``rgb_root``."""
    feature = Path(feature)
    if rgb_root is None:
        return find_image(feature.parent, feature.stem)
    scene = feature.parent.parent.name
    return find_image(Path(rgb_root) / scene / images_dir, feature.stem)


def _rendered_scenes(renders: Path | Sequence[Path]) -> list[RenderLayout]:
    if not isinstance(renders, (str, Path)):  # several render folders, each one scene
        layouts = [RenderLayout(Path(r)) for r in renders]
        missing = [str(r.root) for r in layouts if not r.is_rendered()]
        if missing:
            raise SceneError(f"{missing[0]} is not a rendered scene (nvs/, nvs_gt/, train_gt/); run `splatent render` first")
        return layouts
    found = RenderLayout.find(renders)
    if not found:
        raise SceneError(f"{renders} holds no rendered scene: expected nvs/, nvs_gt/ and train_gt/ folders "
                         f"(in it or in its sub-folders); run `splatent render` first")
    return found


def build_dataset(
    renders: str | Path | Sequence[str | Path],
    original: str | Path | Mapping[str, str | Path],
    top_k: int = 3,
    benchmark: bool = False,
    colmap: bool = False,
    prompt: str = DEFAULT_PROMPT,
    test_scenes: list[str] | None = None,
    angle_weight: float = 1.0,
    train_renders: bool = True,
    test_fraction: float = 0.1,
    seed: int = 42,
    exclude_scenes: list[str] | None = None,
    protocol: str | None = None,
) -> list[DatasetEntry]:
    """Pair every rendered view with its top-k nearest training views.

    ``renders`` is one rendered scene (``nvs/``, ``nvs_gt/``, ``train_gt/``, optional
    ``train/``) or a folder of them; ``original`` is the matching posed scene, or a
    folder of scenes with the same names; or a list of render folders and ``{scene name: posed scene}``.
    Splits:

    * ``nvs/`` renders (held-out views) of *test scenes* go to ``test``; of the other
      scenes to ``train``. Test scenes are ``test_scenes``, or by default the original's
      scene split (:func:`~splatent_data.splits.split_scene_names`: ``test_fraction`` 0.1 of
      the scenes, shuffled with ``seed`` 42, at least one, so a lone scene is a test scene).
      ``exclude_scenes`` (the scenes of a benchmark) are left out of the dataset altogether.
    * ``protocol``: every scene must have been fitted with this view protocol (``llff``, ``dense``,
      ``sparse``; its render manifest's ``split.mode``), else one clear error.
    * ``train/`` renders (training views, when rendered) go to ``train``, their
      references taken among the other training views.
    * ``benchmark``: every ``nvs/`` render goes to ``test`` and nothing to ``train``.

    ``train_renders=False`` leaves ``train/`` renders out: a scene's own training views are
    fitted almost exactly, so they teach an enhancer little about novel-view artefacts.
    """
    if top_k < 1:
        raise SceneError(f"--top_k must be at least 1, got {top_k}")
    renders = Path(renders) if isinstance(renders, str) else renders
    originals = {k: Path(v) for k, v in original.items()} if isinstance(original, Mapping) else None
    original = Path(original) if originals is None else Path()
    rendered = _rendered_scenes(renders)
    if exclude_scenes:
        rendered = [r for r in rendered if r.name not in set(exclude_scenes)]
        if not rendered:
            raise SceneError(f"every rendered scene in {renders} is excluded (--benchmark_path); nothing is left")
    names = [r.name for r in rendered]
    if protocol is not None:
        from .splits import PROTOCOLS

        if protocol not in PROTOCOLS:
            raise SceneError(f"unknown view protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
        for layout in rendered:
            found = render_protocol(layout)
            if found != protocol:
                raise SceneError(f"{layout.root} was fitted with the {found or 'an unrecorded'} view protocol, not "
                                 f"{protocol}; re-fit it with --protocol {protocol} or drop --protocol")
    if test_scenes is not None:
        unknown = sorted(set(test_scenes) - set(names))
        if unknown:
            raise SceneError(f"--test_scenes names {unknown[0]!r}, which is not among the rendered scenes {names}")
        tests = set(test_scenes)
    else:
        tests = set(split_scene_names(names, test_fraction, seed).test)
    entries: list[DatasetEntry] = []
    for layout in rendered:
        if originals is not None:
            if layout.name not in originals:
                raise SceneError(f"no posed scene given for the rendered scene {layout.name}")
            posed = originals[layout.name]
        else:
            posed = original if len(rendered) == 1 and not (original / layout.name).is_dir() else original / layout.name
        scene = load_scene(posed, fmt="colmap" if colmap else "auto", images=render_image_folder(layout, posed))
        cams = {c.stem: c for c in scene.cameras}
        train_stems = layout.stems("train_gt")
        for stem in train_stems + layout.stems("nvs"):
            if stem not in cams:
                raise SceneError(f"render {stem} in {layout.root} has no camera in {scene.source}; "
                                 f"--original_path must be the scene the renders came from")
        candidates = [cams[s] for s in train_stems]
        nvs_split = "test" if benchmark or layout.name in tests else "train"
        targets = [(nvs_split, "nvs", s) for s in layout.stems("nvs")]
        if train_renders and not benchmark and layout.train.is_dir():
            targets += [("train", "train", s) for s in layout.stems("train")]
        refs = select_references([cams[s] for _, _, s in targets], candidates, top_k, angle_weight)
        lonely = [stem for _, _, stem in targets if not refs[stem]]
        if lonely:  # a training view whose only candidate is itself: an entry needs one reference at least
            logger.warning("%s: %d view(s) have no other training view to take references from and are left out "
                           "(%s)", layout.name, len(lonely), ", ".join(lonely[:5]))
            targets = [t for t in targets if refs[t[2]]]
        for split, kind, stem in targets:
            gt_dir = RenderLayout.ground_truth_of(kind)
            if not layout.latent(gt_dir, stem).is_file():
                raise SceneError(f"{layout.folder(kind) / stem}.pt has no ground truth {gt_dir}/{stem}.pt; "
                                 f"re-run `splatent render`")
            entry_id = f"{layout.name}_{stem}" if kind == "nvs" else f"{layout.name}_train_{stem}"
            entries.append(DatasetEntry(
                id=entry_id, split=split,
                feature=layout.latent(kind, stem).resolve(),
                target_feature=layout.latent(gt_dir, stem).resolve(),
                ref_features=tuple(layout.latent("train_gt", r).resolve() for r in refs[stem]),
                prompt=prompt,
            ))
    return entries
