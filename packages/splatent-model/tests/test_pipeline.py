from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from splatent_model import (
    EnhanceInputError, EnhanceOutput, EnhancePipeline, RuntimeOptions, SplatentEnhancer, codec_for,
)

CPU = RuntimeOptions(device="cpu", batch_size=3)
SRC = Path(__file__).resolve().parents[1] / "src" / "splatent_model"


def _counting(model: SplatentEnhancer) -> list[list[str]]:
    """Record the prompts each ``encode_prompts`` call of ``model`` is asked for."""
    calls: list[list[str]] = []
    original = model.encode_prompts

    def encode_prompts(prompts, **kwargs):
        calls.append(sorted({p for p in prompts if p not in model.prompt_cache}))
        return original(prompts, **kwargs)

    model.encode_prompts = encode_prompts
    return calls


def test_pipeline_gives_what_the_enhancer_and_codec_give_by_hand(latents):
    by_hand = SplatentEnhancer.tiny().eval()  # the same seeded weights as the pipeline's
    codec = codec_for(by_hand)
    with torch.no_grad():
        expected = by_hand(latents, prompt_embeds=by_hand.prompt_embeds())
        expected_images = codec.decode(expected).float()
    model = SplatentEnhancer.tiny()
    pipe = EnhancePipeline(model, codec, RuntimeOptions(device="cpu", batch_size=1))  # two UNet passes
    out = pipe(latents)
    assert isinstance(out, EnhanceOutput)
    assert out.latents.shape == (2, 4, 8, 8) and out.latents.dtype == torch.float32
    assert out.images.shape == (2, 3, 64, 64)
    assert torch.allclose(out.latents, expected, atol=1e-4)  # fused QKV + SDPA against the eager model
    assert torch.allclose(out.images, expected_images, atol=1e-4)
    assert out.uint8_images().shape == (2, 64, 64, 3) and out.uint8_images().dtype == torch.uint8
    assert pipe(latents, decode=False).images is None


def test_prompt_embedding_is_encoded_once_and_held_by_the_pipeline(latents):
    model = SplatentEnhancer.tiny()
    calls = _counting(model)
    pipe = EnhancePipeline(model, codec_for(model), CPU)
    first = pipe(latents).latents
    assert torch.allclose(pipe(latents[:1]).latents, first[:1], atol=1e-5)
    assert calls == [[model.config.prompt]]
    assert pipe.encode_prompt() is pipe.prompt_embeds[model.config.prompt]
    assert pipe.encode_prompt().device == model.device and pipe.encode_prompt().dtype == model.dtype
    other = pipe(latents, prompt="a fox").latents
    assert calls == [[model.config.prompt], ["a fox"]]
    assert not torch.allclose(other, first)
    pipe(latents, prompt="a fox")
    assert len(calls) == 2


def test_timestep_override_is_the_pipelines(latents):
    model = SplatentEnhancer.tiny()
    codec = codec_for(model)
    default = EnhancePipeline(model, codec, CPU)(latents, decode=False).latents
    early = EnhancePipeline(model, codec, CPU, timestep=199)(latents, decode=False).latents
    assert int(model.config.timestep) == 300  # the model's config is untouched
    with torch.no_grad():
        assert torch.allclose(early, model(latents, timestep=199), atol=1e-5)
    assert not torch.allclose(early, default)


def test_score_compares_render_and_output_with_ground_truth(latents):
    model = SplatentEnhancer.tiny()
    pipe = EnhancePipeline(model, codec_for(model), CPU)
    out = pipe(latents)
    gt_image = out.images[0].clone()
    scored = pipe.score(latents[:, 0], out, targets=out.latents, gt_images=[gt_image, None])
    assert [s["gt_source"] for s in scored] == ["image", "decoded_target"]
    for s in scored:  # the output is the truth here: infinite PSNR is recorded as None, the render scores finite
        assert s["psnr_out"] is None and s["latent_psnr_out"] is None and s["ssim_out"] == pytest.approx(1.0, abs=1e-4)
        assert isinstance(s["psnr_in"], float) and isinstance(s["latent_psnr_in"], float) and s["ssim_in"] < 1.0


def test_bad_inputs_are_clear(latents):
    model = SplatentEnhancer.tiny()
    pipe = EnhancePipeline(model, codec_for(model), CPU)
    with pytest.raises(EnhanceInputError, match=r"\[B, V, C, h, w\]"):
        pipe(latents[0])
    with pytest.raises(EnhanceInputError, match="4-channel"):
        EnhancePipeline(SplatentEnhancer.tiny(channels=32), codec_for(model), CPU)


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (relative ones as ``.name``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_model_never_imports_the_checkpoint_functions_and_the_pipeline_no_files():
    assert not {".checkpoint", "splatent_model.checkpoint"} & _imported_modules(SRC / "enhancer.py")
    assert not {".checkpoint", ".enhancer", ".inference"} & _imported_modules(SRC / "pretrained.py")
    pipeline = _imported_modules(SRC / "pipeline.py")
    assert not {".files", ".inference", "splatent_data", "json", "pathlib"} & pipeline
    assert not {".inference", ".pipeline"} & _imported_modules(SRC / "files.py")


@pytest.mark.gpu
def test_compiled_bf16_pipeline_on_cuda_follows_the_cpu_one(latents):
    cpu = SplatentEnhancer.tiny()
    expected = EnhancePipeline(cpu, codec_for(cpu), CPU)(latents)
    model = SplatentEnhancer.tiny()
    pipe = EnhancePipeline(model, codec_for(model), RuntimeOptions(device="cuda", batch_size=4, compile=True))
    assert model.dtype == torch.bfloat16 and pipe.pad_to == 4
    for _ in range(3):  # warm-up, recording, replay
        out = pipe(latents)
    got = out.latents.float().cpu()
    assert got.shape == expected.latents.shape and out.images.shape == expected.images.shape
    assert (got - expected.latents).abs().mean() < 0.03 * expected.latents.abs().mean()
    assert (out.images.float().cpu() - expected.images).abs().mean() < 0.03
