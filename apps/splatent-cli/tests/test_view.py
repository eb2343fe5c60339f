"""``splatent view`` as a user runs it: it serves the viewer's page until Ctrl-C and then stops cleanly, exit 0
(SIGTERM: splatent-pipeline's test_viewer.py); a bad model folder is one line and exit 1 before anything listens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest
import torch


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from splatent_data import make_synthetic_scene
    from splatent_pipeline import PipelineConfig, run_pipeline

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("view")
    make_synthetic_scene(root / "scene", n_views=10, width=64, height=48)
    run_pipeline(PipelineConfig(scene_path=root / "scene", output_dir=root / "out", codec="pca", steps=20,
                                lpips=False, device="cpu", backend="torch", stop_after="fit",
                                fit_options={"init_points": 500, "eval_every": 1000, "tensorboard": False}),
                 say=lambda _: None)
    return root / "out" / "model"


def _ctrl_c_reaches_it() -> None:
    """A job a non-interactive shell started in the background (a CI runner's, say) ignores SIGINT, and so would
    the command (Python keeps an ignored SIGINT ignored); a terminal's Ctrl-C reaches a foreground command."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_view_serves_until_ctrl_c_then_exits_cleanly(model):
    proc = subprocess.Popen([sys.executable, "-m", "splatent_cli", "view", str(model), "--port", "0", "--host",
                             "127.0.0.1", "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_ctrl_c_reaches_it)
    try:
        url = None
        for line in proc.stdout:  # the line that says where it serves, printed once it listens
            if match := re.search(r"viewing .* at (http://127\.0\.0\.1:\d+) ", line):
                url = match.group(1)
                break
        assert url is not None, proc.stderr.read()
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200 and b"<html" in response.read(2000).lower()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "viewer stopped" in out and "Traceback" not in out + err


def test_view_refuses_a_bad_model_folder_in_one_line(cli, tmp_path):
    (tmp_path / "model").mkdir()
    r = cli("view", tmp_path / "model", "--port", "0")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("splatent view: ") and "fit.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
