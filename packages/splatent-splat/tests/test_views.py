import pytest
import torch

from splatent_data import SceneError, load_scene
from splatent_latents import save_latent
from splatent_splat import load_latent_views, load_rgb_views
from splatent_splat.views import resolve_latents_dir


def test_latents_folder_is_found_under_the_scene_first(latent_scene, tmp_path, monkeypatch):
    scene = load_scene(latent_scene)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "features_sd_turbo").mkdir()  # another folder of the same name where we stand
    assert resolve_latents_dir(scene, None) == latent_scene / "features_sd_turbo"
    (tmp_path / "elsewhere").mkdir()
    assert resolve_latents_dir(scene, "elsewhere") == tmp_path.joinpath("elsewhere").relative_to(tmp_path)
    assert resolve_latents_dir(scene, tmp_path / "abs") == tmp_path / "abs"


def test_latent_views_scale_cameras_and_refuse_mismatches(latent_scene, tmp_path):
    scene = load_scene(latent_scene)
    views = load_latent_views(scene, latent_scene / "features_sd_turbo", ["0001", "0002"])
    assert [v.stem for v in views] == ["0001", "0002"]
    assert views[0].target.shape == (4, 24, 32) and (views[0].camera.width, views[0].camera.height) == (32, 24)
    assert views[0].camera.fx == pytest.approx(scene.camera("0001").fx / 8)
    import shutil

    bad = tmp_path / "latents"
    shutil.copytree(latent_scene / "features_sd_turbo", bad)
    save_latent(bad / "0001.pt", torch.zeros(4, 24, 24))
    with pytest.raises(SceneError, match="0001.pt is a 24x24 latent but .*encoded at 256x192 .*re-extract"):
        load_latent_views(scene, bad, ["0001"])
    import json

    manifest = json.loads((bad / "manifest.json").read_text())
    del manifest["sizes"]["0001"]  # a folder that does not record the size: the aspect ratio still catches it
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SceneError, match="another aspect ratio"):
        load_latent_views(scene, bad, ["0001"])
    (bad / "0002.pt").unlink()
    with pytest.raises(SceneError, match="0002.pt is missing"):
        load_latent_views(scene, bad, ["0002"])


def test_rgb_views_resize_to_the_asked_size(latent_scene):
    scene = load_scene(latent_scene)
    (view,) = load_rgb_views(scene, ["0003"], sizes={"0003": (48, 64)})
    assert view.target.shape == (3, 48, 64) and 0 <= float(view.target.min()) and float(view.target.max()) <= 1
    assert (view.camera.width, view.camera.height) == (64, 48)
    (half,) = load_rgb_views(scene, ["0003"], scale=0.5)
    assert half.target.shape == (3, 96, 128)
