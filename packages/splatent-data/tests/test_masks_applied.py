"""nerfstudio's per-frame ``mask_path`` and ``applied_transform`` in transforms.json."""

import json

import numpy as np
import pytest
from PIL import Image

from splatent_data import SceneError, load_mask, load_scene, write_transforms


def _write(tmp_path, make_ring, mask_size=(40, 30), extra=None, frame_extra=None):
    cams = make_ring(tmp_path, n=2, size=(40, 30))
    write_transforms(cams, tmp_path / "transforms.json")
    data = json.loads((tmp_path / "transforms.json").read_text())
    if mask_size:
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.new("L", mask_size, 255).save(tmp_path / "masks" / "0000.png")
        data["frames"][0]["mask_path"] = "masks/0000.png"
    data.update(extra or {})
    data["frames"][0].update(frame_extra or {})
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    return cams


def test_mask_path_is_read_and_written_back(tmp_path, make_ring):
    _write(tmp_path / "a", make_ring)
    scene = load_scene(tmp_path / "a")
    assert scene.camera("0000").mask_path == (tmp_path / "a" / "masks" / "0000.png").resolve()
    assert scene.camera("0001").mask_path is None and scene.masked == 1
    write_transforms(scene.cameras, tmp_path / "b" / "transforms.json")
    frames = json.loads((tmp_path / "b" / "transforms.json").read_text())["frames"]
    assert frames[0]["mask_path"] == "../a/masks/0000.png" and "mask_path" not in frames[1]
    assert load_scene(tmp_path / "b").camera("0000").mask_path == scene.camera("0000").mask_path


def test_mask_at_another_resolution_is_accepted_and_resized(tmp_path, make_ring):
    _write(tmp_path, make_ring, mask_size=(80, 60))
    scene = load_scene(tmp_path)
    assert load_mask(scene.camera("0000").mask_path, (40, 30)).shape == (30, 40)


def test_missing_or_misshapen_mask_is_refused(tmp_path, make_ring):
    _write(tmp_path / "a", make_ring, mask_size=None, frame_extra={"mask_path": "masks/none.png"})
    with pytest.raises(SceneError, match="mask of 0000.png.*does not exist"):
        load_scene(tmp_path / "a")
    _write(tmp_path / "b", make_ring, mask_size=(40, 40))
    with pytest.raises(SceneError, match="another aspect ratio"):
        load_scene(tmp_path / "b")


def test_mask_values_follow_nerfstudio(tmp_path):
    values = np.array([[0, 1, 127], [128, 200, 255]], np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png").tolist() == [[False, False, False], [True, True, True]]
    Image.fromarray(np.repeat(values[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    assert load_mask(tmp_path / "rgb.png").tolist() == [[False, False, False], [True, True, True]]


def test_applied_transform_is_read_as_4x4(tmp_path, make_ring):
    applied = [[0.0, 1.0, 0.0, 0.1], [1.0, 0.0, 0.0, 0.2], [0.0, 0.0, -1.0, 0.3]]
    _write(tmp_path, make_ring, mask_size=None, extra={"applied_transform": applied})
    scene = load_scene(tmp_path)
    assert np.allclose(scene.applied_transform, np.vstack([applied, [0, 0, 0, 1]]))


def test_without_applied_transform_the_legacy_colmap_one_is_assumed(tmp_path, make_ring):
    _write(tmp_path / "a", make_ring, mask_size=None)
    assert load_scene(tmp_path / "a").applied_transform is None
    _write(tmp_path / "b", make_ring, mask_size=None)
    (tmp_path / "b" / "colmap" / "sparse" / "0").mkdir(parents=True)
    assert np.allclose(load_scene(tmp_path / "b").applied_transform[:3],
                       [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]])


@pytest.mark.parametrize("bad", [[[1, 0], [0, 1]], [[0.0] * 4] * 3, "eye", [[float("nan")] * 4] * 3])
def test_bad_applied_transform_is_refused(tmp_path, make_ring, bad):
    _write(tmp_path, make_ring, mask_size=None, extra={"applied_transform": bad})
    with pytest.raises(SceneError, match="applied_transform must be a finite, invertible"):
        load_scene(tmp_path)
