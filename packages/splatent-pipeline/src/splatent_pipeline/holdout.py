"""Training pairs for the enhancer from fold fits: renders of training views that the fit did not see.

A fit reproduces its own training views almost exactly, so renders of them teach an
enhancer the identity. :class:`Holdout` splits a scene's training views into ``folds``
folds; fold ``i`` fits the Gaussians on every training view but those at positions
``i, i + folds, ...`` and renders those held-out views. The renders carry the blur and
view-dependent errors of real novel views while their ground-truth latents exist, and
their references are chosen among the fold fit's own training views. The scene's test
views are never used. Layout of ``work_dir``::

    scenes/fold<i>/    the fold's cameras (the scene's image files): transforms_train.json, transforms_test.json
    models/fold<i>/    the fold fit
    renders/fold<i>/   its renders of the held-out views (nvs/, nvs_gt/, manifest.json)

:func:`holdout_pairs` runs it all; ``splatent demo`` runs the same steps one by one, each a
resumable stage of ``demo.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from splatent_data import Camera, PointCloud, Scene, load_scene, split_scene

# ``points(fold, cameras)``: the sparse points a fold fit starts from, as structure from motion would give
# them for those cameras; ``None``: the scene's own points.
FoldPoints = Callable[[int, list[Camera]], PointCloud | None]


@dataclass
class Holdout:
    """The fold recipe on one scene (see the module doc).

    Attributes:
        scene: The scene (its split's training views are folded; its test views are left alone).
        latents: The scene's latents folder (``<stem>.pt`` for every training view).
        work_dir: Where fold scenes, fits and renders go.
        folds: Number of fold fits; fold ``i`` holds out the training views at positions ``i, i + folds, ...``.
        fit_config: ``splatent_splat.FitConfig`` of each fold fit (its ``latents`` is set to ``latents``;
            its ``backend`` and ``device`` also render).
        top_k: Reference views per pair.
        points: Each fold fit's initial points (:data:`FoldPoints`); ``None``: the scene's sparse points.
    """

    scene: Scene
    latents: Path
    work_dir: Path
    folds: int
    fit_config: Any
    top_k: int = 3
    points: FoldPoints | None = None

    def __post_init__(self) -> None:
        self.latents, self.work_dir = Path(self.latents), Path(self.work_dir)
        # folds are over the input views of the fit's view protocol (llff, dense, sparse)
        self.train_views = list(split_scene(self.scene, mode=getattr(self.fit_config, "split_mode", "llff")).train)

    def held_out(self, fold: int) -> list[str]:
        """The training views fold ``fold`` leaves out of its fit (and renders)."""
        return self.train_views[fold::self.folds]

    def model(self, fold: int) -> Path:
        return self.work_dir / "models" / f"fold{fold}"

    def renders(self, fold: int) -> Path:
        return self.work_dir / "renders" / f"fold{fold}"

    def fit(self, fold: int) -> dict[str, Any]:
        """Write fold ``fold``'s scene and fit it; what the fit reported."""
        from splatent_data import write_transforms
        from splatent_splat import fit_scene

        held = self.held_out(fold)
        kept = [s for s in self.train_views if s not in held]
        root = self.work_dir / "scenes" / f"fold{fold}"
        shutil.rmtree(root, ignore_errors=True)
        cams = [self.scene.camera(s) for s in kept]
        points = self.points(fold, cams) if self.points is not None else self.scene.points
        write_transforms(cams, root / "transforms_train.json", points=points)
        write_transforms([self.scene.camera(s) for s in held], root / "transforms_test.json")
        # a fold scene carries its own train/test files: its fit must use them, not re-apply the protocol; they name
        # the image files the scene was read with (its --images folder), so no image folder is looked up again
        fcfg = dataclasses.replace(self.fit_config, latents=str(self.latents), split_mode="llff", images=None)
        r = fit_scene(root, self.model(fold), fcfg, overwrite=True)
        return {"held_out": held, "gaussians": r.num_gaussians, "psnr": r.test.get("psnr")}

    def render(self, fold: int) -> dict[str, Any]:
        """Render fold ``fold``'s fit at its held-out views."""
        from splatent_splat import render_model

        r = render_model(self.model(fold), self.renders(fold), backend=self.fit_config.backend,
                         device=self.fit_config.device)
        return {"counts": r.counts}

    def pairs(self, output: Path) -> dict[str, Any]:
        """Pair every fold's renders with their ground truth and top-k references among that fold fit's
        training views; write them as the train split of the dataset JSON ``output``."""
        from splatent_data import build_dataset, write_dataset_json

        renders = [self.renders(i) for i in range(self.folds)]
        stale = sorted(p.name for p in (self.work_dir / "renders").iterdir() if p not in renders)
        for name in stale:  # folds of an earlier, larger ``folds``
            shutil.rmtree(self.work_dir / "renders" / name)
        entries = build_dataset(self.work_dir / "renders", self.work_dir / "scenes", top_k=self.top_k, test_scenes=[],
                                train_renders=False)
        write_dataset_json(output, entries)
        return {"entries": len(entries)}


def holdout_pairs(
    scene: Scene | str | Path,
    latents_dir: str | Path,
    work_dir: str | Path,
    folds: int,
    fit_config: Any,
    top_k: int = 3,
    output: str | Path | None = None,
    points: FoldPoints | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Fit ``folds`` fold fits of ``scene``, render their held-out training views and write the enhancer's
    training pairs; returns the dataset JSON (default ``work_dir/pairs.json``). See :class:`Holdout`."""
    holdout = Holdout(scene if isinstance(scene, Scene) else load_scene(scene), Path(latents_dir), Path(work_dir),
                      folds, fit_config, top_k=top_k, points=points)
    for i in range(folds):
        say(f"[fold{i}] fit without {len(holdout.held_out(i))} training views")
        holdout.fit(i)
        holdout.render(i)
    output = Path(output) if output is not None else Path(work_dir) / "pairs.json"
    say(f"[pairs] {holdout.pairs(output)['entries']} pairs in {output}")
    return output
