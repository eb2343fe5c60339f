from splatent_data import load_scene, scene_summary, write_transforms


def test_summary_counts(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=9, model="OPENCV", distortion=(0.1, 0, 0, 0))
    write_transforms(cams, tmp_path / "transforms.json")
    cams[3].image_path.unlink()
    info = scene_summary(load_scene(tmp_path))
    assert info["images"] == 8 and info["missing"] == 1 and info["frames_listed"] == 9
    assert info["resolutions"] == {"40x30": 8} and info["camera_models"] == {"OPENCV": 8}
    assert info["distorted"] and info["split"] == {"mode": "llff", "train": 7, "test": 1}


def test_fox_summary(fox):
    info = scene_summary(load_scene(fox))
    assert (info["images"], info["missing"], info["resolutions"]) == (50, 17, {"1080x1920": 50})
    assert info["camera_models"] == {"OPENCV"} or info["camera_models"] == {"OPENCV": 50}


def test_summary_counts_unregistered_photos_of_colmap_scenes(tmp_path, make_ring):
    from splatent_data import write_colmap

    cams = make_ring(tmp_path, n=14)
    write_colmap(cams[:2], tmp_path / "sparse" / "0")
    info = scene_summary(load_scene(tmp_path))
    assert (info["images"], info["missing"], info["unregistered"]) == (2, 0, 12)
    assert info["unregistered_names"] == [c.name for c in cams[2:12]]  # the first ten
    write_transforms(cams, tmp_path / "transforms.json")
    assert "unregistered" not in scene_summary(load_scene(tmp_path))


def test_summary_of_a_scene_in_several_folders_with_its_own_split(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=3, folder="train") + make_ring(tmp_path, n=5, folder="test")[3:]
    write_transforms(cams, tmp_path / "transforms.json", split={"train": ["0000", "0001", "0002"], "test": ["0003", "0004"]})
    info = scene_summary(load_scene(tmp_path))
    assert info["image_dir"] is None and info["image_dirs"] == [str(tmp_path / "test"), str(tmp_path / "train")]
    assert info["split"] == {"mode": "scene", "train": 3, "test": 2}
    assert scene_summary(load_scene(tmp_path), split_mode="benchmark")["split"]["mode"] == "benchmark"
