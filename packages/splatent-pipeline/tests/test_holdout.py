"""The fold recipe on a small synthetic scene: every training view is held out by exactly one fold, never by
the fit that renders it, the scene's test views are never used, and every pair's references are views its
fold fit trained on."""

from __future__ import annotations

import json

import pytest
import torch

from splatent_data import load_scene, make_synthetic_scene, read_dataset_json, split_scene
from splatent_pipeline import holdout_pairs


@pytest.fixture(scope="module")
def folds(tmp_path_factory):
    from splatent_latents import extract_latents
    from splatent_splat import FitConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("holdout")
    scene_dir = root / "scene"
    make_synthetic_scene(scene_dir, n_views=16, width=64, height=48, seed=0)
    scene = load_scene(scene_dir)
    extract_latents(scene_dir, codec="pca", images="images", device="cpu", split=split_scene(scene), workers=0)
    fit = FitConfig(steps=20, backend="torch", device="cpu", init_points=500, eval_every=1000, tensorboard=False)
    lines: list[str] = []
    path = holdout_pairs(scene_dir, scene_dir / "features_sd_turbo", root / "work", folds=3, fit_config=fit, top_k=2,
                         say=lines.append)
    return scene, root / "work", path, lines


def test_each_training_view_is_held_out_once_and_never_by_its_own_fit(folds):
    scene, work, _, lines = folds
    split = split_scene(scene)
    held = []
    for i in range(3):
        fitted = json.loads((work / "models" / f"fold{i}" / "fit.json").read_text())["split"]
        assert not set(fitted["train"]) & set(fitted["test"])
        assert set(fitted["train"]) | set(fitted["test"]) == set(split.train)  # no test view of the scene
        assert fitted["test"] == list(split.train)[i::3]
        assert sorted(p.stem for p in (work / "renders" / f"fold{i}" / "nvs").glob("*.pt")) == sorted(fitted["test"])
        held += fitted["test"]
    assert sorted(held) == sorted(split.train)
    assert lines[0].startswith("[fold0] fit without") and lines[-1].startswith("[pairs] 14 pairs")


def test_pairs_take_references_from_their_fold_fits_training_views(folds):
    scene, work, path, _ = folds
    split = split_scene(scene)
    pairs = read_dataset_json(path)
    assert path == work / "pairs.json" and not pairs.split("test") and len(pairs.split("train")) == len(split.train)
    for e in pairs.entries:
        fold = e.feature.parent.parent.name
        trained = json.loads((work / "models" / fold / "fit.json").read_text())["split"]["train"]
        assert len(e.ref_features) == 2 and {p.stem for p in e.ref_features} <= set(trained)
        assert e.feature.stem not in trained and e.target_feature.stem == e.feature.stem
        assert not {e.feature.stem, *(p.stem for p in e.ref_features)} & set(split.test)
