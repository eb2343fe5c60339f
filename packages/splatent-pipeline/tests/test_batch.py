"""``splatent pipeline --scenes``: several scenes into one dataset, test scenes never trained on, pairs only
of views the producing fit never saw, resumable per scene, one broken scene reported without losing the rest."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from splatent_data import make_synthetic_scene, read_dataset_json
from splatent_pipeline import BatchConfig, run_batch

FIT = {"init_points": 500, "eval_every": 1000, "tensorboard": False}


def _config(root, **over):
    base = dict(scenes_dir=root / "scenes", output_dir=root / "out", codec="pca", steps=20, top_k=2,
                fit_options=FIT, backend="torch", device="cpu", test_scenes=["c"])
    return BatchConfig(**{**base, **over})


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("batch")
    for i, name in enumerate(("a", "b", "c")):
        make_synthetic_scene(root / "scenes" / name, n_views=12, width=64, height=48, seed=i)
    (root / "scenes" / "notes").mkdir()  # not a scene: ignored
    (root / "scenes" / "photos" / "images").mkdir(parents=True)  # photos without poses: listed, not run
    lines: list[str] = []
    result = run_batch(_config(root, pairs="both", folds=2), say=lines.append)
    return root, result, lines


def _fit_train_views(root, scene):
    return set(json.loads((root / "out" / "scenes" / scene / "model" / "fit.json").read_text())["split"]["train"])


def test_one_dataset_with_test_scenes_kept_out_of_training(batch):
    root, result, _ = batch
    assert [(r.name, r.status) for r in result.scenes] == [("a", "done"), ("b", "done"), ("c", "done"),
                                                          ("photos", "no poses")]
    spec = read_dataset_json(result.dataset)
    scene_of = lambda e: e.feature.parts[e.feature.parts.index("out") + 2]  # noqa: E731  out/scenes|holdout/<scene>/
    test = spec.split("test")
    train = spec.split("train")
    assert test and {scene_of(e) for e in test} == {"c"}
    assert train and {scene_of(e) for e in train} == {"a", "b"}
    manifest = json.loads((root / "out" / "data" / "dataset.manifest.json").read_text())
    assert manifest["scenes"] == {"train": ["a", "b"], "test": ["c"]} and manifest["pairs"] == "both"
    assert manifest["protocols"] == {"a": "llff", "b": "llff", "c": "llff"}


def test_pairs_never_show_a_view_their_fit_trained_on(batch):
    root, result, _ = batch
    for e in read_dataset_json(result.dataset).entries:
        render_dir = e.feature.parent.parent  # <renders of one fit>/nvs/<stem>.pt
        fit_json = json.loads((render_dir / "manifest.json").read_text())
        assert e.feature.stem in fit_json["split"]["test"] and e.feature.stem not in fit_json["split"]["train"]
        assert all(r.stem in fit_json["split"]["train"] for r in e.ref_features)  # references: its inputs
    ids = [e.id for e in read_dataset_json(result.dataset).entries]
    assert len(ids) == len(set(ids))
    assert any("_holdout_" in i for i in ids) and any("_holdout_" not in i for i in ids if i.startswith(("a", "b")))


def test_summary_table_and_record(batch):
    root, result, _ = batch
    table = result.table()
    assert table.count("\n") == 5 and "| c | test | done |" in table and "| photos | - | no poses" in table
    record = json.loads((root / "out" / "batch.json").read_text())
    assert [s["name"] for s in record["scenes"]] == ["a", "b", "c", "photos"] and record["entries"]["test"] > 0


def test_a_rerun_resumes_per_scene_and_a_broken_scene_loses_nothing(batch):
    root, first, _ = batch
    before = (root / "out" / "scenes" / "a" / "model" / "fit.json").stat().st_mtime_ns
    shutil.copytree(root / "scenes" / "c", root / "scenes" / "d")
    for image in sorted((root / "scenes" / "d" / "images").iterdir())[:3]:
        image.write_bytes(b"not an image")
    lines: list[str] = []
    result = run_batch(_config(root, pairs="both", folds=2), say=lines.append)
    status = {r.name: r.status for r in result.scenes}
    assert status["a"] == status["b"] == status["c"] == "skipped"
    assert status["d"] == "failed" and next(r for r in result.scenes if r.name == "d").error
    assert (root / "out" / "scenes" / "a" / "model" / "fit.json").stat().st_mtime_ns == before
    assert any("a: [holdout] up to date, skipped" in line for line in lines)
    assert len(read_dataset_json(result.dataset).entries) == len(read_dataset_json(first.dataset).entries)


SCRIPT = """
import sys, json
from pathlib import Path
import torch
from accelerate import PartialState
from splatent_pipeline import BatchConfig, run_batch

torch.set_num_threads(1)
root = Path(sys.argv[1])
lines = []
cfg = BatchConfig(scenes_dir=root / "scenes", output_dir=root / "out", codec="pca", steps=10, top_k=2,
                  fit_options={"init_points": 300, "eval_every": 1000, "tensorboard": False}, backend="torch",
                  device="cpu", test_scenes=["d"])
result = run_batch(cfg, say=lines.append)
state = PartialState()
ran = [l.split(":")[0] for l in lines if l.endswith("[fit] running")]
(root / f"ran{state.process_index}.json").write_text(json.dumps({"ran": ran, "processes": state.num_processes}))
state.destroy_process_group()  # a program's end under accelerate launch (as the splatent CLI's): gloo aborts at exit otherwise
"""


def test_scenes_split_across_two_processes_under_accelerate_launch(tmp_path):
    """Two CPU processes (gloo): each scene fitted by exactly one of them, one merged dataset JSON."""
    import subprocess
    import sys

    for i, name in enumerate("abcd"):
        make_synthetic_scene(tmp_path / "scenes" / name, n_views=10, width=48, height=32, seed=i)
    (tmp_path / "batch.py").write_text(SCRIPT)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           str(tmp_path / "batch.py"), str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads((tmp_path / f"ran{i}.json").read_text()) for i in (0, 1)]
    assert all(r["processes"] == 2 for r in runs)
    fitted = runs[0]["ran"] + runs[1]["ran"]
    assert sorted(fitted) == ["a", "b", "c", "d"] and runs[0]["ran"] and runs[1]["ran"]  # each once, both busy
    spec = read_dataset_json(tmp_path / "out" / "data" / "dataset.json")
    assert {e.feature.parts[-3] for e in spec.split("test")} == {"d"}
    assert {e.feature.parts[-3] for e in spec.split("train")} == {"a", "b", "c"}


def test_holdout_pairs_of_scenes_read_from_another_image_folder(tmp_path):
    """--images images_2 with --pairs holdout: the fold fits loaded the scene from images/ (and then looked for
    images_2/ inside the fold scenes), so every training scene failed."""
    torch.set_num_threads(1)
    for i, name in enumerate(("a", "c")):
        make_synthetic_scene(tmp_path / "scenes" / name, n_views=12, width=64, height=48, seed=i)
        (tmp_path / "scenes" / name / "images").rename(tmp_path / "scenes" / name / "images_2")
    result = run_batch(_config(tmp_path, pairs="holdout", folds=2, images="images_2"), say=lambda _: None)
    assert [(r.name, r.status, r.error) for r in result.scenes] == [("a", "done", None), ("c", "done", None)]
    entries = read_dataset_json(result.dataset).entries
    assert {e.split for e in entries} == {"train", "test"}
    assert all("_holdout_" in e.id for e in entries if e.split == "train")
