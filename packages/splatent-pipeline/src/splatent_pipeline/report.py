"""What people look at: contact sheets, a per-view bar plot and one static HTML report.

Pure functions over metrics and images (PIL, no plotting library): the HTML
embeds its plot as inline SVG and its sheets as relative PNG links, so it opens
from disk in any browser with no server.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw

from splatent_data import atomic_write_bytes, view_order

# (key in metrics, label, colour) of each image kind the report compares.
KINDS = (
    ("render", "latent 3DGS render", "#d95f02"),
    ("enhanced", "enhanced", "#1b9e77"),
    ("ceiling", "codec ceiling", "#7570b3"),
)
METRICS = (("psnr", "PSNR (dB) ↑", "{:.2f}"), ("ssim", "SSIM ↑", "{:.4f}"), ("lpips", "LPIPS ↓", "{:.4f}"),
           ("fid", "FID ↓", "{:.2f}"))
#: How the numbers are defined (splatent_latents.metrics), printed under every table: SSIM conventions differ.
DEFINITIONS = ("PSNR = 10 log10(1 / MSE) on images in [0, 1]. SSIM: Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, "
               "borders zero-padded and the mean over the whole image (the 3DGS / INRIA convention; torchmetrics "
               "reflect-pads the borders instead, splatent_latents.metrics.ssim(padding=\"reflect\") gives its number).")


def contact_sheet(columns: Sequence[tuple[str, np.ndarray]], height: int = 192) -> Image.Image:
    """One row of labelled images, each ``[H, W, 3]`` float in [0, 1] or uint8, scaled to ``height``."""
    tiles = []
    for label, img in columns:
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        tile = Image.fromarray(arr)
        tile = tile.resize((max(1, round(tile.width * height / tile.height)), height), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (tile.width, height + 18), "white")
        canvas.paste(tile, (0, 18))
        ImageDraw.Draw(canvas).text((4, 3), label, fill="black")
        tiles.append(canvas)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), height + 18), "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + 4
    return sheet


def bar_plot_svg(views: Sequence[str], series: dict[str, Sequence[float]], title: str, width: int = 760) -> str:
    """Grouped bars per view, one colour per kind, as an inline SVG string."""
    kinds = [(k, label, colour) for k, label, colour in KINDS if k in series]
    values = np.array([[v for v in series[k]] for k, _, _ in kinds], dtype=float)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) * 1.1 if finite.size and finite.max() > 0 else 1.0
    height, left, bottom = 260, 48, 60
    plot_w, plot_h = width - left - 10, height - bottom - 30
    group = plot_w / max(len(views), 1)
    bar = group * 0.8 / max(len(kinds), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i in range(5):
        v = top * i / 4
        y = 30 + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{v:.3g}</text>')
    for j, view in enumerate(views):
        x0 = left + j * group + group * 0.1
        for i, (_, label, colour) in enumerate(kinds):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            h = plot_h * max(v, 0) / top
            parts.append(f'<rect x="{x0 + i * bar:.1f}" y="{30 + plot_h - h:.1f}" width="{bar * 0.95:.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{html.escape(view)} {label}: {v:.4g}</title></rect>')
        parts.append(f'<text x="{x0 + group * 0.4:.1f}" y="{30 + plot_h + 14}" font-size="10" text-anchor="middle">'
                     f'{html.escape(view)}</text>')
    for i, (_, label, colour) in enumerate(kinds):
        x = left + i * 170
        parts.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16}" y="{height - 12}" font-size="12">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """Mean metrics per image kind as a Markdown table."""
    lines = ["| | " + " | ".join(label for _, label, _ in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for kind, label, _ in KINDS:
        if kind in summary:
            cells = [fmt.format(summary[kind][m]) if m in summary[kind] else "n/a" for m, _, fmt in METRICS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + DEFINITIONS + "\n"


def html_report(path: Path, title: str, metrics: dict[str, Any], sheets: dict[str, str], notes: Sequence[str] = ()) -> None:
    """Write the static report: summary table, per-view plots, contact sheets (relative links).

    Args:
        path: The ``report.html`` to write.
        title: Page title.
        metrics: ``{"mean": {kind: {metric: value}}, "views": {view: {kind: {metric: value}}}}``.
        sheets: ``{view: relative PNG path}``.
        notes: Lines shown under the title (what was run, how to read it).
    """
    views = sorted(metrics["views"], key=view_order)
    rows = []
    for kind, label, colour in KINDS:
        if kind in metrics["mean"]:
            cells = "".join(f"<td>{fmt.format(metrics['mean'][kind][m])}</td>" if m in metrics["mean"][kind]
                            else "<td>n/a</td>" for m, _, fmt in METRICS)
            rows.append(f'<tr><th style="color:{colour}">{label}</th>{cells}</tr>')
    plots = []
    for m, label, _ in METRICS:
        series = {k: [metrics["views"][v].get(k, {}).get(m, float("nan")) for v in views]
                  for k, _, _ in KINDS if any(m in metrics["views"][v].get(k, {}) for v in views)}
        if series:
            plots.append(bar_plot_svg(views, series, f"{label} per test view"))
    # the sheets' columns (evaluate_results): an eval without enhanced views has none of them
    columns = " | ".join(["ground truth", "codec ceiling", "render"]
                         + (["enhanced"] if "enhanced" in metrics["mean"] else []) + ["references"])
    # A link is a URL: a view named "scan #1" or "50%" would link "sheets/scan " (the rest read as a fragment).
    figures = "".join(f'<figure><img src="{html.escape(quote(sheets[v]))}" alt="{html.escape(v)}"><figcaption>{html.escape(v)}'
                      f"</figcaption></figure>" for v in views if v in sheets)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} figure{{margin:12px 0}}
img{{max-width:100%;border:1px solid #eee}} .notes{{color:#444}}</style></head>
<body><h1>{html.escape(title)}</h1>
<div class="notes">{"".join(f"<p>{html.escape(n)}</p>" for n in notes)}</div>
<h2>Mean over {len(views)} test views</h2>
<table><tr><th></th>{"".join(f"<th>{label}</th>" for _, label, _ in METRICS)}</tr>{"".join(rows)}</table>
<p class="notes">{html.escape(DEFINITIONS)}</p>
<h2>Per view</h2>{"".join(plots)}
<h2>Contact sheets</h2><p>{columns}</p>{figures}
</body></html>
"""
    atomic_write_bytes(Path(path), page.encode())
