"""The paper's view protocols (dense 30 / sparse 5 input views by furthest-point sampling) and the
original's scene-level 90/10 split."""

import json

import numpy as np
import pytest

from splatent_data import (
    PROTOCOLS, RenderLayout, SceneError, build_dataset, furthest_point_views, load_scene, split_scene,
    split_scene_names, write_transforms,
)


def _names(n):
    return [f"{i:04d}" for i in range(n)]


def test_furthest_point_sampling_spreads_views_on_a_ring():
    n = 40
    a = 2 * np.pi * np.arange(n) / n
    ring = np.stack([np.cos(a), np.sin(a), np.zeros(n)], axis=1)
    chosen = furthest_point_views(_names(n), ring, 4)
    idx = sorted(int(c) for c in chosen)
    gaps = np.diff(idx + [idx[0] + n])
    assert set(gaps) == {10}, idx  # four views a quarter turn apart
    # the same cameras in another file order give the same views
    perm = np.random.default_rng(0).permutation(n)
    assert furthest_point_views([_names(n)[i] for i in perm], ring[perm], 4) == chosen


def test_furthest_point_sampling_never_takes_a_view_twice_where_centres_coincide():
    """A rig or a tripod sequence: several cameras at one centre. The split must still hold distinct views."""
    centres = np.array([[0.0, 0.0, 0.0]] * 4 + [[1.0, 0.0, 0.0]] * 2)
    chosen = furthest_point_views(_names(6), centres, 5)
    assert len(set(chosen)) == 5


def test_furthest_point_sampling_on_a_line_starts_in_the_middle_then_takes_the_ends():
    line = np.stack([np.arange(11.0), np.zeros(11), np.zeros(11)], axis=1)
    assert furthest_point_views(_names(11), line, 3) == ["0005", "0000", "0010"]
    # then the middles of the two halves; ties go to the smaller name (0002 over 0003, 0007 over 0008)
    assert furthest_point_views(_names(11), line, 5) == ["0005", "0000", "0010", "0002", "0007"]


@pytest.mark.parametrize("seed", range(5))
def test_each_new_view_is_the_farthest_from_those_chosen(seed):
    pts = np.random.default_rng(seed).normal(size=(60, 3))
    names = _names(60)
    chosen = furthest_point_views(names, pts, 12)
    assert len(set(chosen)) == 12
    index = {n: i for i, n in enumerate(names)}
    for k in range(1, 12):
        picked = pts[[index[c] for c in chosen[:k]]]
        dist = np.min(np.linalg.norm(pts[:, None] - picked[None], axis=2), axis=1)
        assert dist[index[chosen[k]]] == pytest.approx(dist.max())


def test_dense_and_sparse_protocols_on_a_scene(tmp_path, make_ring):
    cams = make_ring(tmp_path / "s", n=40)
    write_transforms(cams, tmp_path / "s" / "transforms.json")
    scene = load_scene(tmp_path / "s")
    assert "dense" in PROTOCOLS and "sparse" in PROTOCOLS
    for protocol, views in (("dense", 30), ("sparse", 5)):
        split = split_scene(scene, protocol)
        assert len(split.train) == views and len(split.test) == 40 - views
        assert not set(split.train) & set(split.test) and set(split.train) | set(split.test) == set(scene.stems)
        assert split_scene(scene, protocol) == split  # deterministic
    small = make_ring(tmp_path / "t", n=20)
    write_transforms(small, tmp_path / "t" / "transforms.json")
    with pytest.raises(SceneError, match="dense protocol takes 30 input views .* has 20 views; use --protocol sparse or llff$"):
        split_scene(load_scene(tmp_path / "t"), "dense")
    few = make_ring(tmp_path / "u", n=5)  # sparse was told to use --protocol sparse
    write_transforms(few, tmp_path / "u" / "transforms.json")
    with pytest.raises(SceneError, match="sparse protocol takes 5 input views .* has 5 views; use --protocol llff$"):
        split_scene(load_scene(tmp_path / "u"), "sparse")


def test_scene_split_is_the_originals_and_never_leaks():
    names = [f"scene{i:03d}" for i in range(50)]
    split = split_scene_names(names)
    assert len(split.test) == 5 and len(split.train) == 45
    assert not set(split.train) & set(split.test) and set(split.train) | set(split.test) == set(names)
    assert split_scene_names(list(reversed(names))) == split  # order-independent, seeded
    assert split_scene_names(names, seed=1) != split
    bench = ["scene001", "scene002", "scene003"]
    held = split_scene_names(names, exclude=bench)
    assert set(held.excluded) == set(bench) and not set(bench) & (set(held.train) | set(held.test))
    assert split_scene_names(["only"]).test == ("only",)  # a lone scene is a test scene
    with pytest.raises(SceneError, match="test_fraction"):
        split_scene_names(names, test_fraction=1.5)


def _render(root, stems_nvs, stems_train, mode):
    layout = RenderLayout(root)
    for folder, stems in (("nvs", stems_nvs), ("nvs_gt", stems_nvs), ("train_gt", stems_train)):
        layout.folder(folder).mkdir(parents=True, exist_ok=True)
        for s in stems:
            layout.latent(folder, s).write_bytes(b"x")
    layout.manifest.write_text(json.dumps({"split": {"mode": mode}}))


def test_dataset_checks_the_protocol_and_excludes_benchmark_scenes(tmp_path, make_ring):
    for name in ("a", "b", "c"):
        cams = make_ring(tmp_path / "scenes" / name, n=8)
        write_transforms(cams, tmp_path / "scenes" / name / "transforms.json")
        stems = [c.stem for c in cams]
        _render(tmp_path / "renders" / name, stems[:2], stems[2:], "sparse" if name != "c" else "llff")
    with pytest.raises(SceneError, match="c was fitted with the llff view protocol, not sparse"):
        build_dataset(tmp_path / "renders", tmp_path / "scenes", top_k=2, protocol="sparse")
    with pytest.raises(SceneError, match="unknown view protocol 'fancy'"):
        build_dataset(tmp_path / "renders", tmp_path / "scenes", top_k=2, protocol="fancy")
    entries = build_dataset(tmp_path / "renders", tmp_path / "scenes", top_k=2, protocol="sparse", exclude_scenes=["c"])
    scenes = {e.feature.parent.parent.name for e in entries}
    assert scenes == {"a", "b"}
    test_scenes = {e.feature.parent.parent.name for e in entries if e.split == "test"}
    assert len(test_scenes) == 1  # ceil(0.1 * 2) = 1 scene judges, the other trains
    assert not test_scenes & {e.feature.parent.parent.name for e in entries if e.split == "train"}


def test_benchmark_folder_names_its_scenes(tmp_path):
    from splatent_data import benchmark_scene_names

    for name in ("b", "a"):
        (tmp_path / "bench" / name).mkdir(parents=True)
    (tmp_path / "bench" / "notes.txt").write_text("x")
    assert benchmark_scene_names(tmp_path / "bench") == ["a", "b"]
    with pytest.raises(SceneError, match="--benchmark_path .* is not a folder"):
        benchmark_scene_names(tmp_path / "nowhere")
