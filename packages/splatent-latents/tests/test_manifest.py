import json

import pytest
import torch

from splatent_latents import LatentError, LatentManifest, PCACodec, codec_from_manifest, read_manifest


def _manifest(**changes) -> LatentManifest:
    fields = dict(codec="sd-vae", codec_config={"name": "sd-vae", "model": "stabilityai/sd-turbo", "revision": None},
                  dtype="bfloat16", count=2, sizes={"a": [480, 264], "b": [64, 64]}, scaling_factor=0.18215)
    return LatentManifest(**{**fields, **changes})


def test_round_trip_and_latent_shape(tmp_path):
    manifest = _manifest()
    manifest.save(tmp_path)
    loaded = read_manifest(tmp_path)
    assert loaded == manifest and LatentManifest.load(tmp_path / "manifest.json") == manifest
    assert loaded.latent_shape("a") == (4, 60, 33) and loaded.model == "stabilityai/sd-turbo"


def test_unknown_keys_are_kept_aside(tmp_path):
    data = json.loads(_manifest().save(tmp_path).read_text())
    data["from_the_future"] = 1
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(tmp_path).extra == {"from_the_future": 1}


@pytest.mark.parametrize("text,match", [
    (None, "no manifest.json in"),
    ("{not json", "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"codec": "pca"}', "lacks 'codec_config', 'count', 'dtype', 'sizes'"),
    ('{"format_version": 9, "codec": "pca"}', "newer than this splatent-latents reads"),
    ('{"codec": "pca", "codec_config": {}, "dtype": "float32", "count": 1, "sizes": {"a": [1]}}', "sizes map stems"),
    # hand-edited or foreign manifests: one line naming the field, not a TypeError (or "'1' is newer than 1")
    ('{"format_version": "1", "codec": "pca"}', "format_version must be a whole number, got '1'"),
    ('{"codec": "pca", "codec_config": {}, "dtype": "float32", "count": 1, "sizes": {}, "extra": [1]}',
     "'extra' must be a JSON object"),
    ('{"codec": "pca", "codec_config": {}, "dtype": "float32", "count": 1, "sizes": {}, "downsample": 0}',
     "'downsample' must be a positive whole number, got 0"),
    ('{"codec": "pca", "codec_config": {}, "dtype": "float32", "count": 1, "sizes": {}, "channels": "4"}',
     "'channels' must be a positive whole number, got '4'"),
    ('{"codec": 4, "codec_config": {}, "dtype": "float32", "count": 1, "sizes": {}}', "'codec' must be a string"),
])
def test_bad_manifests_say_what_is_wrong(tmp_path, text, match):
    if text is not None:
        (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(LatentError, match=match):
        read_manifest(tmp_path)


def test_codec_from_manifest_reads_the_pca_basis_next_to_it(tmp_path):
    images = torch.rand(4, 3, 64, 64)
    codec = PCACodec.fit(images)
    codec.save(tmp_path / "pca_basis.safetensors")
    _manifest(codec="pca", codec_config={"name": "pca", "basis": "pca_basis.safetensors"}).save(tmp_path)
    moved = tmp_path.rename(tmp_path.with_name("moved"))  # the basis path is relative: folders can move
    rebuilt = codec_from_manifest(moved)
    assert torch.equal(rebuilt.encode(images), codec.encode(images))


def test_codec_from_manifest_rebuilds_tiny_random(tmp_path, tiny_codec):
    _manifest(codec="tiny-random", codec_config=tiny_codec.config()).save(tmp_path)
    rebuilt = codec_from_manifest(tmp_path)
    images = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert torch.equal(rebuilt.encode(images), tiny_codec.encode(images))
