import logging

import numpy as np
import pytest

from splatent_data import Camera, SceneError, look_at, select_references


def _ring(n, radius=5.0):
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        cams.append(Camera(f"{i:02d}.png", f"{i:02d}.png", 8, 8, 8.0, 8.0, 4.0, 4.0,
                           look_at([radius * np.cos(a), radius * np.sin(a), 0.0], [0, 0, 0])))
    return cams


def test_ring_picks_geometric_neighbours():
    cams = _ring(16)
    refs = select_references(cams, cams, k=2)
    for i in range(16):
        assert set(refs[f"{i:02d}"]) == {f"{(i - 1) % 16:02d}", f"{(i + 1) % 16:02d}"}
        assert f"{i:02d}" not in refs[f"{i:02d}"]


def test_angle_term_prefers_camera_looking_the_same_way():
    target = Camera("t.png", "t.png", 8, 8, 8.0, 8.0, 4.0, 4.0, look_at([0, 0, 0], [0, 1, 0]))
    turned = Camera("a.png", "a.png", 8, 8, 8.0, 8.0, 4.0, 4.0, look_at([0.1, 0, 0], [0.1, -1, 0]))
    aligned = Camera("b.png", "b.png", 8, 8, 8.0, 8.0, 4.0, 4.0, look_at([0.5, 0, 0], [0.5, 1, 0]))
    assert select_references([target], [turned, aligned], k=1, radius=1.0)["t"] == ["b"]
    # with no angle term the nearer (but turned-away) camera wins
    assert select_references([target], [turned, aligned], k=1, radius=1.0, angle_weight=0.0)["t"] == ["a"]


def test_ties_broken_by_name():
    cams = _ring(4)
    refs = select_references([cams[0]], cams[1:], k=1)
    assert refs["00"] == ["01"]  # 01 and 03 are symmetric; the smaller name wins


def test_fewer_candidates_than_k_warns(caplog):
    cams = _ring(3)
    with caplog.at_level(logging.WARNING, logger="splatent"):
        refs = select_references(cams[:1], cams, k=5)
    assert len(refs["00"]) == 2 and "fewer than 5" in caplog.text


def test_top_k_zero_and_no_candidates():
    cams = _ring(3)
    with pytest.raises(SceneError, match="at least 1"):
        select_references(cams, cams, k=0)
    with pytest.raises(SceneError, match="no training views"):
        select_references(cams, [], k=1)
