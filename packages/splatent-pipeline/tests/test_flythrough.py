"""The enhanced fly-through on CPU: mechanics (an untrained tiny enhancer does not look good)."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from splatent_data import SplatentError
from splatent_pipeline import enhanced_flythrough


def test_the_fly_through_goes_through_the_enhancer_with_the_nearest_training_views(fitted, tmp_path):
    import json

    result = enhanced_flythrough(fitted / "model", "tiny", tmp_path / "path_enhanced.mp4", frames=8, device="cpu",
                                 backend="torch")
    frames = [f for f in imageio.get_reader(str(result.video))]
    assert len(frames) == 8 and frames[0].shape == (48, 128, 3)  # raw | enhanced, each the photo's size
    left, right = frames[3][:, :64].astype(int), frames[3][:, 64:].astype(int)
    assert np.abs(left - right).mean() > 1  # the enhancer changed the render
    train = set(json.loads((fitted / "model" / "fit.json").read_text())["split"]["train"])
    assert len(result.references) == 8 and all(len(r) == 3 and set(r) <= train for r in result.references.values())
    strip = imageio.imread(str(result.strip))
    assert strip.shape == (6 * 48, 128, 3)
    alone = enhanced_flythrough(fitted / "model", "tiny", tmp_path / "alone.mp4", frames=3, compare=False,
                                device="cpu", backend="torch")
    assert imageio.get_reader(str(alone.video)).get_data(0).shape == (48, 64, 3)
    with pytest.raises(SplatentError, match="mp4"):
        enhanced_flythrough(fitted / "model", "tiny", tmp_path / "x.gif", frames=3, device="cpu")


def test_a_fly_through_that_fails_midway_leaves_no_partial_video(fitted, tmp_path, monkeypatch):
    import splatent_pipeline.latent_scene as latent_scene

    calls = {"n": 0}
    real_render = latent_scene.LatentScene.render

    def failing_render(self, cam):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("out of memory, say")
        return real_render(self, cam)

    monkeypatch.setattr(latent_scene.LatentScene, "render", failing_render)
    with pytest.raises(RuntimeError, match="out of memory"):
        enhanced_flythrough(fitted / "model", "tiny", tmp_path / "v.mp4", frames=5, device="cpu", backend="torch")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
