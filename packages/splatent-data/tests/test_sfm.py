import numpy as np
import pytest
from PIL import Image

from splatent_data import SceneError, load_scene, run_sfm


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


def test_existing_reconstruction_needs_overwrite(tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "out" / "sparse" / "0").mkdir(parents=True)
    with pytest.raises(SceneError, match="--overwrite"):
        run_sfm(tmp_path / "imgs", tmp_path / "out")


@pytest.mark.slow
def test_fox_registers_at_least_45_of_50(fox, tmp_path):
    # About 50 s on 2 cores at max_image_size=1000 (50 of 50 registered when measured).
    result = run_sfm(fox / "images", tmp_path / "fox", max_image_size=1000)
    assert result.registered >= 45 and result.points > 1000 and result.mean_reprojection_error < 2.0
    scene = load_scene(tmp_path / "fox")
    assert len(scene) == result.registered and scene.points is not None
    assert np.isfinite(np.stack([c.camtoworld for c in scene.cameras])).all()
