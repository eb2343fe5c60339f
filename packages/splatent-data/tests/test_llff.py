import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatent_data import (
    Camera, SceneError, find_poses_bounds, list_images, load_scene, look_at, parse_llff, scene_summary,
    select_references, write_colmap, write_llff,
)

REPO = Path(__file__).resolve().parents[3]
SCENES = REPO.parent / "shared" / "data" / "scenes"
LLFF_SCENES = ("beer_can", "bird", "ethiopian_head", "gold_cape", "maryrose", "milk", "statue_of_liberty", "table_room")
PHOTO_ONLY = ("kitchen_subset", "lund_street", "snow_miku")


def _cameras(root, names, size=(64, 48), f=50.0, folder="images"):
    """Forward-facing cameras on a small arc looking at a point ahead, with image files of ``size``."""
    w, h = size
    cams = []
    for i, name in enumerate(names):
        path = root / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (20 * i % 255, 90, 140)).save(path)
        center = [0.4 * np.sin(0.3 * i), -1.0 + 0.05 * i, 0.2 * np.cos(0.5 * i)]
        cams.append(Camera(name=name, image_path=path, width=w, height=h, fx=f, fy=f, cx=w / 2, cy=h / 2,
                           camtoworld=look_at(center, [0.1 * i, 4.0, 0.0])))
    return cams


def _imgs2poses_rows(cams, hwf, bounds):
    """Rows as LLFF's ``imgs2poses.py`` builds them from COLMAP (``pose_utils.load_colmap_data`` /
    ``save_poses``): camera-to-world columns re-ordered to ``[c1, c0, -c2, t]``, then ``h, w, f``,
    flattened row by row, then near and far. Independent of ``write_llff``."""
    rows = []
    for cam, b in zip(cams, bounds):
        c2w = cam.camtoworld[:3, :4]
        pose = np.concatenate([c2w[:, 1:2], c2w[:, 0:1], -c2w[:, 2:3], c2w[:, 3:4], np.reshape(hwf, (3, 1))], 1)
        rows.append(np.concatenate([pose.ravel(), b]))
    return np.array(rows)


def _points():
    rng = np.random.default_rng(0)
    return np.c_[rng.uniform(-1, 1, 40), rng.uniform(3, 5, 40), rng.uniform(-1, 1, 40)]


def test_rows_as_llff_writes_them_project_like_the_original_cameras(tmp_path):
    # 1.png, 10.png, 2.png: rows follow Python's sorted() of the names, as LLFF's loader does
    cams = _cameras(tmp_path, ["1.png", "10.png", "2.png", "3.png"])
    bounds = [(0.5 + i, 9.0 + i) for i in range(4)]
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (48, 64, 50.0), bounds))
    scene = load_scene(tmp_path)
    assert scene.format == "llff" and scene.source == tmp_path / "poses_bounds.npy"
    assert scene.names == ["1.png", "10.png", "2.png", "3.png"]
    pts = _points()
    for got, want, b in zip(scene.cameras, cams, bounds):
        assert np.allclose(got.camtoworld, want.camtoworld, atol=1e-12)
        assert (got.width, got.height, got.fx, got.fy, got.cx, got.cy) == (64, 48, 50.0, 50.0, 32.0, 24.0)
        uv_got, z_got = got.project(pts)
        uv_want, z_want = want.project(pts)
        assert np.allclose(uv_got, uv_want, atol=1e-9) and np.allclose(z_got, z_want) and (z_got > 0).all()
        assert scene.bounds[got.name] == b
    assert scene.declared_sizes == {c.name: (64, 48) for c in cams}


def test_nerf_loader_conversion_gives_opengl(tmp_path):
    # NeRF's load_llff.py: poses[:, [1, -0, 2]] gives OpenGL camera-to-world (x right, y up, z backward)
    cams = _cameras(tmp_path, ["a.png", "b.png"])
    rows = _imgs2poses_rows(cams, (48, 64, 50.0), [(1.0, 5.0)] * 2)
    stored = rows[:, :15].reshape(-1, 3, 5)
    gl = np.concatenate([stored[:, :, 1:2], -stored[:, :, 0:1], stored[:, :, 2:4]], 2)
    np.save(tmp_path / "poses_bounds.npy", rows)
    for cam, m in zip(load_scene(tmp_path).cameras, gl):
        assert np.allclose(cam.camtoworld[:3, 0], m[:, 0])  # right
        assert np.allclose(cam.camtoworld[:3, 1], -m[:, 1])  # down = -up
        assert np.allclose(cam.forward, -m[:, 2])  # forward = -backward


def test_round_trip_through_write_llff(tmp_path):
    cams = _cameras(tmp_path, [f"{i:03d}.jpg" for i in range(6)])
    bounds = {c.name: (0.1 * (i + 1), 20.0 - i) for i, c in enumerate(cams)}
    assert write_llff(cams[::-1], tmp_path, bounds=bounds) == tmp_path / "poses_bounds.npy"
    scene = parse_llff(tmp_path)
    assert scene.names == [c.name for c in cams] and scene.bounds == bounds
    for a, b in zip(scene.cameras, cams):
        assert np.allclose(a.camtoworld, b.camtoworld, atol=1e-12)
        assert np.allclose([a.fx, a.fy, a.cx, a.cy], [b.fx, b.fy, b.cx, b.cy])
    write_llff(cams, tmp_path / "poses_bounds.npy", bounds=(1.0, 2.0))
    assert set(parse_llff(tmp_path).bounds.values()) == {(1.0, 2.0)}
    write_llff(cams, tmp_path)
    near, far = np.array(list(parse_llff(tmp_path).bounds.values())).T
    assert (near > 0).all() and (far > near).all()


def test_write_llff_refuses_what_it_cannot_store(tmp_path):
    cam = _cameras(tmp_path, ["a.png"])[0]
    from dataclasses import replace

    with pytest.raises(SceneError, match="one focal length and a centred principal point"):
        write_llff([replace(cam, fy=60.0)], tmp_path)
    with pytest.raises(SceneError, match="one focal length and a centred principal point"):
        write_llff([replace(cam, cx=40.0)], tmp_path)
    with pytest.raises(SceneError, match="undistort"):
        write_llff([replace(cam, model="OPENCV", distortion=(0.1, 0.0, 0.0, 0.0))], tmp_path)
    with pytest.raises(SceneError, match="no bounds given for a.png"):
        write_llff([cam], tmp_path, bounds={"b.png": (1.0, 2.0)})


def test_intrinsics_scaled_from_original_photos_to_the_files(tmp_path):
    # poses for 960x544 photos (h, w, f = 544, 960, 906); the files are 448x254, rounded to whole pixels
    cams = _cameras(tmp_path, ["a.jpg", "b.jpg"], size=(448, 254))
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (544, 960, 906.0), [(1.0, 9.0)] * 2))
    cam = load_scene(tmp_path).cameras[0]
    assert (cam.width, cam.height) == (448, 254)
    assert cam.fx == pytest.approx(906.0 * 448 / 960) and cam.fy == pytest.approx(906.0 * 254 / 544)
    assert (cam.cx, cam.cy) == (224.0, 127.0)
    # the same poses with full-size files project the same points to pixels scaled by the size ratio
    big = _cameras(tmp_path / "big", ["a.jpg", "b.jpg"], size=(960, 544))
    np.save(tmp_path / "big" / "poses_bounds.npy", _imgs2poses_rows(big, (544, 960, 906.0), [(1.0, 9.0)] * 2))
    full = load_scene(tmp_path / "big").cameras[0]
    assert (full.fx, full.fy, full.cx, full.cy) == (906.0, 906.0, 480.0, 272.0)
    uv_small, _ = cam.project(_points())
    uv_full, _ = full.project(_points())
    assert np.allclose(uv_small, uv_full * [448 / 960, 254 / 544])


def test_each_image_keeps_its_own_size(tmp_path, caplog):
    cams = _cameras(tmp_path, ["a.png", "b.png", "c.png"], size=(64, 48))
    Image.new("RGB", (32, 24)).save(cams[1].image_path)
    Image.new("RGB", (128, 96)).save(cams[2].image_path)
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (480, 640, 500.0), [(1.0, 9.0)] * 3))
    with caplog.at_level(logging.WARNING, logger="splatent"):
        scene = load_scene(tmp_path)
    assert [(c.width, c.fx, c.cy) for c in scene.cameras] == [(64, 50.0, 24.0), (32, 25.0, 12.0), (128, 100.0, 48.0)]
    assert "mixes image sizes" in caplog.text


def test_aspect_mismatch_is_refused(tmp_path):
    cams = _cameras(tmp_path, ["a.png"], size=(64, 64))
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (48, 64, 50.0), [(1.0, 9.0)]))
    with pytest.raises(SceneError, match="a.png is 64x64 but poses_bounds.npy declares 64x48.*aspect ratio"):
        load_scene(tmp_path)


def test_row_count_must_match_images(tmp_path):
    cams = _cameras(tmp_path, [f"{i}.png" for i in range(5)])
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams[:4], (48, 64, 50.0), [(1.0, 9.0)] * 4))
    with pytest.raises(SceneError, match=r"has 4 rows but .*images holds 5 images.*one row per image"):
        load_scene(tmp_path)


@pytest.mark.parametrize("shape,match", [((3, 15), r"shape \(3, 15\).*N x 17"), ((2, 3, 17), "N x 17"), ((0, 17), "N x 17")])
def test_wrong_shape_is_refused(tmp_path, shape, match):
    _cameras(tmp_path, ["a.png"])
    np.save(tmp_path / "poses_bounds.npy", np.ones(shape))
    with pytest.raises(SceneError, match=match):
        load_scene(tmp_path)


def test_unreadable_and_bad_values(tmp_path):
    cams = _cameras(tmp_path, ["a.png"])
    (tmp_path / "poses_bounds.npy").write_bytes(b"not numpy")
    with pytest.raises(SceneError, match="cannot read .*poses_bounds.npy"):
        load_scene(tmp_path)
    rows = _imgs2poses_rows(cams, (48, 64, 50.0), [(1.0, 9.0)])
    bad = rows.copy()
    bad[0, 14] = 0.0  # f
    np.save(tmp_path / "poses_bounds.npy", bad)
    with pytest.raises(SceneError, match="row of a.png has h, w, f = 48, 64, 0"):
        load_scene(tmp_path)
    bad = rows.copy()
    bad[0, 3] = np.nan
    np.save(tmp_path / "poses_bounds.npy", bad)
    with pytest.raises(SceneError, match="NaN"):
        load_scene(tmp_path)
    np.save(tmp_path / "poses_bounds.npy", rows[0])  # one image saved without the row axis
    assert len(load_scene(tmp_path)) == 1


def test_downscaled_folder_by_stem_with_missing_images(tmp_path, caplog):
    cams = _cameras(tmp_path, [f"IMG_{i}.JPG" for i in range(6)], size=(64, 48))
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (48, 64, 50.0), [(i, 10.0 + i) for i in range(6)]))
    for c in cams:  # images_4 as NeRF's _minify writes it: same stems, PNG, a quarter of the size
        (tmp_path / "images_4").mkdir(exist_ok=True)
        Image.new("RGB", (16, 12)).save(tmp_path / "images_4" / f"{c.stem}.png")
    small = load_scene(tmp_path, images="images_4")
    assert small.names == [c.name for c in cams] and small.missing == []
    assert [(c.width, c.fx, c.cx, c.image_path.parent.name) for c in small.cameras[:1]] == [(16, 12.5, 8.0, "images_4")]
    (tmp_path / "images_4" / "IMG_2.png").unlink()
    with caplog.at_level(logging.WARNING, logger="splatent"):
        scene = load_scene(tmp_path, images="images_4")
    assert len(scene) == 5 and scene.missing == ["IMG_2.JPG"] and "1 of 6 frames" in caplog.text
    assert "IMG_2.JPG" not in scene.bounds and scene.bounds["IMG_3.JPG"] == (3.0, 13.0)
    assert scene_summary(scene)["missing"] == 1
    with pytest.raises(SceneError, match="1 of 6 frames.*--strict"):
        load_scene(tmp_path, images="images_4", strict=True)


def test_downscaled_folder_with_other_names_pairs_by_position(tmp_path):
    # LLFF's own minify writes image000.png ...: its loader pairs rows and files by sorted position
    cams = _cameras(tmp_path, ["IMG_b.JPG", "IMG_a.JPG", "IMG_c.JPG"], size=(64, 48))
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(sorted(cams, key=lambda c: c.name), (48, 64, 50.0),
                                                         [(1.0, 9.0)] * 3))
    (tmp_path / "images_8").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 6)).save(tmp_path / "images_8" / f"image{i:03d}.png")
    scene = load_scene(tmp_path, images="images_8")
    assert scene.names == ["IMG_a.JPG", "IMG_b.JPG", "IMG_c.JPG"]
    assert [c.image_path.name for c in scene.cameras] == ["image000.png", "image001.png", "image002.png"]
    assert np.allclose(scene.camera("IMG_b").camtoworld, cams[0].camtoworld)


def test_images_folder_missing(tmp_path):
    cams = _cameras(tmp_path, ["a.png"])
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (48, 64, 50.0), [(1.0, 9.0)]))
    with pytest.raises(SceneError, match="images_2 does not exist"):
        load_scene(tmp_path, images="images_2")


def test_detection_and_precedence(tmp_path):
    cams = _cameras(tmp_path, ["a.png", "b.png"])
    assert find_poses_bounds(tmp_path) is None
    with pytest.raises(SceneError, match="no poses found.*poses_bounds.npy.*splatent scene sfm .*images --output"):
        load_scene(tmp_path)
    with pytest.raises(SceneError, match=r"a.png is a file that holds no poses; pass the scene folder"):  # not "sfm a.png"
        load_scene(tmp_path / "images" / "a.png")
    write_llff(cams, tmp_path)
    assert find_poses_bounds(tmp_path) == tmp_path / "poses_bounds.npy"
    assert load_scene(tmp_path).format == "llff"
    assert load_scene(tmp_path / "poses_bounds.npy").format == "llff"
    write_colmap(cams, tmp_path / "sparse" / "0")  # LLFF scenes often ship their COLMAP model: it wins
    assert load_scene(tmp_path).format == "colmap"
    assert load_scene(tmp_path, fmt="llff").format == "llff"
    with pytest.raises(SceneError, match="no poses_bounds.npy"):
        load_scene(tmp_path / "images", fmt="llff")
    with pytest.raises(SceneError, match="llff"):
        load_scene(tmp_path, fmt="nope")


def test_summary_notes_original_photos_and_bounds(tmp_path):
    cams = _cameras(tmp_path, ["a.png", "b.png", "c.png"], size=(64, 48))
    np.save(tmp_path / "poses_bounds.npy", _imgs2poses_rows(cams, (480, 640, 500.0), [(1.5, 9.0), (0.5, 7.0), (2.0, 30.0)]))
    info = scene_summary(load_scene(tmp_path))
    assert info["format"] == "llff" and info["resolutions"] == {"64x48": 3}
    assert info["original_resolutions"] == {"640x480": 3}
    assert "describe the original photos (640x480)" in info["intrinsics_note"] and "scaled" in info["intrinsics_note"]
    assert info["near_far"] == {"near": [0.5, 2.0], "far": [7.0, 30.0]}
    write_llff(load_scene(tmp_path).cameras, tmp_path)  # h, w, f of the files themselves
    assert "the image files have that size" in scene_summary(load_scene(tmp_path))["intrinsics_note"]


# ---- the real captures in ../shared/data/scenes -------------------------------------------------


@pytest.fixture(scope="module")
def scenes() -> Path:
    if not SCENES.is_dir():
        pytest.skip(f"the real LLFF captures are not at {SCENES} (they ship with the CI machine's shared/ folder)")
    return SCENES


@pytest.mark.parametrize("name", LLFF_SCENES)
def test_real_llff_scene_loads_with_sane_poses(scenes, name):
    scene = load_scene(scenes / name, strict=True)
    assert scene.format == "llff" and len(scene) == len(list_images(scenes / name / "images"))
    assert set(scene.bounds) == set(scene.names) and all(0 < n < f for n, f in scene.bounds.values())
    # every camera looks toward the region its own near/far bounds put the scene in
    look = np.mean([c.center + c.forward * np.sqrt(np.prod(scene.bounds[c.name])) for c in scene.cameras], 0)
    toward = [(look - c.center) @ c.forward / np.linalg.norm(look - c.center) for c in scene.cameras]
    assert np.mean(toward) > 0.9 and min(toward) > 0
    # a mid-depth point straight ahead of a camera projects to its image centre
    for cam in scene.cameras[:: max(1, len(scene) // 5)]:
        uv, depth = cam.project((cam.center + cam.forward * scene.bounds[cam.name][0])[None])
        assert np.allclose(uv[0], [cam.width / 2, cam.height / 2]) and depth[0] > 0


def _sift(image_path):
    import pycolmap

    if not hasattr(pycolmap, "Sift"):
        pytest.skip("this pycolmap has no pycolmap.Sift")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in pycolmap 4, still there
        sift = pycolmap.Sift()
    keypoints, descriptors = sift.extract(np.asarray(Image.open(image_path).convert("L"), dtype=np.float32) / 255.0)
    return np.asarray(keypoints)[:, :2], np.asarray(descriptors, dtype=np.float32)


def _sampson_px(a: Camera, b: Camera, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Distance in pixels of matches ``xa <-> xb`` from the epipolar geometry the two cameras imply."""
    b_from_a = b.worldtocam @ a.camtoworld
    t = b_from_a[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(b.K).T @ tx @ b_from_a[:3, :3] @ np.linalg.inv(a.K)
    ha, hb = np.c_[xa, np.ones(len(xa))], np.c_[xb, np.ones(len(xb))]
    fa, fb = ha @ F.T, hb @ F
    return np.abs(np.sum(hb * fa, 1)) / np.sqrt(fa[:, 0] ** 2 + fa[:, 1] ** 2 + fb[:, 0] ** 2 + fb[:, 1] ** 2)


@pytest.mark.parametrize("name", LLFF_SCENES)
def test_real_llff_poses_agree_with_image_matches(scenes, name):
    """SIFT matches between a view and its nearest view lie on the epipolar lines the parsed poses and
    scaled intrinsics give (median 0.07-0.71 px on these scenes; with x/y swapped or without the OpenGL
    flip, 2.3-32 px): the axis conversion, the row order and the intrinsics scaling are all right."""
    scene = load_scene(scenes / name)
    a = scene.cameras[0]
    b = scene.camera(select_references([a], scene.cameras[1:], 1)[a.stem][0])
    (ka, da), (kb, db) = _sift(a.image_path), _sift(b.image_path)
    angle = np.arccos(np.clip(da @ db.T, -1.0, 1.0))
    order = np.argsort(angle, axis=1)[:, :2]
    best, second = np.take_along_axis(angle, order, axis=1).T
    keep = best < 0.8 * second  # Lowe's ratio test
    assert keep.sum() >= 50
    assert np.median(_sampson_px(a, b, ka[keep], kb[order[keep, 0]])) < 1.5


@pytest.mark.parametrize("name", PHOTO_ONLY)
def test_real_photo_only_scene_points_to_sfm(scenes, name):
    with pytest.raises(SceneError, match=r"no poses found.*poses_bounds.npy.*splatent scene sfm"):
        load_scene(scenes / name)
