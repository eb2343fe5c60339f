import json

import pytest

from splatent_data import SceneError, llff_split, read_split_file


def test_llff_every_eighth_from_first():
    stems = [f"{i:03d}" for i in range(20)][::-1]
    split = llff_split(stems)
    assert split.test == ("000", "008", "016")
    assert len(split.train) == 17 and not set(split.train) & set(split.test)
    assert split.of("008") == "test" and split.of("001") == "train"


def test_llff_rejects_every_one():
    with pytest.raises(SceneError):
        llff_split(["a", "b"], every=1)


def test_split_file(tmp_path):
    f = tmp_path / "split.json"
    f.write_text(json.dumps({"test": ["images/b.png"]}))
    split = read_split_file(f, ["a", "b", "c"])
    assert split.test == ("b",) and split.train == ("a", "c")
    f.write_text(json.dumps({"test": ["z"]}))
    with pytest.raises(SceneError, match="lacks"):
        read_split_file(f, ["a"])
    f.write_text(json.dumps({"train": ["a"], "test": ["a"]}))
    with pytest.raises(SceneError, match="both"):
        read_split_file(f, ["a"])


@pytest.mark.parametrize("data", [{"test": ["c"], "train": "ab"}, {"test": [["c"]]}, {"test": ["c"], "train": [True]}])
def test_split_file_lists_must_hold_names(tmp_path, data):
    # "train": "ab" was read as the views a and b (its letters), silently another split
    f = tmp_path / "split.json"
    f.write_text(json.dumps(data))
    with pytest.raises(SceneError, match="must be a list of view names"):
        read_split_file(f, ["a", "b", "c", "ab"])


def test_split_file_matches_stems_with_dots(tmp_path):
    # "1695.100" (a timestamp) lost ".100" as if it were an extension: the view was "not in the scene"
    f = tmp_path / "split.json"
    f.write_text(json.dumps({"test": ["1695.100"], "train": ["images/1695.200.png"]}))
    split = read_split_file(f, ["1695.100", "1695.200", "1695.300"])
    assert split.test == ("1695.100",) and split.train == ("1695.200",)
