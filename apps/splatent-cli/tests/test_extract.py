import os

import numpy as np
from PIL import Image


def _images(folder, n=4, size=(64, 48)):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        coarse = (rng.random((4, 5, 3)) * 255).astype(np.uint8)
        Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC).save(folder / f"{i:04d}.png")


def test_extract_then_decode_with_the_original_flags(cli, tmp_path):
    _images(tmp_path / "scene" / "images_4")
    res = cli("extract", "--input", tmp_path / "scene", "--output", "features_sd_turbo", "--res", "images_4",
              "--device", "cpu", "--codec", "pca", "--batch_size", "3", "--workers", "0")
    assert res.returncode == 0, res.stderr
    assert "4 encoded, 0 skipped, 0 failed" in res.stdout
    out = tmp_path / "scene" / "features_sd_turbo"
    assert sorted(p.name for p in out.glob("*.pt")) == ["0000.pt", "0001.pt", "0002.pt", "0003.pt"]
    res = cli("extract", tmp_path / "scene", "--batch-size", "2")  # resumes with the folder's codec
    assert res.returncode == 0 and "0 encoded, 4 skipped" in res.stdout
    res = cli("decode", out, "--output", tmp_path / "png")
    assert res.returncode == 0, res.stderr
    assert "4 decoded, 0 failed" in res.stdout and Image.open(tmp_path / "png" / "0002.png").size == (64, 48)


def test_failed_images_are_listed_and_the_exit_is_non_zero(cli, tmp_path):
    _images(tmp_path / "images", 3)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    res = cli("extract", tmp_path, "--codec", "pca", "--workers", "0")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "3 encoded, 0 skipped, 1 failed" in res.stdout
    assert "failed: broken.png: cannot read image" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("splatent extract: 1 image(s) failed (listed above)")
    res = cli("extract", tmp_path, "--fail_fast")
    last = res.stderr.strip().splitlines()[-1]
    assert res.returncode == 1 and last.count("broken.png") == 1 and "cannot read image" in last  # named once


def test_bad_requests_are_one_line(tmp_path):
    from typer.testing import CliRunner

    from splatent_cli.main import app

    _images(tmp_path / "images", 2)
    runner = CliRunner()
    assert runner.invoke(app, ["extract", str(tmp_path), "--codec", "pca", "--workers", "0"]).exit_code == 0
    for args, message in [
        (["extract", tmp_path, "--codec", "tiny-random"], "holds latents made with codec=pca"),
        (["extract", tmp_path, "--input", tmp_path / "images"], "two scenes given"),
        (["extract"], "no scene given; pass SCENE or --input SCENE"),
        (["extract", tmp_path / "nowhere"], "does not exist"),
        (["decode", tmp_path / "images", "--output", tmp_path / "x"], "no .pt latent files"),
    ]:
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 1, res.output
        assert res.stderr.strip().splitlines()[-1].startswith("splatent ") and message in res.stderr
        assert res.exception is None or isinstance(res.exception, SystemExit)


def test_unavailable_weights_say_what_to_do(cli, tmp_path):
    _images(tmp_path / "images", 1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "splatent_cli", "extract", str(tmp_path), "--model", "nobody/no-such-model"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("splatent extract: cannot load the VAE of 'nobody/no-such-model': offline")
    assert "--model PATH" in last and "HF_HUB_OFFLINE=1" in last and "--codec pca" in last
