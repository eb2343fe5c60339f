import logging

import pytest
import torch
from PIL import Image

from splatent_latents import LatentError
from splatent_latents.images import ImageBatches, batches_by_size, find_image_dir, probe_images, read_image


def test_image_folder_choice(tmp_path, make_images, caplog):
    make_images(tmp_path / "scene" / "images", 1)
    with caplog.at_level(logging.INFO, logger="splatent"):
        assert find_image_dir(tmp_path / "scene") == tmp_path / "scene" / "images"
    assert "no images_4/ in" in caplog.text and "encoding images/ instead" in caplog.text
    make_images(tmp_path / "scene" / "images_4", 1)
    assert find_image_dir(tmp_path / "scene") == tmp_path / "scene" / "images_4"
    assert find_image_dir(tmp_path / "scene", "images") == tmp_path / "scene" / "images"
    make_images(tmp_path / "flat", 1)
    assert find_image_dir(tmp_path / "flat") == tmp_path / "flat"
    with pytest.raises(LatentError, match="image folder .*images_8 does not exist"):
        find_image_dir(tmp_path / "scene", "images_8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LatentError, match="no images_4/ or images/ folder and no images; pass --images"):
        find_image_dir(tmp_path / "empty")


def test_a_scene_that_is_a_file_is_not_said_to_be_missing(tmp_path):
    (tmp_path / "transforms.json").write_text("{}")
    with pytest.raises(LatentError, match="transforms.json is a file, not a folder; pass the folder"):
        find_image_dir(tmp_path / "transforms.json")
    with pytest.raises(LatentError, match="nowhere does not exist"):
        find_image_dir(tmp_path / "nowhere")


def test_probe_reports_bad_files_and_refuses_ambiguity(tmp_path, make_images):
    make_images(tmp_path / "a", 2)
    (tmp_path / "a" / "junk.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (5, 30)).save(tmp_path / "a" / "thin.png")
    items, failed = probe_images(tmp_path / "a")
    assert [i.stem for i in items] == ["0000", "0001"]
    assert set(failed) == {"junk.png", "thin.png"} and "smaller than one 8x8" in failed["thin.png"]
    (tmp_path / "b").mkdir()
    with pytest.raises(LatentError, match=r"no images \(.png, .jpg, .jpeg, .tif, .tiff, .webp, .bmp\)"):  # all it reads
        probe_images(tmp_path / "b")
    make_images(tmp_path / "b", 1, ext=".png")
    make_images(tmp_path / "b", 1, ext=".jpg")
    with pytest.raises(LatentError, match="0000.jpg and 0000.png: latents are named by stem"):
        probe_images(tmp_path / "b")


def test_grey_rgba_and_odd_sizes_become_rgb_multiples_of_8(tmp_path, caplog):
    Image.new("L", (65, 50), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    with caplog.at_level(logging.INFO, logger="splatent"):
        items, failed = probe_images(tmp_path)
    assert not failed and "converted" in caplog.text and "resized down" in caplog.text
    clear, grey = items
    assert grey.encoded_size == (48, 64) and grey.resized and not clear.resized
    g = read_image(grey)
    assert g.shape == (3, 48, 64) and g.dtype == torch.uint8 and int(g.float().mean().round()) == 128
    assert torch.all(read_image(clear) == 255)  # transparent over white


def test_batches_group_sizes_within_a_pixel_budget(tmp_path, make_images):
    make_images(tmp_path, 5, size=(64, 48))
    Image.new("RGB", (32, 32)).save(tmp_path / "small.png")
    items, _ = probe_images(tmp_path)
    batches = batches_by_size(items, None, pixel_budget=2 * 64 * 48)
    assert batches == [[0, 1], [2, 3], [4], [5]]
    assert batches_by_size(items, 10, 1) == [[0, 1, 2, 3, 4], [5]]
    images, good, bad = ImageBatches(items, batches)[0]  # NumPy: it crosses the worker pipe, not shared memory
    assert images.shape == (2, 3, 48, 64) and good == [0, 1] and bad == {}


def test_an_image_over_pillows_pixel_limit_is_a_failed_file_not_a_crash(tmp_path, make_images, monkeypatch):
    """Pillow raises DecompressionBombError (not an OSError) past twice ``MAX_IMAGE_PIXELS``: a huge panorama
    (or a header that claims one) was a traceback."""
    make_images(tmp_path, 2, size=(64, 48))
    Image.new("RGB", (128, 96)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48)  # 128x96 is four times it
    items, failed = probe_images(tmp_path)
    assert [i.stem for i in items] == ["0000", "0001"] and list(failed) == ["huge.png"]
    assert "huge.png" in failed["huge.png"] and "12288 pixels" in failed["huge.png"] and "downscale" in failed["huge.png"]
