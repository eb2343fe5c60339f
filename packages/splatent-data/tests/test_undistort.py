import dataclasses

import numpy as np
import pytest
from PIL import Image

from splatent_data import (
    Camera, load_mask, load_scene, undistort_image, undistort_scene, undistorted_camera, write_transforms,
)


def pattern(x, y):
    """A smooth analytic image over ideal normalised coordinates."""
    return 127.5 + 100 * np.sin(6 * x) * np.cos(5 * y)


@pytest.mark.parametrize("model,distortion", [
    ("OPENCV", (0.2, -0.05, 0.002, -0.001)),
    ("OPENCV_FISHEYE", (0.1, -0.02, 0.003, -0.0004)),
    ("RADIAL", (-0.15, 0.02)),
])
def test_undistorted_image_matches_analytic_pinhole_image(model, distortion):
    import pycolmap

    w, h = 120, 90
    cam = Camera("a.png", "a.png", w, h, 100.0, 100.0, 60.0, 45.0, np.eye(4), model=model, distortion=distortion)
    params = list(distortion) + ([0.0, 0.0] if model == "RADIAL" else [])
    colmap = pycolmap.Camera(model="OPENCV" if model == "RADIAL" else model, width=w, height=h,
                             params=[cam.fx, cam.fy, cam.cx, cam.cy, *params])
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ideal = colmap.cam_from_img(np.stack([u.ravel(), v.ravel()], -1))[:, :2]  # COLMAP's own lens model
    distorted = np.clip(np.rint(pattern(ideal[:, 0], ideal[:, 1])), 0, 255).astype(np.uint8).reshape(h, w)
    out, new = undistort_image(np.repeat(distorted[..., None], 3, axis=2), cam)
    assert new.model == "PINHOLE" and new.distortion == () and out.shape == (new.height, new.width, 3)
    assert new == undistorted_camera(cam)  # the resumable path names the same camera without the pixels
    uu, vv = np.meshgrid(np.arange(new.width) + 0.5, np.arange(new.height) + 0.5)
    expected = pattern((uu - new.cx) / new.fx, (vv - new.cy) / new.fy)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(out[..., 0][inner] - expected[inner]).max() < 4.0  # bilinear + uint8 on a smooth pattern
    # the distorted image itself is far from the pinhole image: the test can fail
    same = (slice(10, min(h, new.height) - 10), slice(10, min(w, new.width) - 10))
    assert np.abs(distorted[same].astype(float) - expected[same]).max() > 10.0


def test_pinhole_image_is_returned_as_is():
    cam = Camera("a.png", "a.png", 8, 6, 10.0, 10.0, 4.0, 3.0, np.eye(4))
    image = np.zeros((6, 8, 3), np.uint8)
    out, new = undistort_image(image, cam)
    assert out is image and new == cam


def test_undistort_scene_writes_pinhole_transforms(tmp_path, make_ring):
    cams = make_ring(tmp_path / "in", n=3, model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    write_transforms(cams, tmp_path / "in" / "transforms.json")
    out = undistort_scene(load_scene(tmp_path / "in"), tmp_path / "out")
    assert out.is_pinhole and len(out) == 3 and (tmp_path / "out" / "images" / "0000.png").is_file()
    assert np.allclose(out.cameras[0].camtoworld, cams[0].camtoworld)
    expected = undistorted_camera(cams[0])
    assert (out.cameras[0].fx, out.cameras[0].width, out.cameras[0].height) == (expected.fx, expected.width,
                                                                                 expected.height)
    assert Image.open(out.cameras[0].image_path).size == (expected.width, expected.height)


def test_undistort_keeps_masks_and_applied_transform(tmp_path, make_ring):
    cams = make_ring(tmp_path / "in", n=2, size=(40, 30), model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    (tmp_path / "in" / "masks").mkdir()
    mask = np.full((30, 40), 255, np.uint8)
    mask[:, :20] = 0  # the left half is left out
    Image.fromarray(mask).save(tmp_path / "in" / "masks" / "0000.png")
    cams[0] = dataclasses.replace(cams[0], mask_path=tmp_path / "in" / "masks" / "0000.png")
    applied = np.array([[0.0, 1, 0, 0.5], [1, 0, 0, 0], [0, 0, -1, 2], [0, 0, 0, 1]])
    write_transforms(cams, tmp_path / "in" / "transforms.json", applied_transform=applied)
    scene = load_scene(tmp_path / "in")
    assert scene.masked == 1 and np.allclose(scene.applied_transform, applied)
    out = undistort_scene(scene, tmp_path / "out")
    assert np.allclose(out.applied_transform, applied)
    cam = out.camera("0000")
    kept = load_mask(cam.mask_path)
    assert kept.shape == (cam.height, cam.width)
    assert not kept[:, : cam.width // 2 - 2].any() and kept[:, cam.width // 2 + 2:].all()
    assert out.camera("0001").mask_path is None


def test_undistort_colmap_scene_uses_colmap(tmp_path, make_ring):
    from splatent_data import write_colmap

    cams = make_ring(tmp_path / "in", n=3, model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    write_colmap(cams, tmp_path / "in" / "sparse" / "0")
    out = undistort_scene(load_scene(tmp_path / "in"), tmp_path / "out")
    assert out.format == "colmap" and out.is_pinhole and len(out) == 3
    # both paths choose COLMAP's camera: the same scene undistorts the same from either format
    assert (out.cameras[0].width, out.cameras[0].fx) == (undistorted_camera(cams[0]).width, undistorted_camera(cams[0]).fx)


def test_undistort_colmap_scene_read_from_a_downscaled_folder(tmp_path, make_ring):
    """COLMAP's undistorter would read the full-size intrinsics against images_2's files and abort the process; the
    per-image path undistorts them with the scaled intrinsics instead."""
    from splatent_data import write_colmap

    cams = make_ring(tmp_path / "in", n=3, size=(80, 60), model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    write_colmap(cams, tmp_path / "in" / "sparse" / "0")
    make_ring(tmp_path / "in", n=3, size=(40, 30), folder="images_2")
    scene = load_scene(tmp_path / "in", images="images_2")
    assert scene.cameras[0].width == 40 and not scene.is_pinhole
    out = undistort_scene(scene, tmp_path / "out")
    assert out.is_pinhole and len(out) == 3
    assert (out.cameras[0].width, out.cameras[0].fx) == (undistorted_camera(scene.cameras[0]).width,
                                                         undistorted_camera(scene.cameras[0]).fx)
