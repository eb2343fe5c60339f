import numpy as np

from splatent_data import Camera, load_scene, undistort_image, undistort_points, undistort_scene, write_transforms


def pattern(x, y):
    """A smooth analytic image over ideal normalised coordinates."""
    return 127.5 + 100 * np.sin(6 * x) * np.cos(5 * y)


def test_undistorted_image_matches_analytic_pinhole_image():
    w, h = 120, 90
    cam = Camera("a.png", "a.png", w, h, 100.0, 100.0, 60.0, 45.0, np.eye(4),
                 model="OPENCV", distortion=(0.2, -0.05, 0.002, -0.001))
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    distorted_xy = np.stack([(u.ravel() - cam.cx) / cam.fx, (v.ravel() - cam.cy) / cam.fy], -1)
    ideal = undistort_points(distorted_xy, cam.model, cam.distortion)
    distorted_img = np.repeat(pattern(ideal[:, 0], ideal[:, 1]).reshape(h, w, 1), 3, axis=2)
    out = undistort_image(distorted_img.astype(np.float32), cam)[..., 0]
    expected = pattern((u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(out[inner] - expected[inner]).max() < 2.0  # bilinear error on a smooth pattern
    # the distorted image itself is far from the pinhole image: the test can fail
    assert np.abs(distorted_img[..., 0][inner] - expected[inner]).max() > 10.0


def test_undistort_scene_writes_pinhole_transforms(tmp_path, make_ring):
    cams = make_ring(tmp_path / "in", n=3, model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    write_transforms(cams, tmp_path / "in" / "transforms.json")
    out = undistort_scene(load_scene(tmp_path / "in"), tmp_path / "out")
    assert out.is_pinhole and len(out) == 3 and (tmp_path / "out" / "images" / "0000.png").is_file()
    assert np.allclose(out.cameras[0].camtoworld, cams[0].camtoworld)
    assert (out.cameras[0].fx, out.cameras[0].width) == (cams[0].fx, cams[0].width)


def test_undistort_colmap_scene_uses_colmap(tmp_path, make_ring):
    from splatent_data import write_colmap

    cams = make_ring(tmp_path / "in", n=3, model="OPENCV", distortion=(0.05, 0.0, 0.0, 0.0))
    write_colmap(cams, tmp_path / "in" / "sparse" / "0")
    out = undistort_scene(load_scene(tmp_path / "in"), tmp_path / "out")
    assert out.format == "colmap" and out.is_pinhole and len(out) == 3
