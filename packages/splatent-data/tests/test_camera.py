import numpy as np
import pytest

from splatent_data import Camera, look_at, opengl_to_opencv


def test_look_at_projects_target_to_principal_point():
    c2w = look_at([3.0, -2.0, 1.0], [0.0, 0.0, 0.0])
    cam = Camera("a.png", "a.png", 64, 48, 50.0, 50.0, 32.0, 24.0, c2w)
    pix, depth = cam.project(np.zeros((1, 3)))
    assert np.allclose(pix, [[32.0, 24.0]])
    assert depth[0] == pytest.approx(np.sqrt(14.0))
    assert np.allclose(cam.forward, -cam.center / np.linalg.norm(cam.center))


def test_opencv_axes_point_above_centre_projects_above():
    # world z is up; a point above the target must land in the upper half (smaller v)
    cam = Camera("a.png", "a.png", 64, 48, 50.0, 50.0, 32.0, 24.0, look_at([4.0, 0.0, 0.0], [0.0, 0.0, 0.0]))
    pix, _ = cam.project(np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    assert pix[0, 1] < 24.0 and abs(pix[0, 0] - 32.0) < 1e-9
    # looking along -x with z up, +y is to the camera's right? right = forward x up = (-1,0,0)x(0,0,1) = (0,1,0)
    assert pix[1, 0] > 32.0


def test_opengl_conversion_matches_projection():
    # An OpenGL camera looks down its -z axis with y up: a point in front at (0, 1, -2) in camera
    # space is above the centre. After conversion the OpenCV projection must agree.
    gl = np.eye(4)
    gl[:3, 3] = [1.0, 2.0, 3.0]
    cv = opengl_to_opencv(gl)
    cam = Camera("a.png", "a.png", 100, 100, 80.0, 80.0, 50.0, 50.0, cv)
    world = (gl @ np.array([0.0, 1.0, -2.0, 1.0]))[:3]
    pix, depth = cam.project(world[None])
    assert depth[0] == pytest.approx(2.0)
    assert np.allclose(pix[0], [50.0, 50.0 - 80.0 * 0.5])
    assert np.allclose(opengl_to_opencv(cv), gl)  # the flip is its own inverse


def test_scaled_intrinsics_follow_corner_convention():
    cam = Camera("a.png", "a.png", 1080, 1920, 1375.5, 1374.5, 554.5, 965.25, np.eye(4))
    small = cam.scaled(270, 480)
    assert (small.fx, small.fy, small.cx, small.cy) == pytest.approx((1375.5 / 4, 1374.5 / 4, 554.5 / 4, 965.25 / 4))


def test_camera_rejects_wrong_distortion_count():
    with pytest.raises(ValueError):
        Camera("a.png", "a.png", 8, 8, 1.0, 1.0, 4.0, 4.0, np.eye(4), model="OPENCV", distortion=(0.1,))
