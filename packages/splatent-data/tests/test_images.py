"""Image modes a capture can hold: each decoded to the RGB it shows, or refused by name."""

import numpy as np
import pytest
from PIL import Image

from splatent_data import SplatentError, load_rgb

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
