from pathlib import Path

import pytest

from splatent_data import RENDER_FOLDERS, RenderLayout, RunLayout


def test_render_layout_names_the_original_folders(tmp_path):
    layout = RenderLayout(tmp_path / "scene")
    assert [layout.folder(f).name for f in RENDER_FOLDERS] == ["nvs", "nvs_gt", "train", "train_gt"]
    assert (layout.nvs, layout.nvs_gt, layout.train, layout.train_gt) == tuple(layout.folder(f) for f in RENDER_FOLDERS)
    assert layout.latent("nvs_gt", "0003") == tmp_path / "scene" / "nvs_gt" / "0003.pt"
    assert layout.manifest.name == "manifest.json" and layout.video.name == "path.mp4"
    assert RenderLayout.ground_truth_of("nvs") == "nvs_gt" and RenderLayout.ground_truth_of("train") == "train_gt"
    with pytest.raises(ValueError, match="unknown render folder 'gt'"):
        layout.folder("gt")


def test_render_layout_stems_and_rendered(tmp_path):
    layout = RenderLayout(tmp_path / "s")
    assert layout.stems("nvs") == [] and not layout.is_rendered()
    for folder in ("nvs", "nvs_gt"):
        layout.folder(folder).mkdir(parents=True)
        for stem in ("b", "a"):
            layout.latent(folder, stem).write_bytes(b"x")
    (layout.nvs / "a.png").write_bytes(b"x")
    assert layout.stems("nvs") == ["a", "b"]
    assert not layout.is_rendered()  # train_gt/ is missing
    layout.train_gt.mkdir()
    assert layout.is_rendered()


def test_find_one_scene_or_its_subfolders(tmp_path):
    for name in ("b", "a", "c"):
        if name != "c":
            for folder in ("nvs", "nvs_gt", "train_gt"):
                (tmp_path / "renders" / name / folder).mkdir(parents=True)
    (tmp_path / "renders" / "c").mkdir()  # not a render
    assert [r.name for r in RenderLayout.find(tmp_path / "renders")] == ["a", "b"]
    assert RenderLayout.find(tmp_path / "renders" / "a") == [RenderLayout(tmp_path / "renders" / "a")]
    assert RenderLayout.find(tmp_path / "nowhere") == []


def test_run_layout_is_the_pipeline_folder(tmp_path):
    run = RunLayout(str(tmp_path), "fox")
    assert isinstance(run.root, Path)
    assert run.render == RenderLayout(tmp_path / "renders" / "fox") and run.renders == tmp_path / "renders" / "fox"
    assert run.dataset == tmp_path / "data" / "dataset.json"
    assert [p.name for p in (run.undistorted, run.latents, run.model, run.enhanced, run.eval)] == \
        ["undistorted", "latents", "model", "enhanced", "eval"]
