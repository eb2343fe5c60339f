"""``splatent view`` in a real browser: the viewer serves a tiny fitted scene on a free local port, Debian's headless
Chromium opens it (driven over its DevTools protocol), and the frames the server renders are what the browser
draws. Skips where Chromium is not installed."""

from __future__ import annotations

import importlib.util
import json
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatent_pipeline import SceneViewer, ViewerConfig, open_latent_scene

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("screenshot", ROOT / "tools" / "screenshot.py")
screenshot_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshot_tool)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(screenshot_tool.find_chromium() is None,
                                 reason="no chromium on PATH (Debian: apt-get install chromium)")]

WIDTH, HEIGHT = 1000, 700


def canvas_box(page) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` of the page's largest canvas: the 3D view the frames are drawn on."""
    boxes = page.evaluate("JSON.stringify([...document.querySelectorAll('canvas')].map(c => {"
                          "const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }))")
    x, y, w, h = max(json.loads(boxes), key=lambda b: b[2] * b[3])
    return round(x), round(y), round(w), round(h)


def band(image: np.ndarray) -> np.ndarray:
    """The strip of the canvas below the control panel and the browser's notices: where only the frame shows."""
    h, w = image.shape[:2]
    return image[int(0.75 * h):int(0.92 * h), int(0.1 * w):int(0.9 * w)].astype(np.float32)


def drawn_frame(page, box) -> np.ndarray:
    x, y, w, h = box
    return np.asarray(page.screenshot())[y:y + h, x:x + w]


def as_drawn(frame: np.ndarray, box) -> np.ndarray:
    """A frame the server sent, stretched over the canvas as viser draws its background image."""
    return np.asarray(Image.fromarray(frame.image).resize((box[2], box[3]), Image.Resampling.BILINEAR))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Median absolute difference in the band (camera frustums drawn over the frame are thin lines)."""
    return float(np.median(np.abs(band(a) - band(b))))


def showing(page, box, session, mode: str) -> tuple[np.ndarray, object] | None:
    """``(canvas, frame)`` when the canvas shows the session's latest frame and it is in ``mode`` (within JPEG and
    resampling error: a median difference of 1-2 levels, where two different frames differ by 20 here)."""
    frame = session.last_frame
    if frame is None or frame.mode != mode:
        return None
    shot = drawn_frame(page, box)
    return (shot, frame) if difference(shot, as_drawn(frame, box)) <= 6 else None


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value is not None and value is not False and (not isinstance(value, (str, int)) or value):
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def frame_in_mode(session, mode: str, timeout: float = 60.0):
    """The first frame drawn in ``mode`` (a frame begun before the mode changed still has the old one)."""
    deadline = time.monotonic() + timeout
    frame = session.last_frame
    while frame is None or frame.mode != mode:
        frame = session.wait_for_frame(session.frames, max(0.1, deadline - time.monotonic()))
    return frame


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


@pytest.fixture(scope="module")
def viewer(tiny_result):
    scene = open_latent_scene(tiny_result / "model", "tiny", device="cpu", backend="torch")
    viewer = SceneViewer(scene, ViewerConfig(host="127.0.0.1", port=0)).start()
    yield viewer
    viewer.stop()


def test_the_browser_draws_the_frames_and_a_mode_change(viewer, tiny_result, tmp_path):
    with screenshot_tool.DevToolsPage(viewer.url, WIDTH, HEIGHT) as page:
        session = wait_for(lambda: next(iter(viewer.sessions.values()), None), 60, "the browser to connect")
        frame_in_mode(session, "decoded")
        box = canvas_box(page)
        assert box[2] > WIDTH // 2 and box[3] > HEIGHT // 2
        # The canvas shows the decoded frame the server rendered last: not blank, and that frame, not another.
        shot, decoded = wait_for(lambda: showing(page, box, session, "decoded"), 30, "the decoded frame on the canvas")
        Image.fromarray(shot).save(tmp_path / "decoded.png")
        assert band(shot).std() > 2 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
        assert session.stats.content.startswith("**frame ") and "decoded" in session.stats.content

        session.mode.value = "enhanced"  # as the panel's dropdown does; the browser shows the new value
        shot2, enhanced = wait_for(lambda: showing(page, box, session, "enhanced"), 60, "the enhanced frame on the canvas")
        assert len(enhanced.references) == 3
        Image.fromarray(shot2).save(tmp_path / "enhanced.png")
        assert difference(shot2, shot) > 12 and difference(shot, as_drawn(enhanced, box)) > 12  # seen in the browser
        assert wait_for(lambda: "enhanced" in (page.evaluate(
            "[...document.querySelectorAll('input')].map(i => i.value).join(' ')") or ""), 10, "the dropdown to show it")

        # Snapping to a test view scores it: the decoded PSNR is the eval stage's for that view.
        test_view = viewer.scene.test[0]
        session.go_to(test_view)
        wait_for(lambda: f"test view {test_view.stem}" in (page.evaluate("document.body.innerText") or ""), 60,
                 "the metrics readout in the page")
        evaluated = json.loads((tiny_result / "eval" / "metrics.json").read_text())["views"][test_view.stem]
        assert f"decoded **{evaluated['render']['psnr']:.2f} dB**" in session.metrics.content
        assert "enhanced **" in session.metrics.content
        page.close_page()  # the user closes the tab
        wait_for(lambda: not viewer.sessions, 30, "the server to drop the client")
    with urllib.request.urlopen(viewer.url, timeout=10) as response:  # the server outlived its client
        assert response.status == 200


def test_a_failing_frame_is_shown_and_the_next_one_recovers(viewer, monkeypatch):
    scene = viewer.scene
    render = scene.render
    broken = [True]

    def rasteriser(camera):
        if broken[0]:
            raise RuntimeError("the rasteriser fell over")
        return render(camera)

    monkeypatch.setattr(scene, "render", rasteriser)
    with screenshot_tool.DevToolsPage(viewer.url, WIDTH, HEIGHT) as page:
        session = wait_for(lambda: next(iter(viewer.sessions.values()), None), 60, "the browser to connect")
        wait_for(lambda: "frame failed: RuntimeError: the rasteriser fell over" in (
            page.evaluate("document.body.innerText") or ""), 60, "the failure in the panel")
        assert session.frames == 0 and session.worker.alive
        broken[0] = False
        session.resolution.value = 0.5  # any request: the same thread draws it
        frame = session.wait_for_frame(0, 60)
        assert frame.mode == "decoded" and frame.image.std() > 0
        wait_for(lambda: "frame failed" not in (page.evaluate("document.body.innerText") or ""), 30,
                 "the failure to clear")
        assert session.last_error is None


def test_the_server_stops_cleanly(tiny_result):
    scene = open_latent_scene(tiny_result / "model", None, device="cpu", backend="torch")
    viewer = SceneViewer(scene, ViewerConfig(host="127.0.0.1", port=0)).start()
    port = viewer.port
    assert listening(port)
    with screenshot_tool.DevToolsPage(viewer.url, WIDTH, HEIGHT):
        session = wait_for(lambda: next(iter(viewer.sessions.values()), None), 60, "the browser to connect")
        session.wait_for_frame(0, 60)
        viewer.stop()  # with a client still connected
    assert not session.worker.alive and not viewer.sessions
    assert not listening(port)
