"""Open an HTML report or a live page in headless Chromium (Debian's ``chromium`` package): a PNG
screenshot and the DOM after load, to check that a report renders in a real browser with no server, and
:class:`DevToolsPage` to drive a live page (``splatent view``) over Chromium's DevTools protocol.

    python tools/screenshot.py splatent-demo/eval/report.html --out report.png [--width 1280 --height 2400]
    python tools/screenshot.py http://localhost:8080 --out view.png --wait 10    # a live page, after 10 s

Chromium runs with a fresh profile and without background networking (this machine's network is
closed, and the report needs none: its images are relative files, its plot inline SVG). WebGL (the
viewer's canvas) runs on SwiftShader, Chromium's software renderer, as headless machines have no GPU.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
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


WEBGL_FLAGS = ("--enable-unsafe-swiftshader", "--use-angle=swiftshader")


class DevToolsPage:
    """One page of a headless Chromium driven over the DevTools protocol (a websocket; the ``websockets``
    package, which viser brings): load ``url``, run JavaScript, take screenshots of a live page.

        with DevToolsPage("http://localhost:8080", width=1000, height=700) as page:
            page.evaluate("document.title"); image = page.screenshot()   # a PIL image
    """

    def __init__(self, url: str, width: int = 1280, height: int = 800, timeout: float = 60.0):
        browser = find_chromium()
        if browser is None:
            raise RuntimeError("no chromium on PATH; install Debian's package: apt-get install chromium")
        self.width, self.height = width, height
        # Chromium's helper processes may still write to the profile as it is removed: ignore that.
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        # --remote-debugging-port=0: Chromium picks a free port and writes it to DevToolsActivePort.
        self._proc = subprocess.Popen(
            [browser, *FLAGS, *WEBGL_FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port(timeout)
            page = next(t for t in self._targets(port) if t["type"] == "page")
            from websockets.sync.client import connect

            self._ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout)
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            self.call("Page.enable")
            self.call("Page.navigate", url=url)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, timeout: float) -> int:
        active = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self._proc.returncode}) before opening its DevTools port")
            lines = active.read_text().split() if active.is_file() else []
            if lines:
                return int(lines[0])
            time.sleep(0.1)
        raise TimeoutError(f"chromium opened no DevTools port in {timeout:.0f} s")

    @staticmethod
    def _targets(port: int) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            return json.load(response)

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events that arrive meanwhile are dropped)."""
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=120))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self):
        """The page as an RGB PIL image of ``width x height``."""
        from PIL import Image

        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return Image.open(io.BytesIO(data)).convert("RGB")

    def close_page(self) -> None:
        """Close the page (its websockets close, as when a user closes the tab); the browser stays."""
        self.call("Page.close")

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> "DevToolsPage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def screenshot_live(url: str, png: Path, width: int = 1280, height: int = 800, wait: float = 10.0) -> Path:
    """A screenshot of a live page (a running ``splatent view``) ``wait`` seconds after it loads."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with DevToolsPage(url, width, height) as page:
        time.sleep(wait)
        # viser's notices (a headless browser's "software WebGL" warning) cover part of the page: close them
        page.evaluate("document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())")
        time.sleep(1)
        page.screenshot().save(png)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", help="An HTML file, or the http:// address of a live page.")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write.")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=None, help="Default: 2400 for a file, 800 for a live page.")
    parser.add_argument("--wait", type=float, default=10.0, help="Seconds a live page gets before the screenshot.")
    args = parser.parse_args()
    if args.html.startswith(("http://", "https://")):
        print(screenshot_live(args.html, args.out, args.width, args.height or 800, args.wait))
    else:
        print(screenshot(Path(args.html), args.out, args.width, args.height or 2400))


if __name__ == "__main__":
    main()
