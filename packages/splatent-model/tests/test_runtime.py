from __future__ import annotations

import pytest
import torch

from splatent_model import EnhanceInputError, RuntimeOptions, SplatentEnhancer, enhance_latents, prepare_enhancer


def test_fast_path_matches_eager_on_cpu(fresh_tiny, latents):
    expected = enhance_latents(fresh_tiny, latents)
    prepare_enhancer(fresh_tiny, RuntimeOptions(device="cpu", attention="sdpa", channels_last=True, fuse_qkv=True))
    assert fresh_tiny.channels_last
    assert any(".to_qkv." in k for k in fresh_tiny.unet.state_dict())
    assert torch.allclose(enhance_latents(fresh_tiny, latents), expected, atol=1e-4)


def test_bf16_is_close_to_float32(fresh_tiny, latents):
    expected = enhance_latents(fresh_tiny, latents)
    prepare_enhancer(fresh_tiny, RuntimeOptions(device="cpu", dtype="bfloat16"))
    out = enhance_latents(fresh_tiny, latents)
    assert out.dtype == torch.float32
    assert (out - expected).abs().mean() < 0.05 * expected.abs().mean()


def test_compiled_path_pads_batches_and_matches_eager(fresh_tiny, latents):
    expected = enhance_latents(fresh_tiny, latents)
    # aot_eager traces the UNet with dynamo like inductor does, without minutes of C++ codegen on CPU
    prepare_enhancer(fresh_tiny, RuntimeOptions(device="cpu", compile="default", compile_backend="aot_eager",
                                                batch_size=4))
    out = enhance_latents(fresh_tiny, latents, pad_to=4)
    assert out.shape == (2, 4, 8, 8)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(enhance_latents(fresh_tiny, latents[:1], pad_to=4), expected[:1], atol=1e-5)


def test_saving_after_fusing_keeps_the_original_layout(tmp_path, fresh_tiny, latents):
    expected = enhance_latents(fresh_tiny, latents)
    prepare_enhancer(fresh_tiny, RuntimeOptions(device="cpu", fuse_qkv=True))
    fresh_tiny.save_pretrained(tmp_path / "c")
    reloaded = SplatentEnhancer.from_pretrained(tmp_path / "c")
    assert not any(".to_qkv." in k for k in reloaded.unet.state_dict())
    assert torch.allclose(enhance_latents(reloaded, latents), expected, atol=1e-4)


def test_bad_options_are_clear(fresh_tiny):
    with pytest.raises(EnhanceInputError, match="attention"):
        prepare_enhancer(fresh_tiny, RuntimeOptions(device="cpu", attention="flash3"))
    with pytest.raises(EnhanceInputError, match="compile mode"):
        RuntimeOptions(compile="fastest").compile_mode(torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(EnhanceInputError, match="no CUDA device"):
            RuntimeOptions(device="cuda").resolved_device()


@pytest.mark.gpu
def test_compiled_cuda_graph_path_matches_eager_in_bf16(latents):
    eager = SplatentEnhancer.tiny()
    eager.encode_prompts([eager.config.prompt])
    prepare_enhancer(eager, RuntimeOptions(device="cuda", dtype="bfloat16"))
    compiled = SplatentEnhancer.tiny()
    compiled.encode_prompts([compiled.config.prompt])
    prepare_enhancer(compiled, RuntimeOptions(device="cuda", dtype="bfloat16", compile="reduce-overhead", batch_size=4))
    x = latents.cuda()
    expected = enhance_latents(eager, x)
    for _ in range(3):  # warm-up, recording, replay
        out = enhance_latents(compiled, x, pad_to=4)
    scale = expected.abs().mean()
    assert (out - expected).abs().mean() < 0.02 * scale
    assert (out - expected).abs().max() < 0.1 * expected.abs().max()
