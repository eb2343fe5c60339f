"""The eval stage on renders laid out as ``splatent render`` writes them (splatent-train's degraded stand-ins):
per-view and mean scores, the codec ceiling above the render, sheets and report, and a result folder found."""

from __future__ import annotations

import json

import pytest
import torch

from splatent_data import SplatentError
from splatent_pipeline import evaluate_folder, evaluate_results


@pytest.fixture(scope="module")
def degraded(tmp_path_factory):
    from splatent_train.testing import SCENE_NAME, build_degraded_dataset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval")
    dataset = build_degraded_dataset(root, n_views=16, width=64, height=48)
    return root, root / "renders" / SCENE_NAME, dataset


def test_scores_sheets_and_report(degraded, tmp_path):
    root, renders, dataset = degraded
    ev = evaluate_results(renders, tmp_path / "eval", dataset=dataset, lpips=False, device="cpu",
                          title="T", notes=("a note",))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ev.views == 2 and set(metrics["views"]) == {"0000", "0008"} and metrics["lpips"] is None
    assert set(ev.means) == {"render", "ceiling"} and set(ev.means["render"]) == {"psnr", "ssim"}
    assert ev.means["ceiling"]["psnr"] > ev.means["render"]["psnr"] > 5.0  # the blur costs PSNR
    html = ev.report.read_text()
    assert "<title>T</title>" in html and "a note" in html and "sheets/0008.png" in html
    assert f"<td>{ev.means['render']['psnr']:.2f}</td>" in html
    assert "borders zero-padded" in html and "borders zero-padded" in (tmp_path / "eval" / "metrics.md").read_text()  # which SSIM
    assert (tmp_path / "eval" / "sheets" / "0000.png").is_file() and (tmp_path / "eval" / "metrics.md").is_file()


def test_a_given_codec_scores_in_float32_as_the_manifests(degraded, tmp_path):
    from splatent_latents import codec_from_manifest

    _, renders, _ = degraded
    latents = json.loads((renders / "manifest.json").read_text())["latents"]
    own = evaluate_results(renders, tmp_path / "own", lpips=False, device="cpu")
    given = evaluate_results(renders, tmp_path / "given", lpips=False, device="cpu",
                             codec=codec_from_manifest(latents).to("cpu", torch.float64))
    assert given.means == own.means


def test_a_result_folder_is_found_and_a_bare_one_refused(degraded, tmp_path):
    root, _, _ = degraded
    ev = evaluate_folder(root, lpips=False, device="cpu")
    assert ev.report == root / "eval" / "report.html" and ev.views == 2
    with pytest.raises(SplatentError, match="holds neither nvs/ nor renders/<scene>/nvs/"):
        evaluate_folder(tmp_path, lpips=False)


def test_enhanced_views_covering_part_of_the_test_views_are_said_to(degraded, tmp_path):
    """The table's enhanced mean is over the views enhanced: where that is not every test view, the report says so."""
    _, renders, _ = degraded
    enhanced = tmp_path / "enhanced"
    enhanced.mkdir()
    (enhanced / "0000.pt").write_bytes((renders / "nvs" / "0000.pt").read_bytes())  # one of the two views
    ev = evaluate_results(renders, tmp_path / "eval", enhanced=enhanced, lpips=False, device="cpu")
    assert ev.views == 2 and "enhanced" in ev.means and ev.counts == {"render": 2, "enhanced": 1, "ceiling": 2}
    assert "Enhanced views: 1 of the 2 test views" in ev.report.read_text()


def test_a_result_folder_with_the_renders_of_two_scenes_scores_the_one_its_run_read(degraded, tmp_path):
    """A run over another scene into the same folder leaves the first scene's renders/<scene>/ beside the new one's:
    eval of the folder scored whichever sorted first, against the other scene's enhanced views."""
    import shutil

    root, renders, _ = degraded
    folder = tmp_path / "run"
    shutil.copytree(renders, folder / "renders" / renders.name)
    shutil.copytree(renders, folder / "renders" / "aaa_earlier_scene")
    with pytest.raises(SplatentError, match="holds the renders of 2 scenes"):
        evaluate_folder(folder, lpips=False, device="cpu")
    (folder / "pipeline.json").write_text(json.dumps({"config": {"scene_path": f"/data/{renders.name}"}, "stages": {}}))
    evaluate_folder(folder, lpips=False, device="cpu")
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert metrics["renders"] == str((folder / "renders" / renders.name).resolve())


def test_a_test_view_whose_photo_is_gone_is_one_clear_error(degraded, tmp_path):
    """The scene drops a view whose photo is missing: eval failed with a bare KeyError on the view's camera."""
    import shutil

    _, renders, _ = degraded
    info = json.loads((renders / "manifest.json").read_text())
    scene = tmp_path / "scene"
    shutil.copytree(info["scene"], scene)
    next((scene / "images").glob("0008.*")).unlink()
    shutil.copytree(renders, tmp_path / "renders")
    (tmp_path / "renders" / "manifest.json").write_text(json.dumps({**info, "scene": str(scene)}))
    with pytest.raises(SplatentError, match="has no photo of the rendered test view 0008 \\(1 of 2"):
        evaluate_results(tmp_path / "renders", tmp_path / "eval", lpips=False, device="cpu")


def test_enhanced_views_older_than_the_renders_are_left_out_and_said(degraded, tmp_path, caplog):
    """A later run rendered again and stopped before enhancing: eval of the folder scored the old enhanced views."""
    import logging
    import os
    import shutil

    root, renders, _ = degraded
    folder = tmp_path / "run"
    shutil.copytree(renders, folder / "renders" / renders.name)
    enhanced = folder / "enhanced"
    enhanced.mkdir()
    for name in ("0000.pt", "0008.pt"):
        shutil.copy(renders / "nvs" / name, enhanced / name)
    assert "enhanced" in evaluate_folder(folder, lpips=False, device="cpu").means
    later = (enhanced / "0008.pt").stat().st_mtime_ns + 10**9
    os.utime(folder / "renders" / renders.name / "nvs" / "0008.pt", ns=(later, later))  # rendered again since
    with caplog.at_level(logging.WARNING, logger="splatent"):
        ev = evaluate_folder(folder, lpips=False, device="cpu")
    assert "enhanced" not in ev.means and "predates its render" in caplog.text
    assert "enhanced" in evaluate_folder(folder, enhanced=enhanced, lpips=False, device="cpu").means  # asked for


def test_progress_is_reported_after_each_scored_view(degraded, tmp_path):
    """A capture's views take seconds each to score on a CPU (LPIPS at full size): eval reports each one done."""
    root, _, _ = degraded
    seen = []

    def progress(done, total):
        seen.append((done, total, len(list((tmp_path / "eval" / "sheets").glob("*.png")))))

    evaluate_folder(root, tmp_path / "eval", lpips=False, device="cpu", progress=progress)
    assert seen == [(1, 2, 1), (2, 2, 2)]  # each view's sheet written when it is counted


def test_enhanced_latents_of_another_size_are_one_clear_error(degraded, tmp_path):
    """Enhanced views made from renders of another size: one line naming both shapes (a torch size mismatch)."""
    from splatent_latents import load_latent, save_latent

    _, renders, _ = degraded
    enhanced = tmp_path / "enhanced"
    enhanced.mkdir()
    save_latent(enhanced / "0000.pt", load_latent(renders / "nvs" / "0000.pt")[:, :4, :4])
    with pytest.raises(SplatentError, match=r"0000\.pt is a \(4, 4, 4\) latent, its render .* is \(4, 6, 8\)"):
        evaluate_results(renders, tmp_path / "eval", enhanced=enhanced, lpips=False, device="cpu")
