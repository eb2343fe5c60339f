"""``splatent fit`` and ``splatent render`` end to end on the procedural scene, as a user runs them:
extract (pca) -> fit (torch backend) -> render (+ decoded PNGs)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run(*args, cwd=None):
    # Tiny tensors: one thread avoids OpenMP spin-waiting on a busy 2-core runner.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "splatent_cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from splatent_data import make_synthetic_scene

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_scene(root, n_views=12, width=96, height=64)
    res = run("extract", root, "--codec", "pca", "--images", "images", "--device", "cpu", "--workers", "0")
    assert res.returncode == 0, res.stderr
    return root


def test_fit_then_render_with_the_original_flags(scene, tmp_path):
    model = tmp_path / "model"
    res = run("fit", "-s", scene, "-m", model, "--steps", "40", "--init-points", "400", "--eval-every", "20",
              "--checkpoint-every", "20", "--sh-degree", "1", "--no-tensorboard")
    assert res.returncode == 0, res.stderr
    assert "fitted 400 Gaussians" in res.stdout and "test latent PSNR" in res.stdout
    info = json.loads((model / "fit.json").read_text())
    assert info["steps"] == 40 and info["codec"] == "pca" and [h["step"] for h in info["history"]] == [0, 20, 40]

    res = run("fit", scene, "--output", model, "--steps", "40")
    assert res.returncode == 1 and res.stderr.strip().startswith("splatent fit:") and "--resume" in res.stderr
    assert "Traceback" not in res.stderr
    res = run("fit", scene, "--output", model, "--steps", "60", "--resume", "--sh-degree", "1", "--eval-every", "0",
              "--no-tensorboard")
    assert res.returncode == 0, res.stderr
    assert json.loads((model / "fit.json").read_text())["resumed_from"] == 40

    out = tmp_path / "R" / "synthetic"
    res = run("render", "-m", model, "--output", out, "--save-images")
    assert res.returncode == 0, res.stderr
    assert "nvs 2, nvs_gt 2, train 10, train_gt 10" in res.stdout
    assert sorted(p.name for p in (out / "nvs").iterdir()) == ["0000.png", "0000.pt", "0008.png", "0008.pt"]
    with Image.open(out / "nvs_gt" / "0008.png") as im:
        assert im.size == (96, 64)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["codec"] == "pca" and manifest["counts"]["train_gt"] == 10


def test_render_path_with_a_missing_enhancer_fails_before_rendering(scene, tmp_path):
    """It rendered every view and the path video, then said the checkpoint does not exist."""
    model = tmp_path / "model"
    res = run("fit", scene, "-m", model, "--steps", "2", "--init-points", "50", "--eval-every", "0", "--no-tensorboard")
    assert res.returncode == 0, res.stderr
    res = run("render", model, "--path", "--enhancer", tmp_path / "ckpt-typo")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"splatent render: checkpoint {tmp_path / 'ckpt-typo'} does not exist; pass "
                                               "a checkpoint folder, an original .pkl, a base model id such as "
                                               "stabilityai/sd-turbo, or 'tiny'"]
    assert not (model / "renders").exists()


def test_distorted_scene_and_missing_inputs_give_one_line(scene, tmp_path):
    distorted = tmp_path / "distorted"
    distorted.mkdir()
    meta = json.loads((scene / "transforms.json").read_text())
    meta.update(k1=0.05, k2=-0.02)
    (distorted / "transforms.json").write_text(json.dumps(meta))
    for frame in meta["frames"]:
        (distorted / frame["file_path"]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(distorted / frame["file_path"])
    res = run("fit", distorted, "-m", tmp_path / "m")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("splatent fit:") and "splatent scene undistort" in res.stderr
    res = run("fit", scene)
    assert res.returncode == 1 and "--output" in res.stderr
    res = run("render", tmp_path / "nothing")
    assert res.returncode == 1 and res.stderr.strip().startswith("splatent render:") and "splatent fit" in res.stderr


def test_build_kernels_without_cuda_is_refused_clearly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the build is covered by the GPU tests")
    res = run("fit", "--build-kernels")
    assert res.returncode == 1 and res.stderr.strip() == (
        "splatent fit: building gsplat's kernels needs a CUDA GPU; on this machine use --backend torch")
