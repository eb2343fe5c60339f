import dataclasses

import numpy as np
import pytest

from splatent_data import Camera, SceneError, look_at
from splatent_splat import camera_tensors, interpolate_path, latent_camera


def camera(**kw):
    base = dict(name="a.png", image_path="a.png", width=1080, height=1920, fx=1375.5, fy=1374.5, cx=554.6, cy=965.3,
                camtoworld=look_at([0, -4, 1], [0, 0, 0]))
    base.update(kw)
    return Camera(**base)


def test_latent_camera_is_the_image_camera_scaled_by_one_eighth():
    cam = camera()
    lat = latent_camera(cam, 240, 135)
    assert (lat.width, lat.height) == (135, 240)
    assert np.allclose([lat.fx, lat.fy, lat.cx, lat.cy], np.array([cam.fx, cam.fy, cam.cx, cam.cy]) / 8)


def test_half_pixel_convention_latent_pixel_centre_is_the_block_centre():
    cam = camera()
    lat = latent_camera(cam, 240, 135)
    # A world point seen at the centre of image block (j=10, i=20), i.e. image pixel (8*10+4, 8*20+4),
    # lands at the centre of latent pixel (10, 20), i.e. (10.5, 20.5).
    u, v = 8 * 10 + 4.0, 8 * 20 + 4.0
    ray = np.array([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, 1.0]) * 3.0
    world = cam.camtoworld[:3, :3] @ ray + cam.camtoworld[:3, 3]
    pix, _ = lat.project(world[None])
    assert np.allclose(pix[0], [10.5, 20.5])


def test_camera_tensors_and_distortion_refused():
    cams = [camera(), camera(name="b.png", camtoworld=look_at([1, -4, 1], [0, 0, 0]))]
    viewmats, ks = camera_tensors(cams)
    assert viewmats.shape == (2, 4, 4) and ks.shape == (2, 3, 3)
    assert np.allclose(viewmats[0].numpy() @ cams[0].camtoworld, np.eye(4), atol=1e-5)
    with pytest.raises(SceneError, match="undistort"):
        camera_tensors([camera(model="OPENCV", distortion=(0.05, -0.08, 0.0, 0.0))])


def test_path_is_smooth_and_passes_through_the_key_cameras():
    cams = [camera(name=f"{i:02d}.png", camtoworld=look_at([4 * np.cos(a), 4 * np.sin(a), 1], [0, 0, 0]))
            for i, a in enumerate(np.linspace(0, np.pi, 9))]
    path = interpolate_path(cams, 33, keyframes=9)
    assert len(path) == 33
    centres = np.stack([c.center for c in path])
    assert np.allclose(centres[0], cams[0].center) and np.allclose(centres[-1], cams[-1].center)
    assert np.allclose(centres[4], cams[1].center, atol=1e-6)  # 32 intervals / 8 segments: frame 4 is key 1
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 2 * steps.min()  # no jumps or stalls along the arc
    for c in path:
        r = c.camtoworld[:3, :3]
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-9)
    with pytest.raises(SceneError):
        interpolate_path(cams[:1], 10)
    # an unpadded capture (1.png ... 9.png here, 10.png after them) keeps its order: a text sort jumped 1 -> 10 -> 2
    unpadded = [dataclasses.replace(c, name=f"{i + 1}.png") for i, c in enumerate(cams)]
    unpadded.append(camera(name="10.png", camtoworld=look_at([4 * np.cos(np.pi * 9 / 8), 4 * np.sin(np.pi * 9 / 8), 1],
                                                                   [0, 0, 0])))
    centres = np.stack([c.center for c in interpolate_path(unpadded, 37, keyframes=10)])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert np.allclose(centres[-1], unpadded[-1].center) and steps.max() < 2 * steps.min()
