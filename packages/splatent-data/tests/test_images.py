"""Image modes a capture can hold: each decoded to the RGB it shows, or refused by name."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splatent_data import SplatentError, latent_image_mismatch, load_rgb, read_image_size, save_rgb

RAMP = np.linspace(0, 255, 32).round().astype(np.uint8)[None].repeat(8, axis=0)  # [8, 32] grey ramp


def _expect_grey(rgb: np.ndarray) -> None:
    assert rgb.shape == (8, 32, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - RAMP[..., None].astype(int)).max() <= 1


def test_16_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(RAMP.astype(np.uint16) * 257).save(path)  # a 16-bit grey PNG of the ramp
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    _expect_grey(load_rgb(path))


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1"])
def test_other_modes_become_the_rgb_they_show(tmp_path, mode):
    rgb = np.stack([RAMP, 255 - RAMP, np.full_like(RAMP, 128)], axis=-1)
    img = Image.fromarray(rgb)
    if mode == "L":
        img, expected = Image.fromarray(RAMP), np.repeat(RAMP[..., None], 3, axis=2)
    elif mode == "1":
        img = Image.fromarray(np.where(RAMP > 127, 255, 0).astype(np.uint8)).convert("1")
        expected = np.repeat(np.where(RAMP > 127, 255, 0).astype(np.uint8)[..., None], 3, axis=2)
    else:
        img = img.convert(mode) if mode != "P" else img.quantize(256)
        expected = np.asarray(img.convert("RGB"))
    path = tmp_path / f"img_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    img.save(path, quality=100) if mode == "CMYK" else img.save(path)
    out = load_rgb(path)
    assert out.shape == (8, 32, 3) and out.dtype == np.uint8
    tolerance = 12 if mode == "CMYK" else 0  # JPEG
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance


def test_float_image_is_refused_by_name(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(RAMP.astype(np.float32) / 255).save(path)
    with pytest.raises(SplatentError, match="float.tif is a 32-bit float image"):
        load_rgb(path)


def test_an_image_over_pillows_pixel_limit_is_one_clear_error(tmp_path, monkeypatch):
    """Pillow's DecompressionBombError is not an OSError: a huge panorama was a traceback in scene loading."""
    path = tmp_path / "huge.png"
    Image.new("RGB", (128, 96)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48)  # 128x96 is four times it: Pillow refuses
    for read in (load_rgb, read_image_size):
        with pytest.raises(SplatentError, match=r"huge.png is too large for Pillow to open .*downscale it"):
            read(path)


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "view.png"
    save_rgb(path, np.zeros((8, 8, 3), np.uint8))
    before = path.read_bytes()

    def full_disk(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half")  # the encoder wrote part of the file, then the disk filled
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_rgb(path, np.full((8, 8, 3), 255, np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.png"]


def test_which_images_can_be_a_latents_ground_truth():
    assert latent_image_mismatch(1921, 1081, 240, 135) is None  # the photo extraction rounded down
    assert latent_image_mismatch(3840, 2160, 240, 135) is None  # the full-size photo: resized down by the caller
    assert "another aspect ratio" in latent_image_mismatch(1920, 1920, 240, 135)
    assert "smaller than its latent" in latent_image_mismatch(960, 540, 240, 135)  # images_8 beside images_4's latents
