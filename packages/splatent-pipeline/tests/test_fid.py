"""FID through torchmetrics / torch-fidelity: the real construction path with a randomly initialised Inception of
the same class (its weights cannot be downloaded here), and one clear line without them."""

from __future__ import annotations

import pickle

import pytest
import torch

from splatent_data import SplatentError
from splatent_pipeline.fid import build_fid, fid_scores


@pytest.fixture
def random_inception(monkeypatch):
    """torch-fidelity's FeatureExtractorInceptionV3 as built by torchmetrics, its download replaced by 'no weights':
    the network keeps its random initialisation (a mechanics test: its numbers mean nothing)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, *a, **k: None)
    torch.manual_seed(0)
    return build_fid("cpu")


def test_fid_is_zero_for_the_same_images_and_grows_with_damage(random_inception):
    from torchmetrics.image.fid import NoTrainInceptionV3

    assert isinstance(random_inception.inception, NoTrainInceptionV3)
    g = torch.Generator().manual_seed(1)
    photos = [torch.rand(3, 40, 56, generator=g) for _ in range(6)]
    flat = [torch.full_like(p, 0.5) + 0.01 * torch.randn(p.shape, generator=g) for p in photos]
    scores = fid_scores(random_inception, photos, {"same": photos, "flat": flat, "one": photos[:1]})
    assert "one" not in scores  # a set of one image has no covariance
    assert abs(scores["same"]) < 1e-6 and scores["flat"] > abs(scores["same"])  # random features: tiny numbers


def test_without_its_weights_fid_is_one_clear_line(monkeypatch, tmp_path):
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(fe, "load_state_dict_from_url", offline)
    with pytest.raises(SplatentError, match="FID not computed: .*could not be loaded .*name resolution"):
        build_fid("cpu")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # nothing cached
    with pytest.raises(SplatentError, match="not cached .*--fid"):
        build_fid("cpu", download=False)
    with pytest.raises(SplatentError, match="no Inception weights at"):
        build_fid("cpu", tmp_path / "missing.pth")
    evil = tmp_path / "evil.pth"  # a weights file that would run code when unpickled fully
    evil.write_bytes(pickle.dumps({"state": __import__("os").system}))
    with pytest.raises(SplatentError, match="could not be loaded"):
        build_fid("cpu", evil)


def test_eval_reports_fid_beside_the_other_metrics(random_inception, tmp_path, monkeypatch):
    """evaluate_results with a ready metric: FID per image kind in the means, the report's table and metrics.md;
    without cached weights (the default), one line in the report and every other metric still there."""
    from splatent_pipeline import evaluate_results
    from splatent_pipeline.fid import cached_weights
    from splatent_train.testing import build_degraded_dataset

    dataset = build_degraded_dataset(tmp_path / "d", n_views=24, width=64, height=48)
    renders = dataset.parent / "renders" / "synth"
    ev = evaluate_results(renders, tmp_path / "eval", lpips=False, device="cpu", fid_metric=random_inception)
    assert set(ev.means) == {"render", "ceiling"} and all("fid" in ev.means[k] for k in ev.means)
    assert "FID ↓" in (tmp_path / "eval" / "report.html").read_text()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert not cached_weights().exists()
    ev = evaluate_results(renders, tmp_path / "eval2", lpips=False, device="cpu")
    assert "fid" not in ev.means["render"] and "psnr" in ev.means["render"]
    assert "FID not computed: its Inception weights are not cached" in (tmp_path / "eval2" / "report.html").read_text()


def test_eval_of_a_single_test_view_skips_fid_with_a_note(random_inception, tmp_path):
    """A scene with one test view (≤ 8 views under llff): FID needs two images a set, so it is left out with a note
    while every other metric and the report are written (the whole eval failed before)."""
    import shutil

    from splatent_pipeline import evaluate_results
    from splatent_train.testing import build_degraded_dataset

    dataset = build_degraded_dataset(tmp_path / "d", n_views=24, width=64, height=48)
    renders = tmp_path / "one" / "synth"
    shutil.copytree(dataset.parent / "renders" / "synth", renders)
    for extra in sorted((renders / "nvs").glob("*.pt"))[1:]:
        extra.unlink()
    ev = evaluate_results(renders, tmp_path / "eval", lpips=False, device="cpu", fid_metric=random_inception)
    assert ev.views == 1 and "psnr" in ev.means["render"] and "fid" not in ev.means["render"]
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert "FID not computed: it needs at least 2 test views" in (tmp_path / "eval" / "report.html").read_text()
