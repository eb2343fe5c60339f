from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from splatent_data import DatasetEntry, read_dataset_json, save_rgb
from splatent_train import (
    EnhancerDataset, StreamSampler, TrainError, check_entries, collate_samples, crop_box, resolve_codec,
)
from splatent_train.data import EntryError, global_batch_start, read_image


def entries(path: Path, split: str) -> list[DatasetEntry]:
    return read_dataset_json(path).split(split)


def test_crop_cuts_latent_and_image_at_the_same_window(degraded_dataset):
    """Encoding the cropped image gives exactly the cropped latent: the windows correspond pixel for pixel."""
    codec = resolve_codec("auto", entries(degraded_dataset, "train"))
    train = entries(degraded_dataset, "train")
    ds = EnhancerDataset(train, ["A photo of a scene"], top_k=3, crop=8)
    sample = ds[(0, 1234)]
    assert sample["views"].shape == (4, 4, 8, 8) and sample["image"].shape == (3, 64, 64)
    image = sample["image"].float()[None] / 255
    assert torch.allclose(codec.encode(image)[0], sample["target"], atol=0.02)  # uint8 rounding of the PNG
    # the window moves with the draw, and is the same for the same draw
    other = ds[(0, 99)]
    assert torch.equal(ds[(0, 1234)]["target"], sample["target"])
    assert not torch.equal(other["target"], sample["target"])
    # no draw: centre crop
    h, w = 12, 16
    assert crop_box(h, w, 8) == (2, 4, 8, 8) and crop_box(h, w, 0) == (0, 0, 12, 16) and crop_box(h, w, 64) == (0, 0, 12, 16)


def test_sampler_is_resumable_and_shards_like_one_big_batch():
    one = StreamSampler(10, batch_size=4, seed=3)
    stream = [x for _, x in zip(range(40), one)]
    assert sorted(i for i, _ in stream[:10]) == list(range(10))  # an epoch is a permutation
    assert [s for _, s in stream] == list(range(40))
    # two processes with batch 2 see, together, each global batch of the single process with batch 4
    r0 = [x for _, x in zip(range(20), StreamSampler(10, 2, seed=3, rank=0, world=2))]
    r1 = [x for _, x in zip(range(20), StreamSampler(10, 2, seed=3, rank=1, world=2))]
    for g in range(10):
        assert r0[2 * g:2 * g + 2] + r1[2 * g:2 * g + 2] == stream[4 * g:4 * g + 4]
    # resuming at sample 12 continues the same stream
    resumed = [x for _, x in zip(range(8), StreamSampler(10, 4, seed=3, start=12))]
    assert resumed == stream[12:20]
    assert global_batch_start(13, 2, 2) == 12


def test_collate_crops_mixed_sizes_to_the_smallest_and_keeps_problems():
    from splatent_train import EntryProblem

    def item(h, w, i):
        return {"index": i, "id": f"e{i}", "views": torch.randn(2, 4, h, w), "target": torch.randn(4, h, w),
                "image": torch.zeros(3, 8 * h, 8 * w, dtype=torch.uint8), "prompt": 0}

    big, small = item(10, 12, 0), item(6, 8, 1)
    batch = collate_samples([big, small, {"index": 2, "problem": EntryProblem("e2", "bad")}])
    assert batch.views.shape == (2, 2, 4, 6, 8) and batch.images.shape == (2, 3, 48, 64)
    assert torch.equal(batch.target[0], big["target"][:, 2:8, 2:10])
    assert batch.ids == ["e0", "e1"] and batch.problems[0].id == "e2"
    empty = collate_samples([{"index": 0, "problem": EntryProblem("x", "y")}])
    assert len(empty) == 0 and empty.views is None


def test_broken_entries_are_found_and_named(degraded_dataset, tmp_path):
    train = entries(degraded_dataset, "train")
    few_refs = DatasetEntry("few", "train", train[0].feature, train[0].target_feature, train[0].ref_features[:1])
    missing = DatasetEntry("gone", "train", tmp_path / "nope.pt", train[0].target_feature, train[0].ref_features)
    good, problems = check_entries([train[0], few_refs, missing], top_k=3)
    assert [e.id for e in good] == [train[0].id]
    reasons = {p.id: p.reason for p in problems}
    assert "has 1 references but --top_k 3" in reasons["few"]
    assert "nope.pt" in reasons["gone"]

    # no image beside the target and no --rgb_root
    moved = tmp_path / "gt"
    moved.mkdir()
    shutil.copy(train[1].target_feature, moved / train[1].target_feature.name)
    no_image = DatasetEntry("noimg", "train", train[1].feature, moved / train[1].target_feature.name,
                            train[1].ref_features)
    _, problems = check_entries([no_image], top_k=3)
    assert "no ground-truth image" in problems[0].reason and "--rgb_root" in problems[0].reason
    assert check_entries([no_image], top_k=3, need_images=False)[0] == [no_image]

    # a corrupt latent is only found when loading: the sample says so by id
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a tensor")
    bad = DatasetEntry("corrupt", "train", corrupt, train[2].target_feature, train[2].ref_features)
    ds = EnhancerDataset([train[2], bad], ["A photo of a scene"], top_k=3, load_images=False)
    assert "problem" not in ds[0]
    problem = ds[1]["problem"]
    assert problem.id == "corrupt" and "corrupt.pt" in problem.reason


def test_rgb_root_and_aspect_checks(degraded_dataset, tmp_path):
    train = entries(degraded_dataset, "train")
    scene_images = degraded_dataset.parent / "scenes" / "synth" / "images"
    # --rgb_root: <root>/<scene>/<images_dir>/<stem>.png, the scene being the render folder's name
    ds = EnhancerDataset(train[:1], ["A photo of a scene"], top_k=3, rgb_root=scene_images.parent.parent,
                         images_dir="images")
    assert ds[0]["image"].shape == (3, 96, 128)
    # an image of another aspect ratio is refused, one of the same ratio is resized
    wrong = tmp_path / "wrong.png"
    save_rgb(wrong, np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(EntryError, match="another aspect ratio"):
        read_image(wrong, 12, 16)
    twice = tmp_path / "twice.png"
    save_rgb(twice, np.zeros((192, 256, 3), np.uint8))
    assert read_image(twice, 12, 16).shape == (3, 96, 128)
    # one of the right ratio but smaller (images_8 beside latents of images_4) would be a blurred target
    half = tmp_path / "half.png"
    save_rgb(half, np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(EntryError, match="64x48, smaller than its latent 16x12 x8 = 128x96"):
        read_image(half, 12, 16)


def test_codec_is_found_from_the_render_manifest(degraded_dataset, tmp_path):
    codec = resolve_codec("auto", entries(degraded_dataset, "test"))
    assert codec.name == "pca" and codec.fitted
    latents = degraded_dataset.parent / "scenes" / "synth" / "features_sd_turbo"
    assert resolve_codec(str(latents), []).name == "pca"
    with pytest.raises(TrainError, match="--codec pca needs its basis"):
        resolve_codec("pca", [])
    lonely = tmp_path / "r" / "nvs_gt"
    lonely.mkdir(parents=True)
    (lonely / "0.pt").write_bytes(b"")
    entry = DatasetEntry("x", "train", lonely / "0.pt", lonely / "0.pt", (lonely / "0.pt",))
    with pytest.raises(TrainError, match="cannot tell which codec"):
        resolve_codec("auto", [entry])
    gone = DatasetEntry("y", "train", tmp_path / "gone.pt", tmp_path / "gone_gt.pt", ())
    with pytest.raises(TrainError, match="entry 'y': target_feature .*gone_gt.pt does not exist"):
        resolve_codec("auto", [gone])  # the missing file is named, not the codec
    # one missing entry first in the dataset: the next one tells the codec (the entry check drops the missing one)
    assert resolve_codec("auto", [gone, *entries(degraded_dataset, "test")]).name == "pca"
    manifest = json.loads((degraded_dataset.parent / "renders" / "synth" / "manifest.json").read_text())
    assert manifest["stage"] == "render"
