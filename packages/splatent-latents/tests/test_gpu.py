"""CUDA paths: run on the GPU machine (skipped elsewhere)."""

import pytest
import torch

from splatent_latents import VaeCodec, decode_latents, extract_latents, load_latent, read_manifest, sd_vae_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_tiny_random_on_cuda_matches_cpu(tmp_path, make_images):
    make_images(tmp_path / "images", 5)
    # batches of 2: three batches, each written while the next one encodes (one in flight)
    gpu = extract_latents(tmp_path, output="gpu", codec="tiny-random", device="cuda", workers=2, batch_size=2)
    cpu = extract_latents(tmp_path, output="cpu", codec="tiny-random", device="cpu", workers=0)
    assert sorted(gpu.written) == sorted(cpu.written) and len(gpu.written) == 5
    assert read_manifest(gpu.output).dtype == "bfloat16" and read_manifest(cpu.output).dtype == "float32"
    for stem in gpu.written:
        a, b = load_latent(gpu.output / f"{stem}.pt"), load_latent(cpu.output / f"{stem}.pt")
        assert torch.allclose(a, b, atol=0.05 * float(b.abs().max()) + 1e-3)
    assert decode_latents(gpu.output, tmp_path / "png", device="cuda").written == gpu.written


def test_pca_on_cuda_matches_cpu(tmp_path, make_images):
    make_images(tmp_path / "images", 4)
    gpu = extract_latents(tmp_path, output="gpu", codec="pca", device="cuda")
    cpu = extract_latents(tmp_path, output="cpu", codec="pca", device="cpu", workers=0)
    for stem in gpu.written:
        assert torch.allclose(load_latent(gpu.output / f"{stem}.pt"), load_latent(cpu.output / f"{stem}.pt"), atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_sd_vae_architecture_encodes_a_bf16_batch(channels_last):
    from diffusers import AutoencoderKL

    codec = VaeCodec(AutoencoderKL(**sd_vae_config()), channels_last=channels_last).to("cuda", torch.bfloat16)
    weight = codec.vae.encoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last  # NCHW by default (measured)
    with torch.inference_mode():
        z = codec.encode(torch.rand(2, 3, 512, 512, device="cuda"))
    assert z.shape == (2, 4, 64, 64) and z.dtype == torch.bfloat16 and torch.isfinite(z).all()


def test_taef2_on_cuda_in_bf16_matches_cpu(tmp_path, make_images):
    make_images(tmp_path / "images", 4)
    gpu = extract_latents(tmp_path, output="gpu", codec="taef2", device="cuda", workers=2)
    cpu = extract_latents(tmp_path, output="cpu", codec="taef2", device="cpu", workers=0)
    assert read_manifest(gpu.output).dtype == "bfloat16" and read_manifest(gpu.output).channels == 32
    for stem in gpu.written:
        a, b = load_latent(gpu.output / f"{stem}.pt"), load_latent(cpu.output / f"{stem}.pt")
        assert a.shape == (32, 6, 8) and torch.allclose(a, b, atol=0.05 * float(b.abs().max()) + 1e-3)
    assert decode_latents(gpu.output, tmp_path / "png", device="cuda").written == gpu.written
