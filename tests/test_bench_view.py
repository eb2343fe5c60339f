"""``tools/bench/view.py``'s smoke path (``--device cpu --quick``), which the GPU run shares: every codec and mode
measured through the viewer's frame function, JSON written, the RESULTS.md section written and then replaced."""

from __future__ import annotations

import json


def test_the_view_benchmark_runs_on_a_cpu(tmp_path, run_bench):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- bench:other begin -->\n## other\n<!-- bench:other end -->\n")
    run_bench("view.py", "--device", "cpu", "--quick", "--frames", "1", "--warmup", "0",
              "--out", tmp_path / "view.json", "--results", results)
    report = json.loads((tmp_path / "view.json").read_text())
    rows = {(r["codec"], r["mode"]): r for r in report["rows"]}
    assert set(rows) == {(c, m) for c in ("taef2", "sd-vae") for m in ("decoded", "enhanced")}
    for (codec, mode), row in rows.items():
        assert row["fps"] > 0 and row["image"] == [64, 64] and row["frames"] == 1
        assert row["channels"] == (32 if codec == "taef2" else 4)
        assert ("enhance" in row["ms"]) == (mode == "enhanced") and row["references"] == (3 if mode == "enhanced" else 0)
    assert report["quick"] and report["backend"] == "torch"
    text = results.read_text()
    assert "<!-- bench:other begin -->" in text and text.count("<!-- bench:view begin -->") == 1
    assert "| taef2 (32 ch) | enhanced |" in text and "--quick smoke run" in text
    # the section again from the JSON alone: replaced in place, not appended
    again = run_bench("view.py", "--report", tmp_path / "view.json", "--results", results, timeout=300)
    assert results.read_text().count("<!-- bench:view begin -->") == 1
    assert "| sd-vae (4 ch) | decoded |" in again.stdout
