import numpy as np
import pytest
import torch

from splatent_data import llff_split
from splatent_latents import LatentError, PCACodec, load_codec


def _smooth(n: int, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 5, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_basis_is_orthonormal_and_shapes_follow_the_contract():
    codec = PCACodec.fit(_smooth(6))
    assert codec.components.shape == (4, 192) and codec.mean.shape == (192,)
    assert torch.allclose(codec.components @ codec.components.T, torch.eye(4), atol=1e-5)
    z = codec.encode(_smooth(2, seed=1))
    assert z.shape == (2, 4, 6, 8) and z.dtype == torch.float32
    assert codec.decode(z).shape == (2, 3, 48, 64)
    assert (codec.channels, codec.downsample) == (4, 8)


def test_decode_is_exact_on_the_span():
    codec = PCACodec.fit(_smooth(6))
    z = codec.encode(_smooth(1, seed=3)) * 0.2  # small enough to stay inside [0, 1] after decoding
    images = codec.decode(z)
    assert images.min() > 0 and images.max() < 1
    assert torch.allclose(codec.encode(images), z, atol=1e-5)


def test_scaling_factor_gives_unit_std_on_the_fitting_images():
    images = _smooth(8)
    codec = PCACodec.fit(images)
    scaled = codec.encode(images) * codec.scaling_factor
    assert abs(float(scaled.std()) - 1.0) < 0.02
    assert abs(float(scaled.mean(dim=(0, 2, 3)).abs().max())) < 0.05


def test_refit_gives_the_same_basis_and_the_file_round_trips(tmp_path):
    images = _smooth(5)
    a, b = PCACodec.fit(images), PCACodec.fit(list(images))  # one batch, or image by image
    assert torch.allclose(a.components, b.components, atol=1e-5)
    a.fit_info["fitted_on"] = "all 5 images"
    a.save(tmp_path / "pca_basis.safetensors")
    c = load_codec(**a.config())
    assert torch.equal(c.components, a.components) and torch.equal(c.mean, a.mean)
    assert c.scaling_factor == a.scaling_factor and c.fit_info["fitted_on"] == "all 5 images"


def test_bad_basis_files(tmp_path):
    with pytest.raises(LatentError, match="does not exist"):
        PCACodec.load(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LatentError, match="cannot read pca basis"):
        PCACodec.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(LatentError, match="not a splatent pca basis"):
        PCACodec.load(tmp_path / "other.safetensors")


def test_refuses_sampling_and_odd_sizes():
    codec = PCACodec.fit(_smooth(4))
    with pytest.raises(LatentError, match="deterministic"):
        codec.encode(_smooth(1), sample=True)
    with pytest.raises(LatentError, match="divisible by 8, got 60x44; resize to 56x40"):
        codec.encode(torch.rand(1, 3, 44, 60))
    with pytest.raises(LatentError, match=r"decodes latents of shape \[B, 4, h, w\]"):
        codec.decode(torch.zeros(1, 3, 4, 4))


def test_fox_crops_reach_the_documented_psnr(fox_eighth, psnr):
    """Basis fitted on fox's LLFF training views at 1/8 size; the test views decode at 24.5 dB here (JPEG draft
    decoding) and 24.1 dB with LANCZOS downscaling (README, benchmarks/RESULTS.md: tools/bench/pca_psnr.py)."""
    split = llff_split(list(fox_eighth))
    codec = PCACodec.fit([fox_eighth[s] for s in split.train])
    values = [psnr(codec.decode(codec.encode(fox_eighth[s][None]))[0], fox_eighth[s]) for s in split.test]
    assert len(values) == 7
    assert np.mean(values) > 24.0 and min(values) > 23.0, values
