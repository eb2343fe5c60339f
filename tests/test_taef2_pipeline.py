"""A learned 32-channel latent space (``taef2``) through every stage on CPU: extract -> fit -> render ->
dataset -> train -> enhance -> eval. Mechanics: every file holds 32-channel latents, the enhancer is
built for them and records them, a 4-channel enhancer is refused in one line, and the scores are sane."""

import json

import pytest
import torch

from splatent_pipeline import run_pipeline
from splatent_data import SplatentError, build_dataset, write_dataset_json


@pytest.fixture(scope="module")
def taef2_run(tmp_path_factory, tiny_pipeline):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("taef2")
    cfg = tiny_pipeline(root)
    cfg.codec = "taef2"
    return cfg, run_pipeline(cfg, say=lambda line: None)


def test_every_stage_carries_32_channels(taef2_run):
    cfg, result = taef2_run
    out = cfg.output_dir
    assert result.ran == ["extract", "fit", "render", "dataset", "enhance", "eval"]
    manifest = json.loads((out / "latents" / "manifest.json").read_text())
    assert manifest["codec"] == "taef2" and manifest["channels"] == 32
    latent = torch.load(out / "latents" / "0001.pt", weights_only=True)
    assert latent.shape == (32, 6, 8)  # 64x48 photos at 1/8
    for folder in ("nvs", "nvs_gt", "train_gt"):
        files = sorted((out / "renders" / "scene" / folder).glob("*.pt"))
        assert files and torch.load(files[0], weights_only=True).shape == (32, 6, 8), folder
    enhanced = torch.load(out / "enhanced" / "0000.pt", weights_only=True)
    assert enhanced.shape == (32, 6, 8) and torch.isfinite(enhanced).all()
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    for kind in ("render", "enhanced", "ceiling"):
        assert 5.0 < metrics["mean"][kind]["psnr"] < 60.0
    # taef2's own reconstruction of the photos bounds what a 40-step render can reach
    assert metrics["mean"]["ceiling"]["psnr"] > metrics["mean"]["render"]["psnr"]


def test_train_builds_a_32_channel_enhancer_that_enhance_accepts(taef2_run, tmp_path):
    from splatent_model import load_enhancer
    from splatent_train import TrainConfig, train_enhancer

    cfg, _ = taef2_run
    out = cfg.output_dir
    entries = build_dataset(out / "renders" / "scene", cfg.scene_path, top_k=3, test_scenes=[])
    assert any(e.split == "train" for e in entries)
    write_dataset_json(tmp_path / "data.json", entries)
    train = TrainConfig(dataset_path=tmp_path / "data.json", output_dir=tmp_path / "ckpt", base_model="tiny", top_k=3,
                        gt_from_latents=True, resolution=0, eval_resolution=0, lambda_lpips=0.0, lambda_rgb=1.0,
                        lr_warmup_steps=0, train_batch_size=2, max_train_steps=3, checkpointing_steps=0, eval_freq=0,
                        viz_freq=0, logger="none", num_threads=1, cpu=True)
    result = train_enhancer(train)
    assert result.enhancer_dir == tmp_path / "ckpt" / "enhancer"
    model = load_enhancer(result.enhancer_dir)
    assert model.channels == 32 and model.config.codec["name"] == "taef2"
    config = json.loads((tmp_path / "ckpt" / "enhancer" / "config.json").read_text())
    assert config["unet_config"]["in_channels"] == config["unet_config"]["out_channels"] == 32


def test_a_4_channel_enhancer_is_refused_on_taef2_latents(taef2_run, tmp_path):
    from splatent_model import SplatentEnhancer

    cfg, _ = taef2_run
    SplatentEnhancer.tiny().save_pretrained(tmp_path / "four")  # built for SD's 4-channel latents
    cfg.model_splatent_path = str(tmp_path / "four")
    with pytest.raises(SplatentError) as info:
        run_pipeline(cfg, say=lambda line: None)
    message = str(info.value)
    assert "\n" not in message and "4-channel" in message and "32-channel" in message and "taef2" in message
