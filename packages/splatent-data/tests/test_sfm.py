from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatent_data import PointCloud, SceneError, load_scene, run_sfm, scene_summary, write_colmap
from splatent_data.sfm import (
    EXHAUSTIVE_MAX_IMAGES, MappingProgress, camera_warnings, choose_matcher, keep_largest_model,
)

KITCHEN = Path(__file__).resolve().parents[4] / "shared" / "data" / "scenes" / "kitchen_subset" / "images"


def test_auto_matcher_is_exhaustive_up_to_the_limit():
    assert EXHAUSTIVE_MAX_IMAGES == 200
    for n in (2, 25, 97, 200):
        matcher, why = choose_matcher("auto", n)
        assert matcher == "exhaustive" and f"for {n} photos (<= 200)" in why
    matcher, why = choose_matcher("auto", 201)
    assert matcher == "sequential" and "for 201 photos (> 200)" in why and "--matcher exhaustive" in why
    assert choose_matcher("sequential", 25)[0] == "sequential"
    assert choose_matcher("exhaustive", 5000)[0] == "exhaustive"
    with pytest.raises(SceneError, match="auto, sequential, exhaustive"):
        choose_matcher("vocab_tree", 25)


def test_progress_counts_the_largest_model_not_all_registrations():
    seen, models = [], []
    progress = MappingProgress(seen.append, models.append)
    for registrations in (3, 5, 1):  # three models: 2 + 3, 2 + 5, 2 + 1 images
        progress.initial_pair()
        for _ in range(registrations):
            progress.next_image()
    assert models == [1, 2, 3] and progress.largest == 7
    assert seen == [2, 3, 4, 5, 6, 7]  # never 5 + 7 + 3 = 15


def test_the_largest_model_is_kept_and_reported(tmp_path, make_ring):
    import pycolmap

    cams = make_ring(tmp_path, n=10)  # photos in tmp_path/images
    pts = PointCloud(np.random.default_rng(0).normal(size=(40, 3)), None)
    write_colmap(cams[:6], tmp_path / "sparse" / "0", pts)
    write_colmap(cams[6:9], tmp_path / "sparse" / "1")
    models = {i: pycolmap.Reconstruction(str(tmp_path / "sparse" / str(i))) for i in (0, 1)}
    result = keep_largest_model(models, tmp_path, [c.name for c in cams], matcher="exhaustive")
    assert (result.images, result.registered, result.points, result.models) == (10, 6, 40, 2)
    assert result.unregistered == tuple(c.name for c in cams[6:])
    assert result.summary().startswith("registered 6/10 images, 40 points, mean reprojection error")
    assert "2 separate models were reconstructed, the largest was kept" in result.summary()
    assert sorted(p.name for p in (tmp_path / "sparse").iterdir()) == ["0"]
    info = scene_summary(load_scene(tmp_path))
    assert (info["images"], info["unregistered"], info["points"]) == (6, 4, 40)
    one = keep_largest_model({0: models[1]}, tmp_path, [c.name for c in cams])
    assert one.registered == 3 and "separate models" not in one.summary()


def test_too_few_or_textureless_photos_fail_clearly(tmp_path):
    (tmp_path / "one").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "one" / "a.png")
    with pytest.raises(SceneError, match="at least 2"):
        run_sfm(tmp_path / "one", tmp_path / "out1")
    (tmp_path / "flat").mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (100, 100, 100)).save(tmp_path / "flat" / f"{i}.png")
    with pytest.raises(SceneError, match="registered no images"):
        run_sfm(tmp_path / "flat", tmp_path / "out2")
    with pytest.raises(SceneError, match="unknown matcher 'fast'"):
        run_sfm(tmp_path / "flat", tmp_path / "out3", matcher="fast")


def test_existing_reconstruction_needs_overwrite(tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "out" / "sparse" / "0").mkdir(parents=True)
    with pytest.raises(SceneError, match="--overwrite"):
        run_sfm(tmp_path / "imgs", tmp_path / "out")


@pytest.mark.slow
def test_fox_registers_at_least_45_of_50(fox, tmp_path):
    # About 70 s on 2 cores at max_image_size=1000 (50 of 50 registered when measured). Sequential
    # matching, as the fox is an ordered capture: auto's exhaustive choice also registers 50 but takes 134 s.
    result = run_sfm(fox / "images", tmp_path / "fox", matcher="sequential", max_image_size=1000)
    assert result.registered >= 45 and result.points > 1000 and result.mean_reprojection_error < 2.0
    scene = load_scene(tmp_path / "fox")
    assert len(scene) == result.registered and scene.points is not None
    assert np.isfinite(np.stack([c.camtoworld for c in scene.cameras])).all()


def test_far_apart_focal_lengths_are_flagged(tmp_path, make_ring):
    import dataclasses

    import pycolmap

    cams = make_ring(tmp_path, n=2, model="OPENCV", distortion=(0.0, 0.0, 0.0, 0.0), write=False)
    write_colmap(cams, tmp_path / "square")  # fx / fy = 0.9 / 0.92
    assert camera_warnings(pycolmap.Reconstruction(str(tmp_path / "square"))) == []
    write_colmap([dataclasses.replace(c, fy=c.fx / 10) for c in cams], tmp_path / "squashed")  # lund_street's 9.9x
    warnings = camera_warnings(pycolmap.Reconstruction(str(tmp_path / "squashed")))
    assert len(warnings) == 2 and "(10.0x apart); the model is probably degenerate" in warnings[0]
    write_colmap([dataclasses.replace(c, distortion=(45.4, -3793.0, 0.0, 0.0)) for c in cams], tmp_path / "warped")
    warnings = camera_warnings(pycolmap.Reconstruction(str(tmp_path / "warped")))
    assert len(warnings) == 2 and "has distortion 45.4, -3.79e+03, 0, 0 (beyond +-1)" in warnings[0]


def test_kitchen_subset_reports_the_kept_model(tmp_path):
    # About 9 s on 2 cores: 25 unordered photos at 448 px, all 300 pairs matched.
    if not KITCHEN.is_dir():
        pytest.skip(f"the kitchen_subset photos are not at {KITCHEN} (they ship with the CI machine's shared/ folder)")
    seen = []
    result = run_sfm(KITCHEN, tmp_path / "kitchen", matcher="exhaustive", on_registered=seen.append)
    # 19 of 25 when measured (17 with COLMAP's abs_pose_min_num_inliers of 30)
    assert result.images == 25 and 17 <= result.registered < 25 and result.mean_reprojection_error < 1.0
    assert seen[-1] == result.registered and max(seen) <= 25  # the kept model's count, not a sum over models
    assert len(result.unregistered) == 25 - result.registered
    info = scene_summary(load_scene(tmp_path / "kitchen"))
    assert (info["images"], info["unregistered"], info["points"]) == (result.registered, 25 - result.registered,
                                                                       result.points)
    assert info["unregistered_names"] == list(result.unregistered[:10])
