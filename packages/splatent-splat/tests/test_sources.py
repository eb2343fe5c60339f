"""Models that `splatent fit` did not write: INRIA's output folder, a bare 3DGS PLY, nerfstudio's splat.ply in its
normalised world; and Gaussians moved rigidly between worlds (centres, orientations, view-dependent colour)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from splatent_data import SplatentError, load_scene
from splatent_splat import FeatureGaussians, export_ply, load_ply, open_model, render_model, rigidly_moved, save_inria_ply
from splatent_splat.sources import in_world

TURN = np.eye(4)
TURN[:3, :3] = Rotation.from_euler("xyz", [0.4, -0.9, 1.7]).as_matrix()
TURN[:3, 3] = [0.3, -1.2, 2.0]


def _test_psnr(render_dir, scene_dir) -> float:
    """Mean PSNR of the rendered test views against the scene's photos."""
    values = []
    for png in sorted((render_dir / "nvs").glob("*.png")):
        ours = np.asarray(Image.open(png), dtype=np.float64) / 255
        truth = np.asarray(Image.open(scene_dir / "images" / png.name), dtype=np.float64) / 255
        values.append(-10 * np.log10(max(((ours - truth) ** 2).mean(), 1e-10)))
    assert values
    return float(np.mean(values))


def _nerfstudio_splat(gaussians, tmp_path, scale: float = 0.37) -> Path:
    """``gaussians`` as splatfacto leaves them: turned and scaled into nerfstudio's normalised world (centres and
    sizes), in ``outputs/splatfacto/export/splat.ply`` beside its ``dataparser_transforms.json``; the run folder."""
    moved = rigidly_moved(gaussians, TURN)
    with torch.no_grad():
        moved.params["means"] *= scale
        moved.params["scales"] += float(np.log(scale))
    run = tmp_path / "outputs" / "splatfacto"
    (run / "export").mkdir(parents=True)
    save_inria_ply(moved, run / "export" / "splat.ply")
    (run / "dataparser_transforms.json").write_text(json.dumps({"transform": TURN[:3].tolist(), "scale": scale}))
    return run


def test_an_inria_output_folder_renders_at_the_views_of_its_cfg_args_scene(latent_scene, scene_gaussians, tmp_path):
    run = tmp_path / "inria"
    for iteration in (7000, 30000):
        (run / "point_cloud" / f"iteration_{iteration}").mkdir(parents=True)
    save_inria_ply(scene_gaussians, run / "point_cloud" / "iteration_30000" / "point_cloud.ply")
    (run / "point_cloud" / "iteration_7000" / "point_cloud.ply").write_bytes(b"not read")
    (run / "cfg_args").write_text(f"Namespace(sh_degree=3, source_path='{latent_scene}', model_path='{run}', "
                                  f"images='images', resolution=-1, white_background=False, eval=True)")
    source = open_model(run)
    assert source.ply.parent.name == "iteration_30000" and not source.fitted
    assert source.info["split"]["test"] == sorted(load_scene(latent_scene).stems)[::8]
    render_model(run, tmp_path / "renders", backend="torch", device="cpu")
    assert _test_psnr(tmp_path / "renders", latent_scene) > 30  # the photos were rendered from these Gaussians


def test_a_bare_ply_needs_its_scene(latent_scene, scene_gaussians, tmp_path):
    save_inria_ply(scene_gaussians, tmp_path / "point_cloud.ply")
    with pytest.raises(SplatentError, match="has no fit.json: pass the scene it was trained on with --scene"):
        open_model(tmp_path / "point_cloud.ply")
    with pytest.raises(SplatentError, match="does not exist"):
        open_model(tmp_path / "point_cloud.ply", scene=tmp_path / "nowhere")
    with pytest.raises(SplatentError, match="holds neither fit.json"):
        open_model(tmp_path)
    assert open_model(tmp_path / "point_cloud.ply", scene=latent_scene).info["target"] == "rgb"


def test_a_nerfstudio_splat_in_its_normalised_world_renders_at_the_scene_views(latent_scene, scene_gaussians,
                                                                                tmp_path):
    run = _nerfstudio_splat(scene_gaussians, tmp_path)
    render_model(run / "export" / "splat.ply", tmp_path / "renders", scene=latent_scene, backend="torch", device="cpu")
    assert _test_psnr(tmp_path / "renders", latent_scene) > 30
    (run / "dataparser_transforms.json").unlink()  # without the transform the same file is seen from the wrong place
    render_model(run / "export" / "splat.ply", tmp_path / "wrong", scene=latent_scene, backend="torch", device="cpu")
    assert _test_psnr(tmp_path / "wrong", latent_scene) < 20


def test_rigidly_moved_gaussians_look_the_same_from_moved_cameras(make_ring):
    g = torch.Generator().manual_seed(0)
    model = FeatureGaussians.create(torch.randn(200, 3, generator=g) * 0.5, torch.rand(200, 3, generator=g),
                                    feature_kind="rgb", sh_degree=3, init_opacity=0.6, init_scale=0.5)
    with torch.no_grad():  # strong view dependence, so a wrong SH rotation shows
        model.params["featN"].copy_(0.3 * torch.randn(model.params["featN"].shape, generator=g))
        model.params["quats"].copy_(torch.randn(200, 4, generator=g))
        model.params["scales"].copy_(torch.log(0.05 + 0.2 * torch.rand(200, 3, generator=g)))
    moved = rigidly_moved(model, TURN)
    for cam in make_ring(4, 64, 48)[:2]:
        before = model.render_cameras([cam], backend="torch")[0]
        after = moved.render_cameras([in_world(cam, TURN)], backend="torch")[0]
        assert torch.allclose(before, after, atol=2e-4), (before - after).abs().max()
    unturned = FeatureGaussians({**moved.params, "featN": model.params["featN"]}, feature_kind="rgb", sh_degree=3)
    after = unturned.render_cameras([in_world(cam, TURN)], backend="torch")[0]
    assert (before - after).abs().max() > 1e-2  # the colour's turn matters: the test can fail


def test_rigidly_moved_refuses_a_scaling_transform(scene_gaussians):
    with pytest.raises(SplatentError, match="only be moved rigidly"):
        rigidly_moved(scene_gaussians, np.diag([2.0, 2.0, 2.0, 1.0]))


def test_export_in_the_original_frame_undoes_applied_transform(latent_scene, scene_gaussians, tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(latent_scene, scene)
    data = json.loads((scene / "transforms.json").read_text())
    save_inria_ply(scene_gaussians, tmp_path / "model.ply")
    with pytest.raises(SplatentError, match="records no applied_transform"):
        export_ply(tmp_path / "model.ply", tmp_path / "out.ply", frame="original", scene=scene, device="cpu")
    data["applied_transform"] = TURN[:3].tolist()
    (scene / "transforms.json").write_text(json.dumps(data))
    export_ply(tmp_path / "model.ply", tmp_path / "original.ply", frame="original", scene=scene, device="cpu")
    original, _ = load_ply(tmp_path / "original.ply")
    back = original.params["means"].detach().double().numpy() @ TURN[:3, :3].T + TURN[:3, 3]
    assert np.allclose(back, scene_gaussians.params["means"].detach().double().numpy(), atol=1e-5)
    export_ply(tmp_path / "model.ply", tmp_path / "same.ply", device="cpu")  # an INRIA export needs no scene
    assert torch.allclose(load_ply(tmp_path / "same.ply")[0].params["means"], scene_gaussians.params["means"])
    with pytest.raises(SplatentError, match="RGB model: it has no latent channels"):
        export_ply(tmp_path / "model.ply", tmp_path / "latent.ply", format="latent", device="cpu")


def test_a_latent_export_keeps_the_models_metadata(tmp_path):
    """The sidecar of `export --format latent` holds the fit's metadata (scene, latents, codec, data range): the
    export passed the metadata's own "metadata" key, which is absent, and wrote {}."""
    from splatent_splat import save_ply

    g = torch.Generator().manual_seed(0)
    model = FeatureGaussians.create(torch.randn(20, 3, generator=g), torch.randn(20, 4, generator=g), sh_degree=1,
                                    feature_mean=torch.zeros(4), feature_scale=torch.ones(4))
    meta = {"scene": "/s", "latents": "/s/latents", "data_range": 7.5}
    save_ply(model, tmp_path / "model.ply", metadata=meta)
    export_ply(tmp_path / "model.ply", tmp_path / "out.ply", format="latent", device="cpu")
    assert load_ply(tmp_path / "out.ply")[1] == meta


def test_a_nerfstudio_splat_exported_in_the_original_frame_leaves_nerfstudios_world(latent_scene, scene_gaussians,
                                                                                      tmp_path):
    """splat.ply's Gaussians live in nerfstudio's normalised world (dataparser_transforms.json, scaled): the original
    frame undoes that map and then applied_transform; it undid applied_transform alone."""
    run = _nerfstudio_splat(scene_gaussians, tmp_path)
    scene = tmp_path / "scene"
    shutil.copytree(latent_scene, scene)
    data = json.loads((scene / "transforms.json").read_text())
    applied = np.eye(4)
    applied[:3, :3] = Rotation.from_euler("z", 0.6).as_matrix()
    applied[:3, 3] = [1.0, 0.5, -0.25]
    data["applied_transform"] = applied[:3].tolist()
    (scene / "transforms.json").write_text(json.dumps(data))
    export_ply(run / "export" / "splat.ply", tmp_path / "original.ply", frame="original", scene=scene, device="cpu")
    original, _ = load_ply(tmp_path / "original.ply")
    back = original.params["means"].detach().double().numpy() @ applied[:3, :3].T + applied[:3, 3]
    assert np.allclose(back, scene_gaussians.params["means"].detach().double().numpy(), atol=1e-4)
    assert torch.allclose(original.params["scales"], scene_gaussians.params["scales"], atol=1e-5)


def test_a_nerfstudio_splat_exported_in_the_scene_frame_is_in_the_poses_world(latent_scene, scene_gaussians, tmp_path):
    """The scene frame is the poses' world: a splat.ply stayed in nerfstudio's normalised (turned, scaled) world."""
    run = _nerfstudio_splat(scene_gaussians, tmp_path)
    for name, scene in (("alone", None), ("with-scene", latent_scene)):
        export_ply(run / "export" / "splat.ply", tmp_path / f"{name}.ply", scene=scene, device="cpu")
        exported, _ = load_ply(tmp_path / f"{name}.ply")
        assert np.allclose(exported.params["means"].detach().numpy(), scene_gaussians.params["means"].detach().numpy(),
                           atol=1e-4), name
        assert torch.allclose(exported.params["scales"], scene_gaussians.params["scales"], atol=1e-5), name
