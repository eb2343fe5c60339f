"""The viewer's frame function and camera conversions, without a server or a browser (CPU, a tiny fit)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from splatent_data import SplatentError, look_at
from splatent_pipeline import evaluate_results, open_latent_scene, render_frame, view_scores
from splatent_pipeline.latent_scene import fit_latent
from splatent_pipeline.view_frame import (
    browser_camera, browser_pose, frame_size, latent_resolution, matching_view, nearest_view,
)



@pytest.fixture(scope="module")
def scene(fitted):
    return open_latent_scene(fitted / "model", "tiny", device="cpu", backend="torch")


def browser_pose_of(c2w):
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(c2w[:3, :3]).as_quat()
    return np.array([w, x, y, z])


def test_the_browser_pose_is_an_opencv_camera_to_world_as_viser_reads_it():
    import viser.transforms as tf

    c2w = look_at(np.array([3.0, -2.0, 1.5]), np.array([0.2, 0.1, 0.0]))
    wxyz = browser_pose_of(c2w)
    camera = browser_camera(wxyz, c2w[:3, 3], fov=0.8, width=320, height=240)
    assert np.allclose(camera.camtoworld, c2w)
    # viser's own reading of the same wxyz: the camera's +z is where it looks (its CameraHandle.wxyz setter)
    assert np.allclose(tf.SO3(wxyz).as_matrix(), c2w[:3, :3])
    target = np.array([0.2, 0.1, 0.0])
    pixel, depth = camera.project(target[None])
    assert depth[0] > 0 and np.allclose(pixel[0], [160, 120], atol=1e-6)  # looked at: the image centre
    back_wxyz, back_position, back_fov = browser_pose(camera)
    assert np.allclose(np.abs(back_wxyz @ wxyz), 1) and np.allclose(back_position, c2w[:3, 3]) and back_fov == pytest.approx(0.8)


def test_the_vertical_field_of_view_spans_the_image_height():
    camera = browser_camera([1, 0, 0, 0], [0, 0, 0], fov=math.radians(60), width=400, height=300)
    top = np.array([[0.0, -math.tan(math.radians(30)), 1.0]])  # on the upper edge of a 60° vertical view
    pixel, _ = camera.project(top)
    assert pixel[0] == pytest.approx([200, 0], abs=1e-9)
    assert camera.fx == camera.fy  # square pixels


def test_frame_size_follows_the_canvas_within_the_limit_in_whole_latent_pixels():
    assert frame_size(1000, 500, 1.0, 512) == (512, 256)
    assert frame_size(400, 300, 1.0, 512) == (400, 304)  # 37.5 latent pixels: 38
    assert frame_size(400, 300, 0.5, 512) == (200, 152)
    w, h = frame_size(3000, 10, 1.0, 512)
    assert (w, h) == (512, 64)  # at least 8 latent pixels a side
    assert all(v % 8 == 0 for v in frame_size(977, 613, 0.37, 512))


def test_a_camera_matches_a_view_it_stands_on_and_the_nearest_is_found(scene):
    view = scene.test[0]
    wxyz, position, fov = browser_pose(view)
    noisy = browser_camera(wxyz + 1e-7, position + 1e-7, fov, 320, 240)
    assert matching_view(noisy, scene.train + scene.test) is view
    moved = browser_camera(wxyz, position + 0.05 * view.forward, fov, 320, 240)
    assert matching_view(moved, scene.train + scene.test) is None
    assert nearest_view(moved, scene.test) is view


def test_references_are_fitted_to_the_frame_aspect_without_stretching():
    latent = torch.zeros(1, 4, 8)
    latent[..., 2:6] = 1.0  # a square in the middle of a 2:1 latent
    square = fit_latent(latent, 4, 4)
    assert square.shape == (1, 4, 4) and torch.equal(square, torch.ones(1, 4, 4))  # the centre cut, kept square
    assert fit_latent(latent, 4, 8) is latent


def test_the_frame_function_draws_each_mode(scene):
    camera = latent_resolution(browser_camera(*browser_pose(scene.test[0])[:2], browser_pose(scene.test[0])[2], 96, 64))
    assert (camera.width, camera.height) == (12, 8)
    decoded = render_frame(scene, camera, "decoded")
    assert decoded.image.shape == (64, 96, 3) and decoded.image.dtype == np.uint8
    assert set(decoded.seconds) == {"render", "decode", "total"} and not decoded.references
    enhanced = render_frame(scene, camera, "enhanced")
    assert enhanced.image.shape == (64, 96, 3) and set(enhanced.seconds) >= {"render", "enhance", "decode"}
    train = {c.stem for c in scene.train}
    assert len(enhanced.references) == 3 and set(enhanced.references) <= train
    assert np.abs(enhanced.image.astype(int) - decoded.image.astype(int)).mean() > 1
    both = render_frame(scene, camera, "side by side")
    assert both.image.shape == (64, 96, 3)
    assert np.array_equal(both.image[:, :48], decoded.image[:, 24:72])  # the centre halves, side by side
    assert np.array_equal(both.image[:, 48:], enhanced.image[:, 24:72])
    assert render_frame(scene, camera, "enhanced", top_k=1).references == enhanced.references[:1]
    assert render_frame(scene, camera, "enhanced", top_k=0).references == []
    with pytest.raises(SplatentError, match="unknown view mode"):
        render_frame(scene, camera, "wireframe")
    plain = open_latent_scene(scene.model_dir, None, device="cpu", backend="torch")
    with pytest.raises(SplatentError, match="needs an enhancer"):
        render_frame(plain, camera, "enhanced")
    assert np.array_equal(render_frame(plain, camera, "decoded").image, decoded.image)


def test_a_training_view_is_never_its_own_reference(scene):
    view = scene.train[0]
    references = scene.references(latent_resolution(browser_camera(*browser_pose(view)[:2], browser_pose(view)[2],
                                                                   64, 48, name=view.name)), 3)
    assert view.stem not in references and len(references) == 3


def test_a_test_view_scores_as_the_eval_stage_scores_it(scene, fitted, tmp_path):
    renders = fitted / "renders" / "scene"
    evaluated = evaluate_results(renders, tmp_path / "eval", lpips=False, fid=False, device="cpu")
    stem = scene.test[0].stem
    scores = view_scores(scene, stem)
    per_view = json.loads((tmp_path / "eval" / "metrics.json").read_text())["views"][stem]
    assert scores["decoded"]["psnr"] == pytest.approx(per_view["render"]["psnr"], abs=1e-4)
    assert scores["decoded"]["ssim"] == pytest.approx(per_view["render"]["ssim"], abs=1e-5)
    assert set(scores) == {"decoded", "enhanced"} and scores["enhanced"]["psnr"] != scores["decoded"]["psnr"]
    assert evaluated.views == len(scene.test)


def test_a_bad_model_folder_is_refused_in_one_line(fitted, tmp_path):
    with pytest.raises(SplatentError, match="not a folder"):
        open_latent_scene(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SplatentError, match="fit.json"):
        open_latent_scene(tmp_path / "empty")
    model = shutil.copytree(fitted / "model", tmp_path / "model")
    info = json.loads((model / "fit.json").read_text())
    (model / "fit.json").write_text(json.dumps({**info, "target": "rgb"}))
    with pytest.raises(SplatentError, match="RGB fit"):
        open_latent_scene(model)
    (model / "fit.json").write_text(json.dumps({**info, "latents": str(tmp_path / "gone")}))
    with pytest.raises(SplatentError, match="are gone"):
        open_latent_scene(model)
