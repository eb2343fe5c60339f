import json

import pytest

from splatent_data import (
    DatasetFormatError, RenderLayout, SceneError, build_dataset, read_dataset_json, resolve_image_path, write_dataset_json,
    write_transforms,
)


def _renders(root, stems_nvs, stems_train, with_train_renders=False):
    layout = RenderLayout(root)
    for folder, stems in (("nvs", stems_nvs), ("nvs_gt", stems_nvs), ("train_gt", stems_train)) + \
            ((("train", stems_train),) if with_train_renders else ()):
        layout.folder(folder).mkdir(parents=True, exist_ok=True)
        for s in stems:
            layout.latent(folder, s).write_bytes(b"x")


@pytest.fixture
def rendered(tmp_path, make_ring):
    cams = make_ring(tmp_path / "scene", n=16)
    write_transforms(cams, tmp_path / "scene" / "transforms.json")
    stems = [c.stem for c in cams]
    test = stems[::8]
    _renders(tmp_path / "renders" / "scene", test, [s for s in stems if s not in test], with_train_renders=True)
    return tmp_path


def test_build_and_read_round_trip(rendered):
    entries = build_dataset(rendered / "renders", rendered / "scene", top_k=3)
    out = rendered / "data" / "dataset.json"
    write_dataset_json(out, entries)
    spec = read_dataset_json(out)
    test, train = spec.split("test"), spec.split("train")
    assert [e.id for e in test] == ["scene_0000", "scene_0008"]
    assert len(train) == 14  # every training view, rendered, with its references
    e = test[0]
    assert e.feature.parent.name == "nvs" and e.target_feature.parent.name == "nvs_gt"
    assert [p.stem for p in e.ref_features] == ["0001", "0015", "0002"] or \
        [p.stem for p in e.ref_features][:2] in (["0001", "0015"], ["0015", "0001"])
    assert all(p.parent.name == "train_gt" for e in spec.entries for p in e.ref_features)
    assert all(e.feature.stem not in [p.stem for p in e.ref_features] for e in train)
    raw = json.loads(out.read_text())
    assert set(raw) == {"train", "test"} and set(raw["test"]["scene_0000"]) == {"feature", "target_feature", "ref_features", "prompt"}


def test_benchmark_puts_everything_in_test(rendered):
    entries = build_dataset(rendered / "renders" / "scene", rendered / "scene", top_k=2, benchmark=True)
    assert {e.split for e in entries} == {"test"} and len(entries) == 2


def test_top_k_zero_and_wrong_scene(rendered):
    with pytest.raises(SceneError, match="at least 1"):
        build_dataset(rendered / "renders", rendered / "scene", top_k=0)
    (rendered / "renders" / "scene" / "nvs" / "zzz.pt").write_bytes(b"x")
    with pytest.raises(SceneError, match="render zzz in .* has no camera"):
        build_dataset(rendered / "renders", rendered / "scene", top_k=1)


def test_no_rendered_scene(tmp_path):
    with pytest.raises(SceneError, match="nvs/, nvs_gt/ and train_gt/"):
        build_dataset(tmp_path, tmp_path, top_k=1)


def _write(tmp_path, data):
    p = tmp_path / "d.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


GOOD = {"feature": "a.pt", "target_feature": "b.pt", "ref_features": ["c.pt"], "prompt": "p"}


@pytest.mark.parametrize("data,match", [
    ("{oops", "not valid JSON"),
    ([], "JSON object"),
    ({"val": {}}, "'train' and/or 'test'"),
    ({"train": {}, "extra": {}}, "unknown top-level key 'extra'"),
    ({"train": []}, "'train' must be an object"),
    ({"train": {"x": 3}}, "entry 'x' in 'train'"),
    ({"train": {"x": {**GOOD, "feature": 5}}}, "entry 'x'.*'feature'"),
    ({"test": {"y": {**GOOD, "target_feature": ""}}}, "entry 'y' in 'test'.*'target_feature'"),
    ({"train": {"x": {**GOOD, "ref_features": "c.pt"}}}, "'ref_features'"),
    ({"train": {"x": {**GOOD, "ref_features": []}}}, "'ref_features'"),
    ({"train": {"x": {**GOOD, "prompt": 1}}}, "'prompt'"),
    ({"train": {}, "test": {}}, "no entries"),
])
def test_reader_rejects_malformed(tmp_path, data, match):
    with pytest.raises(DatasetFormatError, match=match):
        read_dataset_json(_write(tmp_path, data), check_files=False)


def test_reader_checks_files_and_resolves_relative(tmp_path):
    for n in ("a.pt", "b.pt"):
        (tmp_path / n).write_bytes(b"x")
    with pytest.raises(DatasetFormatError, match="entry 'x'.*'ref_features' points to .*c.pt"):
        read_dataset_json(_write(tmp_path, {"train": {"x": GOOD}}))
    (tmp_path / "c.pt").write_bytes(b"x")
    spec = read_dataset_json(_write(tmp_path, {"train": {"x": GOOD}}))
    assert spec.entries[0].feature == tmp_path / "a.pt"
    with pytest.raises(DatasetFormatError, match="does not exist"):
        read_dataset_json(tmp_path / "none.json")
    (tmp_path / "latin1.json").write_bytes('{"train": {"é": 1}}'.encode("latin-1"))
    with pytest.raises(DatasetFormatError, match="is not UTF-8 text"):
        read_dataset_json(tmp_path / "latin1.json")


def test_resolve_image_path(tmp_path):
    from PIL import Image

    (tmp_path / "s1" / "train").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "s1" / "train" / "f.png")
    assert resolve_image_path(tmp_path / "s1" / "train" / "f.pt") == tmp_path / "s1" / "train" / "f.png"
    (tmp_path / "rgb" / "s1" / "images_4").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "rgb" / "s1" / "images_4" / "f.jpg")
    assert resolve_image_path(tmp_path / "s1" / "train" / "f.pt", tmp_path / "rgb") == \
        tmp_path / "rgb" / "s1" / "images_4" / "f.jpg"
    assert resolve_image_path(tmp_path / "s1" / "train" / "g.pt") is None


def test_train_renders_can_be_left_out(rendered):
    entries = build_dataset(rendered / "renders", rendered / "scene", top_k=2, train_renders=False)
    assert {e.split for e in entries} == {"test"} and len(entries) == 2


def test_a_view_with_no_other_training_view_is_left_out_with_a_warning(tmp_path, make_ring, caplog):
    """One training view, rendered: its only candidate reference is itself, so its entry would have none and the
    written JSON would be refused by its own reader."""
    import logging

    cams = make_ring(tmp_path / "scene", n=3)
    write_transforms(cams, tmp_path / "scene" / "transforms.json")
    _renders(tmp_path / "renders" / "scene", ["0000", "0001"], ["0002"], with_train_renders=True)
    with caplog.at_level(logging.WARNING, logger="splatent"):
        entries = build_dataset(tmp_path / "renders", tmp_path / "scene", top_k=2)
    assert sorted(e.id for e in entries) == ["scene_0000", "scene_0001"] and all(e.ref_features for e in entries)
    assert "1 view(s) have no other training view" in caplog.text and "0002" in caplog.text
    write_dataset_json(tmp_path / "dataset.json", entries)
    assert len(read_dataset_json(tmp_path / "dataset.json", check_files=False).entries) == 2
