"""Replace one benchmark's section of ``benchmarks/RESULTS.md``, between its markers."""

from __future__ import annotations

import sys
from pathlib import Path


def recorded_command(script: str, path_flags: tuple[str, ...] = ("--out",)) -> str:
    """``python tools/bench/SCRIPT ARGS`` as run, without the options that name this machine's paths
    (``path_flags`` and their values): the command a reader repeats, not where its files went."""
    argv = sys.argv[1:]
    for flag in path_flags:
        if flag in argv:
            del argv[argv.index(flag):argv.index(flag) + 2]
    return " ".join([f"python tools/bench/{script}", *argv])


def write_section(results: Path, section: str, title: str, command: str, body: str) -> None:
    """Write ``## title`` + the command + ``body`` between ``<!-- bench:section begin/end -->``, in place or appended."""
    begin, end = f"<!-- bench:{section} begin -->", f"<!-- bench:{section} end -->"
    block = "\n".join([begin, f"## {title}", "", f"Command: `{command}`", "", body, end])
    text = results.read_text() if results.is_file() else "# Benchmark results\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text)
