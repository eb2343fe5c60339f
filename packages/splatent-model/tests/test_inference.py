from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from splatent_data import DatasetEntry, RenderLayout, load_rgb, save_rgb, write_dataset_json
from splatent_latents import load_latent, save_latent
from splatent_model import (
    EnhanceInputError, RuntimeOptions, SplatentEnhancer, codec_for, collect_inputs, enhance_dataset, enhance_files,
    enhance_latents, match_references,
)

CPU = RuntimeOptions(device="cpu", batch_size=3)


def _scene(root: Path, n_test: int = 4, n_train: int = 5, gt_images: bool = True) -> Path:
    """nvs/, nvs_gt/ (+ PNGs), train_gt/ of 8x8 latents and a dataset JSON with top_k=3."""
    g = torch.Generator().manual_seed(0)
    layout = RenderLayout(root)
    for sub in ("nvs", "nvs_gt", "train_gt"):
        layout.folder(sub).mkdir(parents=True)
    for i in range(n_train):
        save_latent(layout.latent("train_gt", f"t{i:02d}"), torch.randn(4, 8, 8, generator=g))
    entries = []
    for i in range(n_test):
        gt = torch.randn(4, 8, 8, generator=g)
        save_latent(layout.latent("nvs_gt", f"{i:04d}"), gt)
        save_latent(layout.latent("nvs", f"{i:04d}"), gt + 0.3 * torch.randn(4, 8, 8, generator=g))
        if gt_images:
            save_rgb(layout.nvs_gt / f"{i:04d}.png", np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        refs = tuple(layout.latent("train_gt", f"t{(i + j) % n_train:02d}") for j in range(4))
        entries.append(DatasetEntry(f"scene_{i:04d}", "test", layout.latent("nvs", f"{i:04d}"),
                                    layout.latent("nvs_gt", f"{i:04d}"), refs, "A photo of a scene"))
    entries.append(DatasetEntry("scene_train", "train", layout.latent("nvs", "0000"), layout.latent("nvs_gt", "0000"),
                                entries[0].ref_features, "A photo of a scene"))
    write_dataset_json(root / "data.json", entries)
    return root / "data.json"


def test_dataset_mode_writes_latents_images_and_metrics(tmp_path):
    data = _scene(tmp_path / "scene")
    model = SplatentEnhancer.tiny()
    result = enhance_dataset(data, tmp_path / "out", model, codec_for(model), options=CPU, model_source="tiny")
    out = tmp_path / "out" / "enhanced"
    assert result.enhanced == 4 and result.skipped == 0 and result.output_dir == out
    for i in range(4):
        latent = load_latent(out / f"{i:04d}.pt")
        assert latent.shape == (4, 8, 8)
        assert load_rgb(out / f"{i:04d}.png").shape == (64, 64, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["views"]) == 4
    view = metrics["views"][0]
    assert view["gt_source"] == "image" and view["id"] == "scene_0000"
    for key in ("latent_psnr_in", "latent_psnr_out", "psnr_in", "psnr_out", "ssim_in", "ssim_out"):
        assert isinstance(view[key], float)
        assert metrics["mean"][key] == pytest.approx(np.mean([v[key] for v in metrics["views"]]))
    assert metrics["settings"]["top_k"] == 3 and metrics["settings"]["timestep"] == 300
    assert json.loads((out / "manifest.json").read_text())["complete"] is True

    # the saved latent is what the model gives for that entry (references in dataset order)
    views = torch.stack([load_latent(p) for p in (tmp_path / "scene" / "nvs" / "0001.pt",
                         *[tmp_path / "scene" / "train_gt" / f"t{j:02d}.pt" for j in (1, 2, 3)])])
    expected = enhance_latents(model, views[None])[0]
    assert torch.allclose(load_latent(out / "0001.pt"), expected, atol=1e-5)


def test_dataset_mode_resumes_and_redoes_on_new_settings(tmp_path):
    data = _scene(tmp_path / "scene")
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)
    out = tmp_path / "out" / "enhanced"
    (out / "0002.png").unlink()
    again = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)
    assert again.enhanced == 1 and again.skipped == 3
    assert len(json.loads((out / "metrics.json").read_text())["views"]) == 4
    other = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, timestep=199)
    assert other.enhanced == 4


def test_without_ground_truth_images_the_decoded_target_is_the_reference(tmp_path):
    data = _scene(tmp_path / "scene", n_test=2, gt_images=False)
    model = SplatentEnhancer.tiny()
    enhance_dataset(data, tmp_path / "out", model, codec_for(model), options=CPU, save_images=False)
    views = json.loads((tmp_path / "out" / "enhanced" / "metrics.json").read_text())["views"]
    assert {v["gt_source"] for v in views} == {"decoded_target"}
    assert not list((tmp_path / "out" / "enhanced").glob("*.png"))


def test_dataset_errors_are_clear(tmp_path):
    data = _scene(tmp_path / "scene", n_test=1)
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    with pytest.raises(EnhanceInputError, match="min_k=2"):
        enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, min_k=2)
    with pytest.raises(EnhanceInputError, match="no 'val' entries"):
        enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, split="val")
    (tmp_path / "scene" / "nvs" / "0000.pt").unlink()
    with pytest.raises(EnhanceInputError, match="does not exist"):
        enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)


def _images(folder: Path, names: list[str], size=(70, 52)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    paths = []
    for name in names:
        paths.append(folder / f"{name}.png")
        save_rgb(paths[-1], rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    return paths


def test_reference_matching_rules(tmp_path):
    inputs = _images(tmp_path / "in", ["a", "b"])
    by_name = _images(tmp_path / "by_name", ["b", "a", "c"])
    single = _images(tmp_path / "single", ["x"])
    ordered = _images(tmp_path / "ordered", ["p", "q"])
    refs = match_references(inputs, [tmp_path / "by_name", single[0], tmp_path / "ordered"])
    assert refs[0] == (by_name[1], single[0], ordered[0])  # by name (a), the single file, by order
    assert refs[1] == (by_name[0], single[0], ordered[1])
    assert match_references(inputs, [tmp_path / "single"]) == [(single[0],), (single[0],)]
    _images(tmp_path / "partial", ["a", "z", "y"])
    with pytest.raises(EnhanceInputError, match="no file named b"):
        match_references(inputs, [tmp_path / "partial"])
    with pytest.raises(EnhanceInputError, match="does not exist"):
        collect_inputs(tmp_path / "nope")


def test_custom_mode_images_in_pngs_latents_and_video_out(tmp_path):
    inputs = _images(tmp_path / "in", ["f000", "f001", "f002"])
    _images(tmp_path / "refs", ["f000", "f001", "f002"])
    model = SplatentEnhancer.tiny(top_k=1)
    result = enhance_files(tmp_path / "in", [tmp_path / "refs"], tmp_path / "out", model, codec_for(model),
                           prompt="a fox", options=CPU, save_latents=True, video=True, fps=5)
    assert result.enhanced == 3
    for p in inputs:
        assert load_rgb(tmp_path / "out" / f"{p.stem}.png").shape == (52, 70, 3)  # back at the input's size
        assert load_latent(tmp_path / "out" / f"{p.stem}.pt").shape == (4, 6, 8)  # 70x52 floored to 64x48
    frames = list(_frames(result.video))
    assert len(frames) == 3 and frames[0].shape[:2] == (52, 70)


def _frames(path: Path):
    import imageio.v2 as imageio

    reader = imageio.get_reader(path)
    try:
        yield from reader
    finally:
        reader.close()


def test_custom_mode_latent_inputs_and_shared_reference(tmp_path):
    (tmp_path / "in").mkdir()
    g = torch.Generator().manual_seed(2)
    for name in ("v1", "v2"):
        save_latent(tmp_path / "in" / f"{name}.pt", torch.randn(4, 8, 8, generator=g))
    np.save(tmp_path / "ref.npy", torch.randn(4, 8, 8, generator=g).numpy())
    model = SplatentEnhancer.tiny()
    result = enhance_files(tmp_path / "in", [tmp_path / "ref.npy"], tmp_path / "out", model, codec_for(model),
                           options=CPU)
    assert result.enhanced == 2
    assert load_rgb(tmp_path / "out" / "v1.png").shape == (64, 64, 3)
    assert not (tmp_path / "out" / "v1.pt").exists()
    save_latent(tmp_path / "small.pt", torch.randn(4, 4, 4))
    with pytest.raises(EnhanceInputError, match="differ in latent shape"):
        enhance_files(tmp_path / "in", [tmp_path / "small.pt"], tmp_path / "out2", model, codec_for(model),
                      options=CPU)
    with pytest.raises(EnhanceInputError, match="rectangle"):
        enhance_files(tmp_path / "in", [tmp_path / "ref.npy"] * 2, tmp_path / "out3", model, codec_for(model),
                      options=CPU)


@pytest.mark.gpu
def test_dataset_mode_on_cuda_in_bf16_matches_cpu(tmp_path):
    data = _scene(tmp_path / "scene", n_test=5)
    model = SplatentEnhancer.tiny()
    enhance_dataset(data, tmp_path / "cpu", model, codec_for(model), options=CPU)
    model = SplatentEnhancer.tiny()
    result = enhance_dataset(data, tmp_path / "gpu", model, codec_for(model),
                             options=RuntimeOptions(device="cuda", batch_size=2, compile=True))
    assert result.enhanced == 5 and model.dtype == torch.bfloat16
    for i in range(5):
        a, b = load_latent(tmp_path / "cpu" / "enhanced" / f"{i:04d}.pt"), load_latent(tmp_path / "gpu" / "enhanced" / f"{i:04d}.pt")
        assert (a - b).abs().mean() < 0.03 * a.abs().mean()


def test_dataset_options_object_and_keywords_are_one_setting(tmp_path):
    from splatent_model import DatasetEnhanceOptions

    data = _scene(tmp_path / "scene", n_test=2)
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    with pytest.raises(EnhanceInputError, match="no 'val' entries"):
        enhance_dataset(data, tmp_path / "out", model, codec, DatasetEnhanceOptions(split="val"), options=CPU)
    with pytest.raises(TypeError, match="splitt"):
        enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, splitt="test")
    # keywords go over the object's fields
    result = enhance_dataset(data, tmp_path / "out", model, codec, DatasetEnhanceOptions(split="val", metrics=False),
                             options=CPU, split="test", save_images=False)
    assert result.enhanced == 2 and result.metrics == {}
    assert not list((tmp_path / "out" / "enhanced").glob("*.png"))


def test_a_rerun_with_new_settings_stopped_midway_leaves_nothing_a_resume_takes_as_done(tmp_path):
    """t=300, then t=199 stopped after its first batch, then t=199 again: every view is a t=199 view (the t=300 files
    passed the resume check under the new manifest)."""
    data = _scene(tmp_path / "scene")
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)

    def stop(done, total):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, timestep=199, progress=stop)
    enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, timestep=199)
    enhance_dataset(data, tmp_path / "fresh", model, codec, options=CPU, timestep=199)
    for i in range(4):
        name = f"{i:04d}.pt"
        assert torch.allclose(load_latent(tmp_path / "out" / "enhanced" / name),
                              load_latent(tmp_path / "fresh" / "enhanced" / name), atol=1e-6), name


def test_another_scene_or_ground_truth_is_other_settings(tmp_path):
    """scene_id names views by stem, so two scenes' views share names; rgb_root changes the scores."""
    data = _scene(tmp_path / "scene")
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    first = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)
    assert first.enhanced == 4
    again = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU, rgb_root=tmp_path)
    assert again.enhanced == 4 and again.skipped == 0


def test_custom_mode_refuses_an_output_folder_that_would_overwrite_its_inputs(tmp_path):
    model = SplatentEnhancer.tiny()
    folder = tmp_path / "renders"
    folder.mkdir()
    for name in ("a", "b"):
        save_rgb(folder / f"{name}.png", np.full((64, 64, 3), 100, np.uint8))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(EnhanceInputError, match="would overwrite the input .*a.png"):
        enhance_files(folder, [], folder, model, codec_for(model), options=CPU)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize("write, words", [
    (lambda p: p.write_bytes(b""), "cannot read latent"),
    (lambda p: np.savez(open(p, "wb"), z=np.zeros((4, 8, 8))), "not one numeric array"),
    (lambda p: np.save(p, np.full((4, 8, 8), np.nan, np.float32)), "NaN or infinite"),
    (lambda p: np.save(p, np.zeros((8, 8), np.float32)), r"shape \(8, 8\)"),
])
def test_bad_npy_latents_are_one_clear_error(tmp_path, write, words):
    from splatent_model.files import load_any_latent

    path = tmp_path / "bad.npy"
    write(path)
    with pytest.raises(EnhanceInputError, match=words):
        load_any_latent(path)


@pytest.mark.parametrize("size, problem", [((64, 32), "another aspect ratio"), ((32, 32), "smaller than its latent")])
def test_a_ground_truth_image_that_cannot_be_the_latents_is_refused_not_stretched(tmp_path, size, problem):
    """Scored against a stretched (other ratio) or upsampled (smaller) image, the PSNR would be wrong, not low."""
    data = _scene(tmp_path / "scene", n_test=2)
    save_rgb(tmp_path / "scene" / "nvs_gt" / "0001.png", np.zeros((size[1], size[0], 3), np.uint8))
    model = SplatentEnhancer.tiny()
    with pytest.raises(EnhanceInputError, match=rf"0001.png is {size[0]}x{size[1]}, {problem}.*--rgb_root"):
        enhance_dataset(data, tmp_path / "out", model, codec_for(model), options=CPU)


def test_a_resume_enhances_again_the_views_whose_render_changed(tmp_path):
    """A re-render under the same dataset JSON leaves every setting equal: its old views were taken as done."""
    import os

    data = _scene(tmp_path / "scene")
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    first = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)
    assert first.enhanced == 4
    before = load_latent(tmp_path / "out" / "enhanced" / "0002.pt")
    render = tmp_path / "scene" / "nvs" / "0002.pt"
    save_latent(render, load_latent(render) + 1.0)  # a new fit, rendered again
    later = (tmp_path / "out" / "enhanced" / "0002.pt").stat().st_mtime_ns + 10**9
    os.utime(render, ns=(later, later))  # file systems with coarse clocks: make "after" certain
    again = enhance_dataset(data, tmp_path / "out", model, codec, options=CPU)
    assert again.enhanced == 1 and again.skipped == 3
    assert not torch.allclose(load_latent(tmp_path / "out" / "enhanced" / "0002.pt"), before)


def test_only_the_references_used_must_exist_and_too_few_names_a_fix_that_exists(tmp_path):
    """A reference outside min_k .. min_k + top_k was required to exist (train reads only those used), and too few
    references suggested a negative --top_k."""
    from splatent_model.files import dataset_work_items

    data = _scene(tmp_path / "scene")
    (tmp_path / "scene" / "train_gt" / "t03.pt").unlink()  # entry 0's fourth reference: unused with top_k 3
    items = dataset_work_items(data, 3, scene_id="nvs/0000")
    assert [r.name for r in items[0].refs] == ["t00.pt", "t01.pt", "t02.pt"]
    with pytest.raises(EnhanceInputError, match="ref_features .*t03.pt does not exist"):
        dataset_work_items(data, 3, min_k=1, scene_id="nvs/0000")
    with pytest.raises(EnhanceInputError, match=r"has 4 references.*--top_k 5` or pass --min_k 1$"):
        dataset_work_items(data, 3, min_k=2, scene_id="nvs/0000")
    with pytest.raises(EnhanceInputError, match="or use an enhancer trained with top_k 4 or fewer$"):
        dataset_work_items(data, 5, scene_id="nvs/0000")
