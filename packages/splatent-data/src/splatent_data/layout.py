"""The folders a run writes, named once.

Two layouts, both plain frozen dataclasses over paths (no I/O until asked):

* :class:`RenderLayout` — one rendered scene, what ``splatent render`` writes and
  ``splatent dataset``, ``enhance`` and ``eval`` read::

      <root>/nvs/<stem>.pt        rendered test views           [C, h, w] float32, unscaled
      <root>/nvs_gt/<stem>.pt     their extracted latents       (the ground truth)
      <root>/train/<stem>.pt      rendered training views
      <root>/train_gt/<stem>.pt   their extracted latents       (the references)
      <root>/manifest.json        scene, model, codec, split, counts
      <root>/path.mp4             camera-path video (optional)

* :class:`RunLayout` — one ``splatent pipeline`` run folder::

      <root>/undistorted/   <root>/latents/   <root>/model/
      <root>/renders/<scene>/  (a RenderLayout)
      <root>/data/dataset.json   <root>/enhanced/   <root>/eval/

The folder names are the original code's (its README documents ``nvs/``, ``nvs_gt/``,
``train_gt/``), so they are a file-format contract, not a choice to change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RenderKind = Literal["nvs", "train"]

#: The folders a render writes, renders first then their ground truth.
RENDER_FOLDERS = ("nvs", "nvs_gt", "train", "train_gt")
#: The folders the dataset stage needs (``train/`` is optional).
REQUIRED_RENDER_FOLDERS = ("nvs", "nvs_gt", "train_gt")


@dataclass(frozen=True)
class RenderLayout:
    """One rendered scene's folders (see the module doc)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def name(self) -> str:
        """The scene's name: the folder's name (dataset entry ids start with it)."""
        return self.root.name

    @property
    def nvs(self) -> Path:
        return self.root / "nvs"

    @property
    def nvs_gt(self) -> Path:
        return self.root / "nvs_gt"

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def train_gt(self) -> Path:
        return self.root / "train_gt"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def video(self) -> Path:
        return self.root / "path.mp4"

    def folder(self, name: str) -> Path:
        """``nvs``, ``nvs_gt``, ``train`` or ``train_gt``."""
        if name not in RENDER_FOLDERS:
            raise ValueError(f"unknown render folder {name!r}; one of {RENDER_FOLDERS}")
        return self.root / name

    @staticmethod
    def ground_truth_of(kind: RenderKind) -> str:
        """The folder holding the ground truth of a render folder: ``nvs`` → ``nvs_gt``."""
        return f"{kind}_gt"

    def latent(self, folder: str, stem: str) -> Path:
        """``<root>/<folder>/<stem>.pt``."""
        return self.folder(folder) / f"{stem}.pt"

    def stems(self, folder: str) -> list[str]:
        """Sorted stems of the latents in one folder (empty when it does not exist)."""
        return sorted(p.stem for p in self.folder(folder).glob("*.pt"))

    def is_rendered(self) -> bool:
        """Whether the folders the dataset stage needs are all there."""
        return all((self.root / d).is_dir() for d in REQUIRED_RENDER_FOLDERS)

    @classmethod
    def find(cls, folder: str | Path) -> list["RenderLayout"]:
        """``folder`` itself when it is a rendered scene, else its rendered sub-folders (sorted by name)."""
        folder = Path(folder)
        if cls(folder).is_rendered():
            return [cls(folder)]
        if not folder.is_dir():
            return []
        return [cls(p) for p in sorted(folder.iterdir()) if p.is_dir() and cls(p).is_rendered()]


@dataclass(frozen=True)
class RunLayout:
    """Every folder and file one pipeline run writes under ``root`` (see the module doc)."""

    root: Path
    scene_name: str  # the input scene's folder name: its renders go to renders/<scene_name>

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def undistorted(self) -> Path:
        return self.root / "undistorted"

    @property
    def latents(self) -> Path:
        return self.root / "latents"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def renders_root(self) -> Path:
        return self.root / "renders"

    @property
    def render(self) -> RenderLayout:
        return RenderLayout(self.renders_root / self.scene_name)

    @property
    def renders(self) -> Path:
        """The scene's render folder (``render.root``)."""
        return self.render.root

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dataset(self) -> Path:
        return self.data / "dataset.json"

    @property
    def enhanced(self) -> Path:
        return self.root / "enhanced"

    @property
    def eval(self) -> Path:
        return self.root / "eval"
