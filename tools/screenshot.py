"""Open an HTML report in headless Chromium (Debian's ``chromium`` package): a PNG screenshot and the
DOM after load, to check that a report renders in a real browser with no server.

    python tools/screenshot.py splatent-demo/eval/report.html --out report.png [--width 1280 --height 2400]

Chromium runs with a fresh profile and without background networking (this machine's network is
closed, and the report needs none: its images are relative files, its plot inline SVG).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--allow-file-access-from-files")


def find_chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_chromium()
    if browser is None:
        raise SystemExit("no chromium on PATH; install Debian's package: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400, timeout: float = 120) -> Path:
    """Render ``html`` at ``width`` × ``height`` CSS pixels into ``png``."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}", "--virtual-time-budget=5000",
                 Path(html).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png


def dump_dom(html: Path, timeout: float = 120) -> str:
    """The document as Chromium has it after loading ``html``."""
    proc = _run(["--dump-dom", "--virtual-time-budget=5000", Path(html).resolve().as_uri()], timeout)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium could not load {html} (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write.")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    print(screenshot(args.html, args.out, args.width, args.height))


if __name__ == "__main__":
    main()
