import pytest
import torch

from splatent_latents import LatentError, VaeCodec, load_codec, sd_vae_config


def test_tiny_random_shapes_dtype_and_range(tiny_codec):
    images = torch.rand(2, 3, 48, 64)
    with torch.inference_mode():
        z = tiny_codec.encode(images)
        out = tiny_codec.decode(z)
    assert z.shape == (2, 4, 6, 8) and z.dtype == torch.float32
    assert out.shape == (2, 3, 48, 64) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert (tiny_codec.channels, tiny_codec.downsample, tiny_codec.name) == (4, 8, "tiny-random")


def test_scaling_factor_and_config_round_trip(tiny_codec, tmp_path):
    assert tiny_codec.scaling_factor == tiny_codec.vae.config.scaling_factor == 0.18215
    rebuilt = load_codec(**tiny_codec.config())
    images = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(rebuilt.encode(images), tiny_codec.encode(images))
    # through the real from_pretrained path: a pipeline folder (vae/) and a bare VAE folder
    tiny_codec.vae.save_pretrained(tmp_path / "pipe" / "vae")
    for folder in (tmp_path / "pipe", tmp_path / "pipe" / "vae"):
        loaded = load_codec("sd-vae", model=str(folder))
        assert loaded.scaling_factor == 0.18215 and loaded.config()["model"] == str(folder.resolve())
        with torch.inference_mode():
            assert torch.allclose(loaded.encode(images), tiny_codec.encode(images), atol=1e-6)


def test_sampling_uses_one_generator_per_image(tiny_codec):
    images = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        mean = tiny_codec.encode(images)
        a = tiny_codec.encode(images, sample=True, generator=[torch.Generator().manual_seed(s) for s in (1, 2)])
        b = tiny_codec.encode(images[1:], sample=True, generator=[torch.Generator().manual_seed(2)])
    assert not torch.allclose(a, mean)
    assert torch.allclose(a[1:], b, atol=1e-6)  # a draw depends on its own generator only


def test_bfloat16_runs_and_stays_close(tiny_codec):
    images = torch.rand(1, 3, 32, 32)
    half = load_codec("tiny-random").to("cpu", torch.bfloat16)
    with torch.inference_mode():
        z16, z32 = half.encode(images), tiny_codec.encode(images)
    assert z16.dtype == torch.bfloat16 and half.dtype == torch.bfloat16
    assert torch.allclose(z16.float(), z32, atol=0.05 * float(z32.abs().max()) + 1e-3)


def test_sd_vae_config_is_the_sd_turbo_architecture():
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        vae = AutoencoderKL(**sd_vae_config())
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    codec = VaeCodec(vae)
    assert (codec.downsample, codec.channels, codec.scaling_factor) == (8, 4, 0.18215)


def test_bad_local_models(tmp_path):
    with pytest.raises(LatentError, match="does not exist"):
        load_codec("sd-vae", model=str(tmp_path / "missing"))
    with pytest.raises(LatentError, match="holds neither vae/config.json nor config.json"):
        load_codec("sd-vae", model=str(tmp_path))


def test_vae_attention_modes_agree_and_auto_picks_by_score_size():
    from diffusers import AutoencoderKL

    from splatent_latents import tiny_vae_config
    from splatent_latents.vae import VaeAttnProcessor

    torch.manual_seed(0)
    vae = AutoencoderKL(**tiny_vae_config())
    images = torch.rand(2, 3, 64, 64)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    results = {}
    for mode in ("sdpa", "matmul", "auto"):
        codec = VaeCodec(vae, attention=mode)
        assert all(isinstance(p, VaeAttnProcessor) and p.mode == mode for p in vae.attn_processors.values())
        latents.grad = None
        decoded = codec.decode(latents)
        decoded.square().mean().backward()  # the training losses' path: gradients to the latents
        with torch.no_grad():
            results[mode] = (codec.encode(images), decoded.detach(), latents.grad.clone())
    for mode in ("matmul", "auto"):
        for mine, sdpa in zip(results[mode], results["sdpa"]):
            assert torch.allclose(mine, sdpa, atol=1e-5, rtol=1e-4)
    auto = VaeAttnProcessor("auto", max_scores_bytes=16 * 4096**2 * 4)
    assert auto.uses_matmul(16, 1, 4096) and not auto.uses_matmul(17, 1, 4096)  # 512² images: batch 16 fits
    assert VaeAttnProcessor("matmul").uses_matmul(64, 1, 16384) and not VaeAttnProcessor("sdpa").uses_matmul(1, 1, 1)
    with pytest.raises(LatentError, match="not one of auto, matmul, sdpa"):
        VaeCodec(vae, attention="flash")
