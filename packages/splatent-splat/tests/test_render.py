import json
import shutil

import pytest
import torch
from PIL import Image

from splatent_data import SplatentError
from splatent_latents import load_latent
from splatent_splat import FitConfig, fit_scene, render_model

QUICK = dict(eval_every=0, checkpoint_every=0, tensorboard=False, progress=False, sh_degree=1)


@pytest.fixture(scope="module")
def model(latent_scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    fit_scene(latent_scene, out, FitConfig(steps=30, **QUICK))
    return out


def test_render_writes_exactly_the_dataset_layout(model, latent_scene, tmp_path):
    out = tmp_path / "R" / "scene"
    result = render_model(model, out)
    test = ["0000", "0008"]
    train = [f"{i:04d}" for i in range(16) if i not in (0, 8)]
    expected = {f"{folder}/{stem}.pt" for folder, stems in
                (("nvs", test), ("nvs_gt", test), ("train", train), ("train_gt", train)) for stem in stems}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == expected | {"manifest.json"}
    assert result.counts == {"nvs": 2, "nvs_gt": 2, "train": 14, "train_gt": 14}
    source = latent_scene / "features_sd_turbo"
    for stem in test:
        gt = load_latent(out / "nvs_gt" / f"{stem}.pt")
        assert torch.equal(gt, load_latent(source / f"{stem}.pt"))
        rendered = load_latent(out / "nvs" / f"{stem}.pt")
        assert rendered.shape == gt.shape == (4, 24, 32)
        assert not torch.equal(rendered, gt)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["latents"] == str(source.resolve()) and manifest["codec"] == "tiny-random"
    assert manifest["split"]["test"] == test and manifest["counts"]["train"] == 14
    assert manifest["model"] == str(model.resolve())


def test_save_images_decodes_with_the_manifest_codec_and_path_makes_a_video(model, tmp_path):
    # imageio-ffmpeg is a dependency of the package, but a bare GPU image may lack it; the rest of
    # the module must still collect there.
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the video path needs imageio-ffmpeg")
    out = tmp_path / "r"
    result = render_model(model, out, save_images=True, path_frames=6, fps=3)
    with Image.open(out / "nvs" / "0000.png") as im:
        assert im.size == (256, 192)  # 8x the latent
    assert len(list((out / "train_gt").glob("*.png"))) == 14
    assert result.video == out / "path.mp4"
    reader = imageio_ffmpeg.read_frames(str(result.video))
    meta = next(reader)
    assert meta["size"] == (256, 192) and meta["fps"] == 3
    assert sum(1 for _ in reader) == 6


def test_render_refuses_a_folder_without_a_fit(tmp_path):
    with pytest.raises(SplatentError, match="splatent fit"):
        render_model(tmp_path, tmp_path / "out")


def test_an_antialiased_fit_is_rendered_antialiased(latent_scene, tmp_path):
    """The renders (and the path video) are what the fit trained and scored: its rasterize mode from fit.json."""
    from splatent_data import load_scene
    from splatent_splat import load_ply, rasterize_options

    fit = tmp_path / "aa"
    fit_scene(latent_scene, fit, FitConfig(steps=30, antialiased=True, backend="torch", device="cpu", **QUICK))
    assert rasterize_options(json.loads((fit / "fit.json").read_text())) == {"rasterize_mode": "antialiased"}
    render_model(fit, tmp_path / "R", backend="torch", device="cpu")
    gaussians, _ = load_ply(fit / "gaussians.ply")
    from splatent_splat import latent_camera

    rendered = load_latent(tmp_path / "R" / "nvs" / "0000.pt")
    cam = latent_camera(load_scene(latent_scene).camera("0000"), *rendered.shape[1:])
    for mode, same in (("antialiased", True), ("classic", False)):
        expected = gaussians.render_cameras([cam], backend="torch", rasterize_mode=mode)[0]
        assert torch.allclose(rendered, expected, atol=1e-5) is same, mode


def test_a_render_over_another_split_leaves_no_file_of_the_old_one(model, latent_scene, tmp_path):
    """The dataset and eval stages read every file of nvs/ and train_gt/: a view the earlier render (another
    split) put there must not stay as a test view (or a reference) of this one; nor a PNG of an older latent."""
    every4 = tmp_path / "every4"
    fit_scene(latent_scene, every4, FitConfig(steps=5, split_every=4, **QUICK))
    out = tmp_path / "R"
    render_model(every4, out, save_images=True)
    assert sorted(p.stem for p in (out / "nvs").glob("*.pt")) == ["0000", "0004", "0008", "0012"]
    render_model(model, out)
    test = ["0000", "0008"]
    train = [f"{i:04d}" for i in range(16) if i not in (0, 8)]
    for folder, stems in (("nvs", test), ("nvs_gt", test), ("train", train), ("train_gt", train)):
        assert sorted(p.name for p in (out / folder).iterdir()) == [f"{s}.pt" for s in stems], folder


def test_a_path_video_of_odd_sized_frames_holds_every_frame(latent_scene, tmp_path):
    """An RGB model's frames have its photos' size (times rgb_scale), which may be odd (Mip-NeRF 360's images_4:
    1237 wide); H.264 takes even sides only and ffmpeg wrote an empty path.mp4 without an error."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the video path needs imageio-ffmpeg")
    fit = tmp_path / "rgb"
    fit_scene(latent_scene, fit, FitConfig(steps=3, target="rgb", rgb_scale=0.1, backend="torch", device="cpu",
                                           **{**QUICK, "sh_degree": 0}))
    result = render_model(fit, tmp_path / "R", path_frames=4, fps=2, backend="torch", device="cpu")
    reader = imageio_ffmpeg.read_frames(str(result.video))
    meta = next(reader)
    assert meta["size"] == (26, 18)  # 26 x 19 frames, their last row left out
    assert sum(1 for _ in reader) == 4


def test_a_latent_ply_without_its_fit_folder_is_refused_not_drawn_as_rgb(model, latent_scene, tmp_path):
    """`export-ply --format latent` writes a PLY + sidecar without fit.json: render read it as an RGB model and wrote
    its latent channels, clamped, as the pixels of 4-channel PNGs."""
    from splatent_splat import export_ply

    export_ply(model, tmp_path / "exp" / "latent.ply", format="latent", device="cpu")
    with pytest.raises(SplatentError, match="holds latent Gaussians .* render the `splatent fit` folder"):
        render_model(tmp_path / "exp" / "latent.ply", tmp_path / "R", scene=latent_scene, backend="torch", device="cpu")
    assert not (tmp_path / "R" / "nvs").exists()


def test_a_path_video_that_fails_midway_leaves_no_file_behind(model, tmp_path, monkeypatch):
    """The half-written hidden .path.mp4.tmp.mp4 stayed in the render folder."""
    pytest.importorskip("imageio_ffmpeg", reason="the video path needs imageio-ffmpeg")
    import splatent_splat.render as render

    decode, calls = render._decode, []

    def failing(codec, latent):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("out of memory")
        return decode(codec, latent)

    monkeypatch.setattr(render, "_decode", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        render_model(model, tmp_path / "R", path_frames=6)
    assert len(calls) == 3
    assert sorted(p.name for p in (tmp_path / "R").iterdir() if p.is_file()) == []


def test_moved_latents_of_another_codec_are_refused(model, latent_scene, tmp_path):
    """--latents names where the fit's latents moved; another codec's would be rendered beside the wrong ground truth."""
    from splatent_latents import read_manifest

    moved = tmp_path / "moved"
    shutil.copytree(latent_scene / "features_sd_turbo", moved)
    result = render_model(model, tmp_path / "R", latents=moved)  # the same latents, moved: rendered
    assert result.counts["nvs"] > 0
    manifest = read_manifest(moved)
    manifest.codec, manifest.codec_config = "pca", {"name": "pca", "basis": "pca_basis.safetensors"}
    manifest.save(moved)
    with pytest.raises(SplatentError, match="holds pca latents but the model was fitted to tiny-random latents"):
        render_model(model, tmp_path / "R2", latents=moved)
