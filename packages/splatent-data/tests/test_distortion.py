import numpy as np
import pytest

from splatent_data import distort_points, undistort_points

CASES = [
    ("SIMPLE_RADIAL", (0.05,), [30.0, 20.0, 15.0, 0.05]),
    ("RADIAL", (0.05, -0.01), [30.0, 20.0, 15.0, 0.05, -0.01]),
    ("OPENCV", (0.0578421, -0.0805099, -0.000980296, 0.00015575), [30.0, 30.0, 20.0, 15.0, 0.0578421, -0.0805099, -0.000980296, 0.00015575]),
    ("OPENCV_FISHEYE", (0.1, -0.02, 0.003, -0.0004), [30.0, 30.0, 20.0, 15.0, 0.1, -0.02, 0.003, -0.0004]),
]


@pytest.mark.parametrize("model,params,colmap_params", CASES)
def test_matches_pycolmap(model, params, colmap_params):
    import pycolmap

    cam = pycolmap.Camera(model=model, width=40, height=30, params=colmap_params)
    xy = np.random.default_rng(0).uniform(-0.6, 0.6, size=(200, 2))
    ours = distort_points(xy, model, params)
    theirs = cam.img_from_cam(np.concatenate([xy, np.ones((200, 1))], axis=1))
    f, cx, cy = colmap_params[0], colmap_params[-len(params) - 2], colmap_params[-len(params) - 1]
    fy = colmap_params[1] if model in ("OPENCV", "OPENCV_FISHEYE") else f
    assert np.allclose(ours * [f, fy] + [cx, cy], theirs, atol=1e-8)
    back = undistort_points(ours, model, params)
    assert np.allclose(back, xy, atol=1e-9)
    assert np.allclose(cam.cam_from_img(theirs)[:, :2], back, atol=1e-6)
