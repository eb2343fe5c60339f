"""``splatent enhance`` and ``splatent convert-ckpt`` end to end with the tiny preset (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from typer.testing import CliRunner

from splatent_data import DatasetEntry, RenderLayout, save_rgb, write_dataset_json
from splatent_latents import save_latent


def run_here(*args):
    """The CLI in this process (imports already paid for); one test runs it as a real subprocess."""
    from splatent_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from splatent_model import SplatentEnhancer

    root = tmp_path_factory.mktemp("ckpt")
    model = SplatentEnhancer.tiny()
    torch.save({"state_dict_unet": model.unet.state_dict(), "optimizer": {"state": {}, "param_groups": []}},
               root / "model_100.pkl")
    return root / "model_100.pkl"


def test_convert_then_enhance_a_dataset(cli, tmp_path, tiny_ckpt):
    res = run_here("convert-ckpt", tiny_ckpt, tmp_path / "ckpt", "--base-model", "tiny")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "ckpt" / "unet" / "diffusion_pytorch_model.safetensors").is_file()

    g = torch.Generator().manual_seed(0)
    scene = RenderLayout(tmp_path / "scene")
    entries = []
    for i in range(3):
        for sub in ("nvs", "nvs_gt", "train_gt"):
            save_latent(scene.latent(sub, f"{i:04d}"), torch.randn(4, 8, 8, generator=g))
        save_rgb(scene.nvs_gt / f"{i:04d}.png", np.full((64, 64, 3), 40 * i, np.uint8))
    for i in range(3):
        refs = tuple(scene.latent("train_gt", f"{j:04d}") for j in (0, 1, 2, 0))
        entries.append(DatasetEntry(f"s_{i}", "test", scene.latent("nvs", f"{i:04d}"), scene.latent("nvs_gt", f"{i:04d}"),
                                    refs[:3], "A photo of a scene"))
    write_dataset_json(tmp_path / "data.json", entries)
    res = cli("enhance", "--dataset_path", tmp_path / "data.json", "--model_path", tmp_path / "ckpt",
              "--output_dir", tmp_path / "out", "--batch_size", "2", "--device", "cpu", "--scale")
    assert res.returncode == 0, res.stderr
    assert "enhanced 3 views" in res.stdout and "PSNR" in res.stdout
    metrics = json.loads((tmp_path / "out" / "enhanced" / "metrics.json").read_text())
    assert len(metrics["views"]) == 3
    assert sorted(p.name for p in (tmp_path / "out" / "enhanced").glob("*.png")) == ["0000.png", "0001.png", "0002.png"]
    # another number of references than the checkpoint was trained with changes the grid: refused, nothing written
    trained = json.loads((tmp_path / "ckpt" / "config.json").read_text())["top_k"]
    before = sorted((tmp_path / "out").rglob("*"))
    res = run_here("enhance", "--dataset_path", tmp_path / "data.json", "--model_path", tmp_path / "ckpt",
                   "--output_dir", tmp_path / "out2", "--device", "cpu", "--top_k", str(trained - 1))
    assert res.exit_code == 1 and (res.exception is None or isinstance(res.exception, SystemExit))
    assert res.stderr.strip() == (f"splatent enhance: --top_k {trained - 1}: {tmp_path / 'ckpt'} was trained with "
                                  f"{trained} references per view (its UNet sees a grid of {trained + 1} tiles); pass "
                                  f"--top_k {trained} or leave it out")
    assert not (tmp_path / "out2").exists() and sorted((tmp_path / "out").rglob("*")) == before


def test_custom_mode_with_the_originals_flags(tmp_path):
    for folder in ("in", "ref"):
        for name in ("a", "b"):
            save_rgb(tmp_path / folder / f"{name}.png", np.random.default_rng(1).integers(0, 255, (48, 40, 3), np.uint8))
    res = run_here("enhance", "--input_image", tmp_path / "in", "--ref_image", tmp_path / "ref", "--prompt", "a fox",
                   "--model_path", "tiny", "--output_dir", tmp_path / "out", "--timestep", "199", "--top_k", "1",
                   "--device", "cpu", "--save_latent")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "b.pt").is_file()


def test_errors_are_one_line(tmp_path):
    res = run_here("enhance", "--model_path", "tiny")
    assert res.exit_code == 1 and res.stderr.strip().startswith("splatent enhance: pass either --input_image")
    evil = tmp_path / "evil.pkl"
    torch.save({"state_dict_unet": {}, "x": np.dtype("float32")}, evil)  # numpy objects need full unpickling
    res = run_here("convert-ckpt", evil, tmp_path / "out", "--base-model", "tiny")
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "refusing to load" in res.stderr
    res = run_here("enhance", "--input_image", tmp_path / "nothing", "--model_path", "tiny", "--device", "cpu")
    assert res.exit_code == 1 and "does not exist" in res.stderr
