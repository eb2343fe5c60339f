"""The eval report opens in a real browser (Debian's headless Chromium), with no server: its numbers are
in the loaded document and its contact sheets are drawn. Skips where Chromium is not installed."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("screenshot", ROOT / "tools" / "screenshot.py")
screenshot_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshot_tool)

pytestmark = pytest.mark.skipif(screenshot_tool.find_chromium() is None,
                                reason="no chromium on PATH (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tiny_result) -> Path:
    return tiny_result / "eval"


def test_report_loads_with_its_numbers_and_sheets(report):
    dom = screenshot_tool.dump_dom(report / "report.html")
    metrics = json.loads((report / "metrics.json").read_text())
    for kind in ("render", "enhanced", "ceiling"):
        assert f"{metrics['mean'][kind]['psnr']:.2f}" in dom
    for stem in metrics["views"]:
        assert f"sheets/{stem}.png" in dom and (report / "sheets" / f"{stem}.png").is_file()
    assert "<svg" in dom


def test_screenshot_shows_the_pictures(report, tmp_path):
    png = screenshot_tool.screenshot(report / "report.html", tmp_path / "report.png", width=1000, height=1400)
    with Image.open(png) as im:
        assert im.size == (1000, 1400)
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    # Text and a bar plot alone draw a few hundred distinct colours; the decoded renders in the
    # contact sheets draw thousands. A page whose images failed to load fails here.
    assert len(np.unique(pixels, axis=0)) > 2000
