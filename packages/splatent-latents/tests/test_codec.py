import pytest
import torch

from splatent_latents import CODEC_NAMES, LatentError, load_codec
from splatent_latents.devices import parse_dtype, resolve_device, resolve_dtype


def test_unknown_codec_lists_the_names():
    with pytest.raises(LatentError, match="unknown codec 'vqgan'; use one of sd-vae, pca, taef2, tiny-random"):
        load_codec("vqgan")
    assert CODEC_NAMES == ("sd-vae", "pca", "taef2", "tiny-random")


def test_unknown_option_is_named():
    with pytest.raises(LatentError, match="codec 'pca' has no option 'model'"):
        load_codec("pca", model="stabilityai/sd-turbo")


def test_unfitted_pca_refuses_to_encode():
    codec = load_codec("pca")
    with pytest.raises(LatentError, match="no basis yet"):
        codec.encode(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("name,expected", [("bf16", torch.bfloat16), ("float16", torch.float16),
                                           ("fp32", torch.float32), (torch.float16, torch.float16)])
def test_parse_dtype_aliases(name, expected):
    assert parse_dtype(name) is expected


def test_bad_dtype_and_device_are_clear():
    with pytest.raises(LatentError, match="unknown dtype 'int8'"):
        parse_dtype("int8")
    with pytest.raises(LatentError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_clear():
    with pytest.raises(LatentError, match="sees no CUDA device; use --device cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_dtype():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", cpu, "sd-vae") is torch.float32
    assert resolve_dtype("auto", cuda, "pca") is torch.float32
    assert resolve_dtype("bf16", cpu, "pca") is torch.bfloat16
    assert resolve_dtype("auto", cpu, "taef2") is torch.float32
