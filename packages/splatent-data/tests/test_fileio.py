"""Atomic writes."""

import json

import pytest

from splatent_data.fileio import atomic_write_bytes, atomic_write_json


def test_atomic_write_json_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_a_folder_in_the_way_is_named_and_kept(tmp_path):
    """The error named the hidden temporary file (``.out.123.tmp: is a folder``), not the folder the caller gave."""
    folder = tmp_path / "out"
    (folder / "kept").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as raised:
        atomic_write_bytes(folder, b"x")
    assert raised.value.filename == str(folder)
    assert [p.name for p in folder.iterdir()] == ["kept"] and [p.name for p in tmp_path.iterdir()] == ["out"]
