import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from splatent_data import SceneError, load_scene, parse_transforms, write_transforms


def _write(root, frames, **meta):
    (root / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))


def test_round_trip_preserves_cameras(tmp_path, make_ring):
    cams = make_ring(tmp_path, model="OPENCV", distortion=(0.01, -0.02, 0.001, 0.0005))
    write_transforms(cams, tmp_path / "transforms.json")
    scene = load_scene(tmp_path)
    assert scene.format == "transforms" and len(scene) == len(cams)
    for a, b in zip(scene.cameras, cams):
        assert a.name == b.name and (a.width, a.height) == (b.width, b.height)
        assert np.allclose([a.fx, a.fy, a.cx, a.cy], [b.fx, b.fy, b.cx, b.cy], atol=1e-9)
        assert np.allclose(a.camtoworld, b.camtoworld, atol=1e-9)
        assert a.model == "OPENCV" and np.allclose(a.distortion, b.distortion)


def test_camera_angle_and_paths_without_extension(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGBA", (20, 10)).save(tmp_path / "train" / "r_0.png")
    _write(tmp_path, [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}], camera_angle_x=1.0)
    cam = load_scene(tmp_path).cameras[0]
    assert (cam.width, cam.height) == (20, 10)
    assert cam.fx == pytest.approx(10.0 / np.tan(0.5)) and cam.cx == 10.0 and cam.cy == 5.0
    # without w, a given principal point and vertical field of view are kept (they were the centre and fx)
    _write(tmp_path, [{"file_path": "./train/r_0", "transform_matrix": np.eye(4).tolist()}], camera_angle_x=1.0,
           camera_angle_y=0.6, cx=9.0, cy=4.5)
    cam = load_scene(tmp_path).cameras[0]
    assert cam.fy == pytest.approx(5.0 / np.tan(0.3)) and (cam.cx, cam.cy) == (9.0, 4.5)


def test_per_frame_intrinsics_override_global(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=2)
    frames = [{"file_path": f"images/{c.name}", "transform_matrix": np.eye(4).tolist()} for c in cams]
    frames[1]["fl_x"] = 99.0
    _write(tmp_path, frames, fl_x=30.0, fl_y=31.0, cx=20.0, cy=15.0, w=40, h=30)
    a, b = load_scene(tmp_path).cameras
    assert (a.fx, a.fy, b.fx) == (30.0, 31.0, 99.0)


def test_fisheye_distortion_is_read(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=1)
    _write(tmp_path, [{"file_path": f"images/{cams[0].name}", "transform_matrix": np.eye(4).tolist()}],
           camera_model="OPENCV_FISHEYE", fl_x=30.0, w=40, h=30, k1=0.1, k2=0.01, k3=0.0, k4=0.001)
    cam = load_scene(tmp_path).cameras[0]
    assert cam.model == "OPENCV_FISHEYE" and cam.distortion == (0.1, 0.01, 0.0, 0.001)


def test_downscaled_folder_scales_intrinsics(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=3, size=(80, 60))
    write_transforms(cams, tmp_path / "transforms.json")
    for c in cams:  # images_4: the same frames at a quarter of the size
        (tmp_path / "images_4").mkdir(exist_ok=True)
        Image.new("RGB", (20, 15)).save(tmp_path / "images_4" / c.name)
    small = load_scene(tmp_path, images="images_4")
    for a, b in zip(small.cameras, cams):
        assert (a.width, a.height) == (20, 15)
        assert np.allclose([a.fx, a.fy, a.cx, a.cy], np.array([b.fx, b.fy, b.cx, b.cy]) / 4)
        assert a.image_path.parent.name == "images_4"


def test_aspect_mismatch_is_refused(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=1, size=(40, 30))
    write_transforms(cams, tmp_path / "transforms.json")
    Image.new("RGB", (40, 40)).save(cams[0].image_path)
    with pytest.raises(SceneError, match="aspect ratio"):
        load_scene(tmp_path)


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"frames": []}', "no frames"),
    ("[1, 2]", "JSON object"),
    ('{"fl_x": 1, "frames": [{"file_path": "a.png"}]}', "transform_matrix"),
])
def test_malformed_transforms(tmp_path, content, match):
    (tmp_path / "transforms.json").write_text(content)
    with pytest.raises(SceneError, match=match):
        load_scene(tmp_path)


def test_transforms_that_are_not_utf8_text_are_one_line(tmp_path):
    (tmp_path / "transforms.json").write_bytes(b'{"frames": [\xff\xfe]}')
    with pytest.raises(SceneError, match="is not UTF-8 text"):
        load_scene(tmp_path)


@pytest.mark.parametrize("meta,match", [
    ({"fl_x": "40px"}, r"frame images/0000.png: fl_x must be a number, got '40px'"),
    ({"fl_x": 10.0, "w": [8]}, r"w must be a number, got \[8\]"),
    ({"fl_x": 10.0, "k1": True}, "k1 must be a number, got True"),
    ({"fl_x": float("inf")}, "fl_x must be a number"),
])
def test_camera_values_that_are_not_numbers_are_one_line(tmp_path, make_ring, meta, match):
    make_ring(tmp_path, n=1)
    _write(tmp_path, [{"file_path": "images/0000.png", "transform_matrix": np.eye(4).tolist()}], **meta)
    with pytest.raises(SceneError, match=match):
        load_scene(tmp_path)


def test_null_camera_values_read_as_absent(tmp_path, make_ring):
    make_ring(tmp_path, n=1)
    _write(tmp_path, [{"file_path": "images/0000.png", "transform_matrix": np.eye(4).tolist(), "k1": None}],
           fl_x=10.0, fl_y=None, cx=None)
    cam = load_scene(tmp_path).cameras[0]
    assert cam.fy == cam.fx == 10.0 and cam.cx == cam.width / 2 and cam.model == "PINHOLE"
    _write(tmp_path, [{"file_path": "images/0000.png", "transform_matrix": np.eye(4).tolist()}], fl_x=None)
    with pytest.raises(SceneError, match="no focal length"):
        load_scene(tmp_path)


@pytest.mark.parametrize("meta,match", [
    ({"fl_x": 0.0}, "fl_x is 0; a focal length must be positive"),
    ({"fl_x": 10.0, "fl_y": -10.0}, "fl_y is -10; a focal length must be positive"),
    ({"camera_angle_x": 0.0}, "camera_angle_x is 0; a field of view"),
    ({"camera_angle_x": 0.0, "w": 20, "h": 10}, "camera_angle_x is 0; a field of view"),
    ({"camera_angle_x": 4.0}, "camera_angle_x is 4; a field of view"),
    ({"fl_x": 30.0, "w": -40, "h": 30}, "image size w=-40, h=30 is negative"),
    ({"camera_angle_x": 0.7, "camera_angle_y": -0.5, "w": 20, "h": 10}, "camera_angle_y is -0.5"),
])
def test_non_positive_focal_is_refused(tmp_path, make_ring, meta, match):
    # fl_x 0 loaded as a camera of focal 0; camera_angle_x 0 was a ZeroDivisionError traceback
    make_ring(tmp_path, n=1)
    _write(tmp_path, [{"file_path": "images/0000.png", "transform_matrix": np.eye(4).tolist()}], **meta)
    with pytest.raises(SceneError, match=match):
        load_scene(tmp_path)


@pytest.mark.parametrize("bad,match", [
    ([[float("nan")] * 4] * 4, "NaN"),
    (np.zeros((4, 4)).tolist(), "non-invertible"),
    ([[1, 2], [3, 4]], "shape"),
])
def test_bad_pose(tmp_path, make_ring, bad, match):
    make_ring(tmp_path, n=1)
    _write(tmp_path, [{"file_path": "images/0000.png", "transform_matrix": bad}], fl_x=10.0)
    with pytest.raises(SceneError, match=match):
        load_scene(tmp_path)


def test_missing_images_warn_or_refuse(tmp_path, make_ring, caplog):
    cams = make_ring(tmp_path, n=6)
    write_transforms(cams, tmp_path / "transforms.json")
    cams[1].image_path.unlink()
    cams[4].image_path.unlink()
    with caplog.at_level(logging.WARNING, logger="splatent"):
        scene = load_scene(tmp_path)
    assert len(scene) == 4 and scene.missing == ["0001.png", "0004.png"]
    assert "2 of 6 frames" in caplog.text and "0001.png" in caplog.text
    with pytest.raises(SceneError, match="2 of 6 frames.*--strict"):
        load_scene(tmp_path, strict=True)


def test_truncated_image_is_named(tmp_path, make_ring):
    cams = make_ring(tmp_path, n=2, ext=".jpg")
    write_transforms(cams, tmp_path / "transforms.json")
    cams[1].image_path.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(SceneError, match="0001.jpg"):
        load_scene(tmp_path)


def test_parse_transforms_on_missing_folder(tmp_path):
    with pytest.raises(SceneError, match="does not exist"):
        load_scene(tmp_path / "nope")
    with pytest.raises(SceneError, match="no poses found"):
        load_scene(tmp_path)
    with pytest.raises(SceneError, match="no transforms.json"):
        parse_transforms(tmp_path)


def test_blender_train_test_files_give_a_split(tmp_path):
    from splatent_data import split_scene

    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        (tmp_path / split).mkdir()
        frames = []
        for i in range(n):
            Image.new("RGB", (8, 8)).save(tmp_path / split / f"{split}_{i}.png")
            frames.append({"file_path": f"./{split}/{split}_{i}", "transform_matrix": np.eye(4).tolist()})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    scene = load_scene(tmp_path)
    split = split_scene(scene)
    # the benchmark's protocol: train on the train views only (the val views were trained on too)
    assert split.test == ("test_0", "test_1") and split.train == ("train_0", "train_1", "train_2")


def test_blender_synthetic_layout_names_frames_after_their_split(tmp_path):
    """NeRF-synthetic reuses r_0, r_1, ... in every split's folder, with RGBA images and a val split."""
    from splatent_data import split_scene
    from splatent_data.images import load_rgb

    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        (tmp_path / split).mkdir()
        frames = []
        for i in range(n):
            Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / split / f"r_{i}.png")
            pose = np.eye(4)
            pose[:3, 3] = (i, 0.0, 4.0 if split == "train" else -4.0)
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.01, "transform_matrix": pose.tolist()})
        (tmp_path / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    scene = load_scene(tmp_path)
    assert [c.name for c in scene.cameras] == ["test_r_0", "test_r_1", "train_r_0", "train_r_1", "train_r_2"]
    assert scene.camera("test_r_1").image_path == tmp_path / "test" / "r_1.png"
    assert scene.camera("test_r_1").camtoworld[2, 3] == pytest.approx(-4.0)
    assert scene.camera("train_r_0").fx == pytest.approx(0.5 * 8 / np.tan(0.35))
    split = split_scene(scene)
    assert split.test == ("test_r_0", "test_r_1") and split.train == ("train_r_0", "train_r_1", "train_r_2")
    assert scene.image_folders == [tmp_path / "test", tmp_path / "train"] and scene.needs_working_copy
    # transparent pixels read as the white background, as Blender scenes are evaluated
    assert (load_rgb(scene.camera("test_r_0").image_path) == 255).all()


def test_nerfstudio_filename_split_is_read_written_and_kept_by_a_working_copy(tmp_path, make_ring, caplog):
    from splatent_data import split_scene, undistort_scene

    cams = make_ring(tmp_path, n=4)
    write_transforms(cams, tmp_path / "transforms.json", split={"train": ["0000", "0001.png"], "test": ["0003"]})
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert meta["test_filenames"] == [os.path.relpath(cams[3].image_path, tmp_path)]
    scene = load_scene(tmp_path)
    assert split_scene(scene).test == ("0003",) and not scene.needs_working_copy
    with caplog.at_level(logging.WARNING, logger="splatent"):  # its own list wins over --split-every, said aloud
        assert split_scene(scene, every=2).test == ("0003",)
    assert "names its own test views" in caplog.text and "--split-every is ignored" in caplog.text
    copy = undistort_scene(scene, tmp_path / "copy")
    assert split_scene(copy).test == ("0003",)
    meta["test_filenames"] = "images/0003.png"
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(SceneError, match="test_filenames must be a list of file paths"):
        load_scene(tmp_path)


def test_nerfstudio_val_filenames_are_the_test_views_without_test_filenames(tmp_path, make_ring):
    # nerfstudio evaluates on val_filenames; without test_filenames the file's split was ignored (every 8th view)
    from splatent_data import scene_summary, split_scene

    cams = make_ring(tmp_path, n=10)
    write_transforms(cams, tmp_path / "transforms.json",
                     split={"train": [c.stem for c in cams[1:9]], "val": [cams[0].stem, cams[9].stem]})
    scene = load_scene(tmp_path)
    split = split_scene(scene)
    assert split.test == (cams[0].stem, cams[9].stem) and split.train == tuple(c.stem for c in cams[1:9])
    assert scene_summary(scene)["split"] == {"mode": "scene", "train": 8, "test": 2}


def test_fox_loads_with_missing_frames_reported(fox, caplog):
    with caplog.at_level(logging.WARNING, logger="splatent"):
        scene = load_scene(fox)
    assert len(scene) == 50 and len(scene.missing) == 17
    assert scene.sizes == {(1080, 1920): 50}
    assert {c.model for c in scene.cameras} == {"OPENCV"} and not scene.is_pinhole
    assert "17 of 67 frames" in caplog.text
    with pytest.raises(SceneError, match="17 of 67"):
        load_scene(fox, strict=True)


def test_mixed_image_sizes_warn_and_keep_own_intrinsics(tmp_path, make_ring, caplog):
    big = make_ring(tmp_path, n=2, size=(40, 30))
    small = make_ring(tmp_path, n=4, size=(20, 15), folder="small")[2:]
    write_transforms(big[:2] + small, tmp_path / "transforms.json")
    with caplog.at_level(logging.WARNING, logger="splatent"):
        scene = load_scene(tmp_path)
    assert scene.sizes == {(40, 30): 2, (20, 15): 2}
    assert "mixes image sizes: 40x30 (2), 20x15 (2)" in caplog.text
    assert scene.camera("0002").fx == small[0].fx


def test_full_opencv_rational_terms_are_refused_not_dropped(tmp_path, make_ring):
    """transforms.json has no k4..k6: writing them would silently change the lens; k3 alone round-trips."""
    kept = make_ring(tmp_path, n=2, model="FULL_OPENCV", distortion=(0.01, 0.0, 0.0, 0.0, 0.002, 0.0, 0.0, 0.0))
    write_transforms(kept, tmp_path / "transforms.json")
    assert load_scene(tmp_path).cameras[0].distortion[4] == pytest.approx(0.002)
    rational = make_ring(tmp_path, n=2, model="FULL_OPENCV", distortion=(0.01, 0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0))
    with pytest.raises(SceneError, match="not FULL_OPENCV's k4..k6"):
        write_transforms(rational, tmp_path / "t2.json")


def test_frames_named_without_extension_keep_a_dot_in_their_stem(tmp_path):
    """Image sequences named frame.0001 (file_path without extension): every frame was keyed "frame", and the
    scene refused its own frames as duplicates."""
    from splatent_data import split_scene

    (tmp_path / "images").mkdir()
    frames = []
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"frame.000{i}.png")
        pose = np.eye(4)
        pose[0, 3] = i
        frames.append({"file_path": f"images/frame.000{i}", "transform_matrix": pose.tolist()})
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames,
                                                         "test_filenames": ["images/frame.0001"]}))
    scene = load_scene(tmp_path)
    assert scene.stems == ["frame.0000", "frame.0001", "frame.0002"]
    assert scene.camera("frame.0002").image_path.name == "frame.0002.png"
    assert split_scene(scene).test == ("frame.0001",)
