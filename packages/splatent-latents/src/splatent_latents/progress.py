"""The one progress protocol of every stage, and its one bar.

Library functions that take a while accept ``progress: ProgressCallback | None``, called as
``progress(done, total)``; they never draw anything themselves unless asked (``progress=True`` where a
stage owns its bar). Whoever shows progress (the CLI, the pipeline, a notebook) passes a callback:
:func:`progress_bar` yields a :class:`ProgressReporter`, which is one (``reporter.report``), and also
counts (``reporter(n)`` advances by ``n``) and carries a line of live text (``info``).

Splatent-latents is the lowest package with a terminal UI dependency (rich), so the bar lives here and
splat, model, train, pipeline and the CLI import it rather than each building their own.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

#: ``progress(done, total)``: what a stage reports as it goes.
ProgressCallback = Callable[[int, int], None]


class RateColumn(ProgressColumn):
    """``123.4 img/s`` over rich's recent-speed window."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}/s" if task.speed else f"- {self.unit}/s", style="progress.data.speed")


class ProgressReporter:
    """A rich bar (count, rate, elapsed, remaining, live text), or nothing when disabled.

    ``unit`` names the rate column (``None``: no rate column, for a stage that puts its own rate in ``info``);
    ``lazy``: draw from the first report on, so messages printed while a model loads come out clean.
    """

    def __init__(self, description: str, total: int, enabled: bool = True, unit: str | None = "img",
                 completed: int = 0, lazy: bool = False) -> None:
        self.description, self.total, self.completed = description, total, completed
        self.enabled = enabled and (lazy or total > 0)  # a lazy bar may learn its total from the first report
        self._bar: Progress | None = None
        self._task = None
        self._unit = unit
        if self.enabled and not lazy:
            self._start()

    def _start(self) -> None:
        rate = [RateColumn(self._unit)] if self._unit else []
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *rate,
                             TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                             transient=False)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, completed=self.completed, info="")

    def update(self, done: int, total: int | None = None, info: str | None = None) -> None:
        """Set the count (and the total, and the live text)."""
        self.completed = done
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        fields = {} if info is None else {"info": info}
        self._bar.update(self._task, completed=done, total=self.total, **fields)

    def report(self, done: int, total: int) -> None:
        """The :data:`ProgressCallback` shape."""
        self.update(done, total)

    def __call__(self, n: int = 1) -> None:
        """Advance by ``n``."""
        self.update(self.completed + n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True, unit: str | None = "img", completed: int = 0,
                 lazy: bool = False) -> Iterator[ProgressReporter]:
    """A :class:`ProgressReporter` for the ``with`` block (a no-op when not ``enabled`` or ``total`` is 0)."""
    reporter = ProgressReporter(description, total, enabled=enabled, unit=unit, completed=completed, lazy=lazy)
    try:
        yield reporter
    finally:
        reporter.close()
