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
