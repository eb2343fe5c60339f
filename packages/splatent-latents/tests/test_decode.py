import numpy as np
import pytest
import torch
from PIL import Image

from splatent_latents import LatentError, decode_latents, extract_latents, save_latent


@pytest.fixture
def pca_latents(tmp_path, make_images):
    make_images(tmp_path / "images", 4)
    return extract_latents(tmp_path, codec="pca", workers=0).output


def test_decodes_a_folder_to_pngs_of_the_encoded_size(tmp_path, pca_latents, psnr, as_tensor):
    result = decode_latents(pca_latents, tmp_path / "png")
    assert result.written == ["0000", "0001", "0002", "0003"] and not result.failed and result.codec == "pca"
    for stem in result.written:
        png = tmp_path / "png" / f"{stem}.png"
        assert Image.open(png).size == (64, 48)
        assert psnr(as_tensor(png), as_tensor(tmp_path / "images" / f"{stem}.png")) > 20


def test_decodes_one_file_with_its_folders_codec(tmp_path, pca_latents):
    result = decode_latents(pca_latents / "0002.pt", tmp_path / "one")
    assert result.written == ["0002"] and sorted(p.name for p in (tmp_path / "one").iterdir()) == ["0002.png"]


def test_bad_latent_files_are_reported_and_the_rest_decoded(tmp_path, pca_latents):
    save_latent(pca_latents / "0001.pt", torch.zeros(3, 6, 8))  # wrong channel count
    save_latent(pca_latents / "0003.pt", torch.zeros(4, 3, 3))  # another size: its own batch
    result = decode_latents(pca_latents, tmp_path / "png", batch_size=8)
    assert list(result.failed) == ["0001.pt"] and "expected (4, h, w)" in result.failed["0001.pt"]
    assert result.written == ["0000", "0002", "0003"]
    assert Image.open(tmp_path / "png" / "0003.png").size == (24, 24)
    with pytest.raises(LatentError, match="0001.pt has shape"):
        decode_latents(pca_latents, tmp_path / "png", fail_fast=True)


def test_codec_comes_from_the_manifest_or_must_be_named(tmp_path, pca_latents, tiny_codec):
    with pytest.raises(LatentError, match="holds pca latents .*drop --codec or pass --codec pca"):
        decode_latents(pca_latents, tmp_path / "x", codec="sd-vae")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save(torch.randn(1, 4, 4, 4), foreign / "frame001.pt")  # the original scripts' files: no manifest
    with pytest.raises(LatentError, match="no manifest.json in .*pass --codec sd-vae"):
        decode_latents(foreign, tmp_path / "x")
    with pytest.raises(LatentError, match="pca latents decode only with the basis"):
        decode_latents(foreign, tmp_path / "x", codec="pca")
    result = decode_latents(foreign, tmp_path / "x", codec=tiny_codec)
    assert result.written == ["frame001"]
    assert np.asarray(Image.open(tmp_path / "x" / "frame001.png")).shape == (32, 32, 3)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(LatentError, match="does not exist"):
        decode_latents(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentError, match="no .pt latent files in"):
        decode_latents(tmp_path / "empty", tmp_path / "out")


def test_a_source_file_that_is_not_a_latent_is_refused_before_any_advice_to_delete_it(tmp_path, pca_latents):
    """A photo or the manifest passed by mistake was reported as a bad latent, 'delete it and re-extract'."""
    for wrong in (pca_latents / "manifest.json", tmp_path / "images" / "0001.png"):
        with pytest.raises(LatentError, match=f"{wrong.name} is not a {'.pt'} latent file; pass a latents folder") as info:
            decode_latents(wrong, tmp_path / "out")
        assert "delete" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_render_folder_decodes_with_the_codec_of_the_latents_it_was_rendered_from(tmp_path, pca_latents):
    """R/<scene>/nvs has no manifest of its own: decode said "no manifest.json", and pca renders had no way at all."""
    import json
    import shutil

    nvs = tmp_path / "R" / "scene" / "nvs"
    nvs.mkdir(parents=True)
    for name in ("0001.pt", "0003.pt"):
        shutil.copy(pca_latents / name, nvs / name)
    (tmp_path / "R" / "scene" / "manifest.json").write_text(json.dumps({"stage": "render", "latents": str(pca_latents)}))
    result = decode_latents(nvs, tmp_path / "png")
    assert result.written == ["0001", "0003"] and result.codec == "pca" and not result.failed
    assert np.array_equal(np.asarray(Image.open(tmp_path / "png" / "0001.png")),
                          np.asarray(Image.open(decode_latents(pca_latents / "0001.pt", tmp_path / "own").output / "0001.png")))
    shutil.rmtree(pca_latents)
    with pytest.raises(LatentError, match="renders of the latents in .* which are gone; pass --codec"):
        decode_latents(nvs, tmp_path / "png2")
