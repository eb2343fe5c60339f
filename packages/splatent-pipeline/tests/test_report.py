"""The report's pure pieces: contact sheets, the inline SVG plot, the Markdown table and the HTML page."""

from __future__ import annotations

import numpy as np

from splatent_pipeline import bar_plot_svg, contact_sheet, html_report, markdown_table

MEANS = {"render": {"psnr": 20.0, "ssim": 0.5}, "enhanced": {"psnr": 21.5, "ssim": 0.6, "lpips": 0.25}}


def test_contact_sheet_scales_every_tile_to_one_height():
    sheet = contact_sheet([("a", np.zeros((10, 20, 3), np.float32)), ("b", np.full((20, 20, 3), 255, np.uint8))],
                          height=40)
    assert sheet.size == (80 + 40 + 4, 58)  # 2:1 tile, square tile, a 4-pixel gap; 18-pixel label band


def test_table_and_plot_show_each_kind_present():
    table = markdown_table(MEANS)
    assert "| latent 3DGS render | 20.00 | 0.5000 | n/a |" in table and "| enhanced | 21.50 |" in table
    assert "codec ceiling" not in table
    svg = bar_plot_svg(["v0", "v1"], {"render": [1.0, float("nan")], "enhanced": [2.0, 3.0]}, "PSNR")
    assert svg.startswith("<svg") and svg.count("<rect") == 3 + 2  # finite bars + one legend swatch per kind


def test_html_report_links_sheets_relatively(tmp_path):
    metrics = {"mean": MEANS, "views": {"v0": MEANS}}
    html_report(tmp_path / "report.html", "A & B", metrics, {"v0": "sheets/v0.png"}, ["note <1>"])
    page = (tmp_path / "report.html").read_text()
    assert "<title>A &amp; B</title>" in page and "note &lt;1&gt;" in page and 'src="sheets/v0.png"' in page
    assert "<td>21.50</td>" in page and "Mean over 1 test views" in page


def test_html_report_links_the_sheets_of_views_with_url_characters_in_their_names(tmp_path):
    """A view named ``scan #1`` or ``50%?`` links its own sheet, not ``sheets/scan `` (the rest read as a fragment)."""
    import html
    import re
    from urllib.parse import unquote, urlsplit

    views = {"scan #1": MEANS, "50%?": MEANS, "vue été": MEANS}
    sheets = {v: f"sheets/{v}.png" for v in views}
    for link in sheets.values():
        (tmp_path / link).parent.mkdir(exist_ok=True)
        (tmp_path / link).write_bytes(b"png")
    html_report(tmp_path / "report.html", "T", {"mean": MEANS, "views": views}, sheets)
    links = re.findall(r'<img src="([^"]+)"', (tmp_path / "report.html").read_text())
    assert len(links) == 3
    for link in links:  # what a browser fetches: the path of the URL, percent-decoded
        url = urlsplit(html.unescape(link))
        assert not url.fragment and not url.query and (tmp_path / unquote(url.path)).is_file()


def test_html_report_orders_views_by_their_numbers(tmp_path):
    """Unpadded frame numbers read 1, 2, 9, 10 in the plots and sheets, not 1, 10, 2, 9."""
    import re

    views = {f"frame_{i}": {"render": {"psnr": 20.0 + i}} for i in (10, 2, 1, 9)}
    html_report(tmp_path / "report.html", "T", {"mean": MEANS, "views": views}, {v: f"sheets/{v}.png" for v in views})
    page = (tmp_path / "report.html").read_text()
    order = ["frame_1", "frame_2", "frame_9", "frame_10"]
    assert re.findall(r"<figcaption>([^<]+)</figcaption>", page) == order
    assert re.findall(r'text-anchor="middle">([^<]+)</text>', page) == order  # the bar plot's axis


def test_html_report_names_the_sheet_columns_there_are(tmp_path):
    """Without enhanced views the sheets' fourth column is the first reference, and the caption says so."""
    views = {"v0": {"render": {"psnr": 20.0}, "ceiling": {"psnr": 25.0}}}
    html_report(tmp_path / "plain.html", "T", {"mean": views["v0"], "views": views}, {"v0": "sheets/v0.png"})
    assert "<p>ground truth | codec ceiling | render | references</p>" in (tmp_path / "plain.html").read_text()
    views["v0"]["enhanced"] = {"psnr": 21.0}
    html_report(tmp_path / "enhanced.html", "T", {"mean": views["v0"], "views": views}, {"v0": "sheets/v0.png"})
    assert "<p>ground truth | codec ceiling | render | enhanced | references</p>" in (tmp_path / "enhanced.html").read_text()
