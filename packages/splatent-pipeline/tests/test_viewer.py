"""The viewer's server side without a browser: the render thread, the settings it refuses, and a clean stop."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request

import pytest
import torch

from splatent_data import SplatentError, make_synthetic_scene
from splatent_pipeline import PipelineConfig, ViewerConfig, run_pipeline, serve_viewer
from splatent_pipeline.viewer import FrameWorker


def test_settings_are_refused_in_one_line():
    with pytest.raises(SplatentError, match="needs an enhancer"):
        ViewerConfig(mode="side-by-side").check(enhancer=False)
    ViewerConfig(mode="side-by-side").check(enhancer=True)  # the command line's spelling of "side by side"
    with pytest.raises(SplatentError, match="--mode"):
        ViewerConfig(mode="wireframe").check(enhancer=True)
    with pytest.raises(SplatentError, match="--resolution-scale"):
        ViewerConfig(resolution_scale=0).check(enhancer=False)
    with pytest.raises(SplatentError, match="--max-size"):
        ViewerConfig(max_side=16).check(enhancer=False)


def test_sigterm_stops_the_server_and_its_threads(tmp_path):
    torch.set_num_threads(1)
    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    run_pipeline(PipelineConfig(scene_path=tmp_path / "scene", output_dir=tmp_path / "out", codec="pca", steps=10,
                                lpips=False, device="cpu", backend="torch", stop_after="fit",
                                fit_options={"init_points": 300, "eval_every": 1000, "tensorboard": False}),
                 say=lambda _: None)
    lines, served = [], []

    def say(line: str) -> None:
        lines.append(line)
        if len(lines) == 1:  # listening, SIGTERM handled from here on: fetch the page, then send it
            def fetch_then_terminate():
                url = line.split(" at ")[1].split(" ")[0]
                with urllib.request.urlopen(url, timeout=30) as response:
                    served.append(response.status)
                os.kill(os.getpid(), signal.SIGTERM)

            threading.Thread(target=fetch_then_terminate, daemon=True).start()

    before = signal.getsignal(signal.SIGTERM)
    serve_viewer(tmp_path / "out" / "model", config=ViewerConfig(host="127.0.0.1", port=0), device="cpu", say=say)
    assert served == [200] and lines[-1] == "viewer stopped"
    assert signal.getsignal(signal.SIGTERM) is before  # the process's own handler is back
    assert not [t for t in threading.enumerate() if t.name.startswith("splatent-view")]


def test_the_frame_worker_draws_the_latest_request_and_survives_a_failure():
    drawn, errors = [], []
    gate = threading.Event()
    state = {"value": 0}

    def draw():
        gate.wait(5)
        if state["value"] < 0:
            raise RuntimeError("bad frame")
        drawn.append(state["value"])

    worker = FrameWorker(draw, errors.append)
    worker.wake()
    for value in range(1, 20):  # twenty requests while the first draw waits: one more draw, of the latest state
        state["value"] = value
        worker.wake()
    gate.set()
    deadline = time.monotonic() + 5
    while len(drawn) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert drawn[-1] == 19 and len(drawn) <= 2
    state["value"] = -1
    worker.wake()
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(errors[0], RuntimeError) and worker.alive  # the failure went to the handler, not the thread
    state["value"] = 7
    worker.wake()
    deadline = time.monotonic() + 5
    while drawn[-1] != 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert drawn[-1] == 7
    assert worker.stop(5) and not worker.alive
