import json

import numpy as np
import pytest

from splatent_data import (
    PointCloud, SceneError, load_scene, read_points_ply, undistort_scene, write_points_ply, write_transforms,
)


def _cloud(n=50, coloured=True, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8) if coloured else None
    return PointCloud(xyz=rng.normal(size=(n, 3)), rgb=rgb)


@pytest.mark.parametrize("coloured", [True, False])
def test_round_trip(tmp_path, coloured):
    cloud = _cloud(coloured=coloured)
    write_points_ply(tmp_path / "p.ply", cloud)
    back = read_points_ply(tmp_path / "p.ply")
    assert np.allclose(back.xyz, cloud.xyz, atol=1e-6)  # stored as float32, as nerfstudio does
    assert (back.rgb is None) == (not coloured)
    if coloured:
        assert np.array_equal(back.rgb, cloud.rgb)


def test_transforms_with_ply_file_path_carries_points_and_undistort_keeps_them(tmp_path, make_ring):
    cams = make_ring(tmp_path / "s", model="OPENCV", distortion=(0.01, -0.02, 0.0, 0.0))
    cloud = _cloud()
    write_transforms(cams, tmp_path / "s" / "transforms.json", points=cloud)
    meta = json.loads((tmp_path / "s" / "transforms.json").read_text())
    assert meta["ply_file_path"] == "sparse_pc.ply" and (tmp_path / "s" / "sparse_pc.ply").is_file()
    scene = load_scene(tmp_path / "s")
    assert scene.points is not None and np.allclose(scene.points.xyz, cloud.xyz, atol=1e-6)
    pinhole = undistort_scene(scene, tmp_path / "u")
    assert pinhole.is_pinhole and np.array_equal(pinhole.points.rgb, cloud.rgb)


def test_transforms_without_points_has_none(tmp_path, make_ring):
    write_transforms(make_ring(tmp_path), tmp_path / "transforms.json")
    assert load_scene(tmp_path).points is None and not (tmp_path / "sparse_pc.ply").exists()


def test_bad_point_files_say_what_is_wrong(tmp_path, make_ring):
    write_transforms(make_ring(tmp_path), tmp_path / "transforms.json")
    meta = json.loads((tmp_path / "transforms.json").read_text())
    (tmp_path / "transforms.json").write_text(json.dumps({**meta, "ply_file_path": "missing.ply"}))
    with pytest.raises(SceneError, match="missing.ply: the point cloud named by the scene does not exist"):
        load_scene(tmp_path)
    (tmp_path / "missing.ply").write_text("not a ply\n")
    with pytest.raises(SceneError, match="not a readable PLY"):
        load_scene(tmp_path)
