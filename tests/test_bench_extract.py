"""``tools/bench/extract.py``'s CPU path (``--tiny``), which the GPU run shares: the loop, the encoder rows with their
kernel tables (``--profile``), ``extract_latents`` end to end, JSON written and the RESULTS.md section rendered."""

from __future__ import annotations

import json


def test_the_extract_benchmark_profiles_the_encoder_on_a_cpu(tmp_path, run_bench):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n")
    run_bench("extract.py", "--device", "cpu", "--tiny", "--sizes", "32x24", "--count", "4", "--loop-count", "1",
              "--batch-sizes", "16", "--min-seconds", "0.05", "--profile", "--out", tmp_path / "extract.json",
              "--results", results, timeout=600)
    report = json.loads((tmp_path / "extract.json").read_text())
    # the head every benchmark's JSON starts with (tools/bench/machine.py): which machine, which software
    assert report["device"].startswith("CPU (") and "cores" in report["device"] and report["gpus"] >= 0
    assert {"date", "python", "torch", "cuda", "cpu_count"} <= set(report)
    entry = report["sizes"]["32x24"]
    profiled = [r for r in entry["encoder"] if "profile" in r]
    assert [r["batch"] for r in profiled] == [16]  # batch 1 rows are not profiled
    table = profiled[0]["profile"]
    assert table["ms_per_step"] > 0 and table["top"]
    assert abs(sum(row["share"] for row in table["top"]) - 1.0) < 0.2  # the top rows are most of the time
    assert any("conv" in row["name"] for row in table["top"])  # an encoder is mostly convolutions
    text = results.read_text()
    assert "Kernels of `VaeCodec.encode`, float32, batch 16 at 32x24" in text and "| ms / image | share |" in text
    assert {r["label"] for r in entry["extract"]} == {"batch1", "batched"}
