from __future__ import annotations

import math

import torch

from splatent_train import PromptTable, compare_views, image_metrics, latent_metrics, summarize


def test_compare_views_scores_enhanced_and_render_against_the_same_truth(random_lpips):
    from splatent_latents import PCACodec

    torch.manual_seed(0)
    codec = PCACodec.fit([torch.rand(3, 32, 32) for _ in range(4)])
    target = codec.encode(torch.rand(2, 3, 32, 32))
    render = target + 0.3 * torch.randn_like(target)
    enhanced = target + 0.05 * torch.randn_like(target)
    m = compare_views(enhanced, render, target, codec, None, random_lpips)
    for metric in ("latent_l2", "latent_psnr", "psnr", "ssim", "lpips"):
        assert m[f"{metric}_enhanced"].shape == (2,) and m[f"{metric}_render"].shape == (2,)
    assert (m["latent_psnr_enhanced"] > m["latent_psnr_render"]).all()
    assert (m["latent_l2_enhanced"] < m["latent_l2_render"]).all()
    assert (m["psnr_enhanced"] > m["psnr_render"]).all()
    # cached render metrics are used as given
    again = compare_views(enhanced, render, target, codec, None, random_lpips,
                          render_metrics={"latent_psnr": torch.tensor([1.0, 2.0])})
    assert again["latent_psnr_render"].tolist() == [1.0, 2.0]


def test_metric_helpers_and_summary():
    x = torch.rand(1, 3, 16, 16)
    im = image_metrics(x, x)
    assert math.isinf(im["psnr"].item()) and abs(im["ssim"].item() - 1) < 1e-5
    lm = latent_metrics(torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2))
    assert lm["latent_l2"].item() == 1.0
    records = [{"id": "a", "index": 0, "psnr_enhanced": 30.0, "psnr_render": 25.0, "lpips_enhanced": 0.1,
                "lpips_render": 0.3},
               {"id": "b", "index": 1, "psnr_enhanced": float("inf"), "psnr_render": 27.0, "lpips_enhanced": 0.2,
                "lpips_render": 0.2}]
    s = summarize(records)
    assert s["psnr_enhanced"] == 30.0 and s["psnr_render"] == 26.0 and s["psnr_gain"] == 4.0
    assert abs(s["lpips_gain"] + 0.1) < 1e-9 and s["views"] == 2 and "index" not in s


def test_prompt_table_indexes_embeddings():
    table = PromptTable(["a", "b"], torch.arange(2.0)[:, None, None].expand(2, 3, 4))
    out = table(torch.tensor([1, 0, 1]))
    assert out.shape == (3, 3, 4) and out[:, 0, 0].tolist() == [1.0, 0.0, 1.0]
