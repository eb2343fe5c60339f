import numpy as np

from splatent_data import load_rgb, make_synthetic_scene, render_synthetic, synthetic_points


def test_synthetic_scene_is_deterministic_and_loadable(tmp_path):
    a = make_synthetic_scene(tmp_path / "a", n_views=6, width=32, height=24, seed=3)
    b = make_synthetic_scene(tmp_path / "b", n_views=6, width=32, height=24, seed=3)
    assert len(a) == 6 and a.is_pinhole and a.sizes == {(32, 24): 6}
    for ca, cb in zip(a.cameras, b.cameras):
        assert np.array_equal(load_rgb(ca.image_path), load_rgb(cb.image_path))
        assert np.allclose(ca.camtoworld, cb.camtoworld)
    imgs = [load_rgb(c.image_path).astype(float) for c in a.cameras]
    assert np.abs(imgs[0] - imgs[3]).mean() > 10  # opposite views see different things
    assert imgs[0].std() > 20  # textured, not flat


def test_centre_pixel_sees_the_central_sphere(tmp_path):
    scene = make_synthetic_scene(tmp_path, n_views=4, width=33, height=25)
    for cam in scene.cameras:
        img = render_synthetic(cam)
        sky = img[0, 16]
        centre = img[12, 16]
        assert np.abs(centre - sky).sum() > 0.2  # the sphere, not the sky


def test_synthetic_points_lie_on_the_scene(tmp_path):
    scene = make_synthetic_scene(tmp_path / "s", n_views=8, width=64, height=48, seed=3)
    cloud = synthetic_points(scene.cameras[:4], seed=3, count=500)
    assert len(cloud) == 500 and cloud.rgb.dtype == np.uint8 and np.isfinite(cloud.xyz).all()
    on_floor = np.abs(cloud.xyz[:, 2]) < 1e-6
    assert 0.2 < on_floor.mean() < 0.95  # the rest sit on the spheres and the box, above the floor
    assert (np.abs(cloud.xyz[:, :2]) <= 3.5).all() and (cloud.xyz[:, 2] > -1e-6).all() and (cloud.xyz[:, 2] < 2).all()
    again = synthetic_points(scene.cameras[:4], seed=3, count=500)
    assert np.array_equal(cloud.xyz, again.xyz)
