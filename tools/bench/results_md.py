"""Replace one benchmark's section of ``benchmarks/RESULTS.md``, between its markers."""

from __future__ import annotations

from pathlib import Path


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
