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
