"""End to end on CPU: synthetic scene -> pca latents -> torch-rasterised fit -> render -> dataset ->
tiny enhancer -> eval report. Mechanics only: a 40-step fit and an untrained tiny enhancer are not
expected to look good; the test checks every artefact, the numbers' sanity and resumption."""

import json

import torch

from splatent_pipeline import run_pipeline


def test_pipeline_end_to_end_and_resume(tmp_path, tiny_pipeline):
    torch.set_num_threads(1)
    cfg = tiny_pipeline(tmp_path)
    lines = []
    result = run_pipeline(cfg, say=lines.append)
    out = tmp_path / "out"
    assert result.ran == ["extract", "fit", "render", "dataset", "enhance", "eval"]
    assert sorted(p.name for p in (out / "renders" / "scene" / "nvs").glob("*.pt")) == ["0000.pt", "0008.pt"]
    data = json.loads((out / "data" / "dataset.json").read_text())
    assert set(data["test"]) == {"scene_0000", "scene_0008"} and not data["train"]
    assert all(len(e["ref_features"]) == 3 for e in data["test"].values())
    assert {p.name for p in (out / "enhanced").glob("*.pt")} == {"0000.pt", "0008.pt"}
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert set(metrics["views"]) == {"0000", "0008"}
    for kind in ("render", "enhanced", "ceiling"):
        assert 5.0 < metrics["mean"][kind]["psnr"] < 60.0
    # the codec's own reconstruction bounds what a render can reach
    assert metrics["mean"]["ceiling"]["psnr"] > metrics["mean"]["render"]["psnr"]
    html = (out / "eval" / "report.html").read_text()
    assert "<svg" in html and "sheets/0000.png" in html and (out / "eval" / "sheets" / "0008.png").is_file()
    again = run_pipeline(cfg, say=lines.append)
    assert again.ran == [] and again.skipped == result.ran
    cfg.start_from = "eval"
    assert run_pipeline(cfg, say=lines.append).ran == ["eval"]
