"""`splatent pipeline`: an option the chosen mode (one scene, or --scenes) does not use is refused, not ignored."""

from __future__ import annotations

import pytest


def test_save_images_with_scenes_is_refused_before_anything_runs(cli, tmp_path):
    (tmp_path / "scenes").mkdir()
    run = cli("pipeline", "--scenes", tmp_path / "scenes", "--output_dir", tmp_path / "out", "--save_images")
    assert run.returncode == 1
    assert "--save_images" in run.stderr and "one scene" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", [["--pairs", "holdout"], ["--folds", "3"], ["--test_scenes", "a,b"],
                                    ["--test_fraction", "0.2"], ["--seed", "1"], ["--benchmark_path", "bench"]])
def test_scenes_only_options_with_one_scene_are_refused(cli, tmp_path, option):
    run = cli("pipeline", "--scene_path", tmp_path / "missing", "--output_dir", tmp_path / "out", *option)
    assert run.returncode == 1
    assert option[0] in run.stderr and "--scenes" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()
