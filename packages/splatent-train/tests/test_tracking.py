from __future__ import annotations

from splatent_train import loss_curve, read_metrics
from splatent_train.tracking import METRICS_FILE


def test_a_line_cut_by_a_kill_does_not_hide_the_history(tmp_path):
    """metrics.jsonl of a killed (or still running) run may end in half a record: reading it gives the whole ones."""
    (tmp_path / METRICS_FILE).write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.25}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    assert loss_curve(tmp_path) == {1: 0.5, 2: 0.25}
