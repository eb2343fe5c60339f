import io

import pytest
import torch
from rich.console import Console

from splatent_latents import DTYPES, ProgressReporter, default_dtype, parse_dtype, progress_bar


def _console_bar(monkeypatch):
    """Route rich's bars to a string buffer."""
    buf = io.StringIO()
    import splatent_latents.progress as progress

    original = progress.Progress
    monkeypatch.setattr(progress, "Progress", lambda *a, **k: original(*a, console=Console(file=buf, width=120), **k))
    return buf


def test_reporter_counts_by_advance_and_by_report(monkeypatch):
    buf = _console_bar(monkeypatch)
    with progress_bar("stage", 10, unit="views") as bar:
        bar(3)
        assert bar.completed == 3
        bar.report(7, 10)
        bar()
        bar.update(9, info="loss 0.1")
    assert bar.completed == 9
    out = buf.getvalue()
    assert "stage" in out and "9/10" in out and "loss 0.1" in out


def test_disabled_or_empty_bar_draws_nothing(monkeypatch):
    buf = _console_bar(monkeypatch)
    with progress_bar("off", 10, enabled=False) as bar:
        bar(5)
    with progress_bar("empty", 0) as empty:
        empty(1)
    assert bar.completed == 5 and buf.getvalue() == ""


def test_lazy_bar_starts_on_first_report_and_learns_its_total(monkeypatch):
    buf = _console_bar(monkeypatch)
    bar = ProgressReporter("enhance", 0, unit="views", lazy=True)
    assert bar._bar is None and buf.getvalue() == ""
    bar.report(2, 4)
    assert bar._bar is not None and bar.total == 4
    bar.close()
    assert "2/4" in buf.getvalue()


def test_one_dtype_table():
    assert {parse_dtype(n) for n in DTYPES} == {torch.float32, torch.float16, torch.bfloat16}
    assert parse_dtype("bf16") is parse_dtype("bfloat16") is torch.bfloat16
    assert default_dtype(torch.device("cpu")) is torch.float32
    with pytest.raises(Exception, match="unknown dtype 'int8'"):
        parse_dtype("int8")
