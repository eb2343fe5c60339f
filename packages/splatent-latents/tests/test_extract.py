import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image

from splatent_latents import LatentError, PCACodec, extract_latents, load_latent, read_manifest


def _stems(folder):
    return sorted(p.stem for p in folder.glob("*.pt"))


def _leftovers(folder):
    """Anything but whole latents, the manifest and the basis: temporary or partial files."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".pt" and p.name not in ("manifest.json", "pca_basis.safetensors"))


def test_pca_on_an_image_folder_writes_readable_latents_and_a_manifest(tmp_path, make_images, psnr, as_tensor):
    paths = make_images(tmp_path / "scene" / "images_4", 5)
    Image.open(paths[0]).resize((70, 50)).save(tmp_path / "scene" / "images_4" / "odd.png")
    result = extract_latents(tmp_path / "scene", codec="pca", workers=0)
    out = tmp_path / "scene" / "features_sd_turbo"
    assert result.output == out and result.written == ["0000", "0001", "0002", "0003", "0004", "odd"]
    assert not result.skipped and not result.failed and _leftovers(out) == []
    for stem in result.written:
        raw = torch.load(out / f"{stem}.pt", weights_only=True)
        assert raw.dtype == torch.float32 and raw.shape == (4, 6, 8)  # odd.png: 70x50 encoded at 64x48
    manifest = read_manifest(out)
    assert (manifest.codec, manifest.dtype, manifest.count, manifest.images) == ("pca", "float32", 6, "images_4")
    assert manifest.sizes["odd"] == [48, 64] and manifest.sizes["0000"] == [48, 64]
    assert manifest.codec_config == {"name": "pca", "basis": "pca_basis.safetensors"}
    assert abs(manifest.scaling_factor - PCACodec.load(out / "pca_basis.safetensors").scaling_factor) < 1e-12
    codec = PCACodec.load(out / "pca_basis.safetensors")
    decoded, original = codec.decode(load_latent(out / "0002.pt")[None])[0], as_tensor(paths[2])
    flat = original.mean(dim=(1, 2), keepdim=True).expand_as(original)
    assert psnr(decoded, original) > 20 and psnr(decoded, original) > psnr(flat, original) + 8
    assert "all 6 images (no poses" in codec.fit_info["fitted_on"]


def test_resume_skips_exactly_the_finished_latents(tmp_path, make_images):
    make_images(tmp_path / "images", 6)
    extract_latents(tmp_path, codec="pca", workers=0)
    out = tmp_path / "features_sd_turbo"
    for stem in ("0001", "0004"):
        (out / f"{stem}.pt").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")}
    result = extract_latents(tmp_path, workers=0)  # codec follows the manifest
    assert result.codec == "pca" and result.written == ["0001", "0004"]
    assert result.skipped == ["0000", "0002", "0003", "0005"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt") if p.name in before} == before
    assert read_manifest(out).count == 6


def test_a_latent_whose_image_changed_size_is_re_encoded(tmp_path, make_images):
    make_images(tmp_path / "images", 3)
    extract_latents(tmp_path, codec="pca", workers=0)
    make_images(tmp_path / "images", 1, size=(32, 32))  # 0000.png is now 32x32
    result = extract_latents(tmp_path, workers=0)
    assert result.written == ["0000"] and result.skipped == ["0001", "0002"]
    assert load_latent(tmp_path / "features_sd_turbo" / "0000.pt").shape == (4, 4, 4)
    assert read_manifest(tmp_path / "features_sd_turbo").sizes["0000"] == [32, 32]


def test_an_interrupted_run_keeps_whole_latents_only_and_resumes(tmp_path, make_images, monkeypatch):
    make_images(tmp_path / "images", 6)
    encode, calls = PCACodec.encode, []

    def dying(self, images, **kwargs):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt  # like Ctrl-C while the second batch is on the device
        return encode(self, images, **kwargs)

    monkeypatch.setattr(PCACodec, "encode", dying)
    with pytest.raises(KeyboardInterrupt):
        extract_latents(tmp_path, codec="pca", batch_size=2, workers=0)
    out = tmp_path / "features_sd_turbo"
    assert _stems(out) == ["0000", "0001"] and _leftovers(out) == []
    for stem in _stems(out):
        assert load_latent(out / f"{stem}.pt").shape == (4, 6, 8)
    assert sorted(read_manifest(out).sizes) == ["0000", "0001"]
    monkeypatch.setattr(PCACodec, "encode", encode)
    result = extract_latents(tmp_path, batch_size=2, workers=0)
    assert result.skipped == ["0000", "0001"] and result.written == ["0002", "0003", "0004", "0005"]


def test_a_kill_during_a_write_leaves_no_partial_file(tmp_path, make_images, monkeypatch):
    make_images(tmp_path / "images", 4)
    real_fsync, writes = os.fsync, []

    def dying_fsync(fd):
        writes.append(fd)
        if len(writes) == 5:  # basis, manifest, two latents, then one latent is half on disk
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        extract_latents(tmp_path, codec="pca", batch_size=1, workers=0)
    out = tmp_path / "features_sd_turbo"
    assert 1 <= len(_stems(out)) < 4 and _leftovers(out) == []
    assert all(load_latent(out / f"{s}.pt").shape == (4, 6, 8) for s in _stems(out))


def test_a_request_that_disagrees_with_the_manifest_is_refused(tmp_path, make_images):
    make_images(tmp_path / "images", 2)
    make_images(tmp_path / "images_2", 2)
    extract_latents(tmp_path, codec="tiny-random", workers=0)
    out = tmp_path / "features_sd_turbo"
    with pytest.raises(LatentError, match="holds latents made with codec=tiny-random but this run asks for codec=pca; "
                                          "pass --codec tiny-random to resume, --overwrite to replace them"):
        extract_latents(tmp_path, codec="pca", workers=0)
    with pytest.raises(LatentError, match="dtype=float32 but this run asks for dtype=bfloat16; pass --dtype float32"):
        extract_latents(tmp_path, dtype="bf16", workers=0)
    with pytest.raises(LatentError, match="sample=False but this run asks for sample=True; drop --sample"):
        extract_latents(tmp_path, sample=True, workers=0)
    with pytest.raises(LatentError, match="images=images but this run asks for images=images_2"):
        extract_latents(tmp_path, images="images_2", workers=0)
    with pytest.raises(LatentError, match="choose sd-vae weights; codec tiny-random has none"):
        extract_latents(tmp_path, model="stabilityai/sd-turbo", workers=0)
    assert _stems(out) == ["0000", "0001"]
    result = extract_latents(tmp_path, codec="pca", overwrite=True, workers=0)
    assert result.written == ["0000", "0001"] and read_manifest(out).codec == "pca"


def test_latents_without_a_manifest_are_not_mixed_with_new_ones(tmp_path, make_images):
    make_images(tmp_path / "images", 2)
    (tmp_path / "features_sd_turbo").mkdir()
    torch.save(torch.zeros(4, 6, 8), tmp_path / "features_sd_turbo" / "0000.pt")
    with pytest.raises(LatentError, match="holds 1 latent file.* but no manifest.json.*pass --overwrite"):
        extract_latents(tmp_path, codec="pca", workers=0)
    assert extract_latents(tmp_path, codec="pca", overwrite=True, workers=0).written == ["0000", "0001"]


def test_unreadable_images_are_reported_by_name_and_the_rest_is_written(tmp_path, make_images):
    paths = make_images(tmp_path / "images", 4, ext=".jpg")
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) * 4 // 5])  # truncated: the header reads, the pixels do not
    (tmp_path / "images" / "notes.png").write_bytes(b"plain text")  # not even a header
    result = extract_latents(tmp_path, codec="pca", workers=0)
    assert sorted(result.failed) == ["0001.jpg", "notes.png"]
    assert "0001.jpg" in result.failed["0001.jpg"] and "notes.png" in result.failed["notes.png"]
    assert result.written == ["0000", "0002", "0003"]
    assert sorted(read_manifest(tmp_path / "features_sd_turbo").sizes) == ["0000", "0002", "0003"]
    with pytest.raises(LatentError, match="notes.png"):
        extract_latents(tmp_path, fail_fast=True, workers=0)
    (tmp_path / "images" / "notes.png").unlink()
    with pytest.raises(LatentError, match="0001.jpg"):
        extract_latents(tmp_path, fail_fast=True, workers=0)


def test_empty_folder_and_absolute_output(tmp_path, make_images):
    (tmp_path / "images").mkdir()
    with pytest.raises(LatentError, match="no images .* in .*images"):
        extract_latents(tmp_path, codec="pca")
    make_images(tmp_path / "images", 2)
    result = extract_latents(tmp_path, output=tmp_path / "elsewhere" / "latents", codec="pca", workers=0)
    assert result.output == tmp_path / "elsewhere" / "latents" and _stems(result.output) == ["0000", "0001"]


def test_pca_on_a_posed_scene_fits_training_views_only(tmp_path, caplog):
    from splatent_data import load_scene, make_synthetic_scene, split_scene
    from splatent_latents.images import probe_images, read_image

    make_synthetic_scene(tmp_path / "scene", n_views=10, width=48, height=32)
    with caplog.at_level(logging.INFO, logger="splatent"):
        result = extract_latents(tmp_path / "scene", codec="pca", workers=0)
    assert len(result.written) == 10
    split = split_scene(load_scene(tmp_path / "scene"))
    items = {i.stem: i for i in probe_images(tmp_path / "scene" / "images")[0]}
    expected = PCACodec.fit([read_image(items[s]).float() / 255 for s in split.train])
    saved = PCACodec.load(result.output / "pca_basis.safetensors")
    assert torch.allclose(saved.components, expected.components, atol=1e-6)
    assert saved.fit_info["fitted_on"] == f"the {len(split.train)} training views ({len(split.test)} test views stay unseen)"
    assert "fitted the pca basis on the 8 training views" in caplog.text
    # a resumed run reuses the saved basis rather than refitting
    (result.output / "0003.pt").unlink()
    with caplog.at_level(logging.INFO, logger="splatent"):
        assert extract_latents(tmp_path / "scene", workers=0).written == ["0003"]
    assert "reusing the pca basis" in caplog.text


def test_tiny_random_draws_do_not_depend_on_batching_or_workers(tmp_path, make_images):
    make_images(tmp_path / "images", 5)
    a = extract_latents(tmp_path, output="a", codec="tiny-random", sample=True, seed=7, batch_size=1, workers=0)
    b = extract_latents(tmp_path, output="b", codec="tiny-random", sample=True, seed=7, batch_size=3, workers=1)
    mean = extract_latents(tmp_path, output="mean", codec="tiny-random", workers=0)
    assert a.written == b.written == mean.written == ["0000", "0001", "0002", "0003", "0004"]
    for stem in a.written:
        za, zb = load_latent(a.output / f"{stem}.pt"), load_latent(b.output / f"{stem}.pt")
        assert torch.allclose(za, zb, atol=1e-5)
        assert not torch.allclose(za, load_latent(mean.output / f"{stem}.pt"), atol=1e-3)
    manifest = read_manifest(a.output)
    assert (manifest.codec, manifest.sample, manifest.seed, manifest.scaling_factor) == ("tiny-random", True, 7, 0.18215)


def test_accelerate_processes_split_the_images_and_write_each_once(tmp_path, make_images):
    pytest.importorskip("accelerate")
    make_images(tmp_path / "images", 7)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, pathlib
        from splatent_latents import extract_latents
        r = extract_latents({str(tmp_path)!r}, codec="pca", workers=0, device="cpu")
        # one file per rank: the processes' stdout lines can interleave in one pipe
        out = pathlib.Path({str(tmp_path)!r}) / ("result_" + os.environ["RANK"] + ".json")
        out.write_text(json.dumps({{"written": r.written, "skipped": r.skipped}}))
        # a program's end under accelerate launch (as the splatent CLI's): gloo aborts at exit otherwise
        import torch.distributed as dist
        dist.destroy_process_group()
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --multi_gpu is accelerate's torchrun launcher; without CUDA its processes talk over gloo on the CPU
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("result_*.json"))]
    assert len(results) == 2  # each process reports the gathered totals
    for result in results:
        assert result["written"] == [f"{i:04d}" for i in range(7)]  # sorted, no stem twice
    assert read_manifest(tmp_path / "features_sd_turbo").count == 7


def test_a_compiled_encoder_sees_one_batch_shape_and_padding_changes_no_latent(tmp_path, make_images, monkeypatch):
    from splatent_latents import VaeCodec

    make_images(tmp_path / "images", 5)
    (tmp_path / "images" / "0002.png").write_bytes(b"plain text")  # unreadable: 4 images left
    plain = extract_latents(tmp_path, output="plain", codec="tiny-random", sample=True, seed=3, batch_size=3, workers=0)
    monkeypatch.setattr(VaeCodec, "compile", lambda self: self)  # compiling takes minutes on a CPU
    seen = []
    encode = VaeCodec.encode
    monkeypatch.setattr(VaeCodec, "encode", lambda self, x, **kw: seen.append(len(x)) or encode(self, x, **kw))
    padded = extract_latents(tmp_path, output="padded", codec="tiny-random", sample=True, seed=3, batch_size=3,
                             workers=0, compile=True)
    assert seen == [3, 3]  # [0000, 0001, 0003], [0004 + two copies]: one shape, one compiled graph
    seen.clear()
    make_images(tmp_path / "small" / "images", 1)  # a scene smaller than a batch still runs the same graph
    extract_latents(tmp_path / "small", codec="tiny-random", batch_size=3, workers=0, compile=True)
    assert seen == [3]
    assert padded.written == plain.written == ["0000", "0001", "0003", "0004"]
    for stem in plain.written:
        assert torch.allclose(load_latent(plain.output / f"{stem}.pt"), load_latent(padded.output / f"{stem}.pt"), atol=1e-6)


def test_pca_on_an_llff_scene_fits_training_views_only(tmp_path):
    """poses_bounds.npy poses a scene as transforms.json and COLMAP do: its test views stay out of the basis."""
    from splatent_data import load_scene, make_synthetic_scene, split_scene, write_llff

    scene = make_synthetic_scene(tmp_path / "scene", n_views=10, width=48, height=32)
    (tmp_path / "scene" / "transforms.json").unlink()
    write_llff(scene.cameras, tmp_path / "scene")
    split = split_scene(load_scene(tmp_path / "scene"))
    assert split.test  # the LLFF split holds views out
    result = extract_latents(tmp_path / "scene", codec="pca", workers=0)
    saved = PCACodec.load(result.output / "pca_basis.safetensors")
    assert saved.fit_info["fitted_on"] == f"the {len(split.train)} training views ({len(split.test)} test views stay unseen)"


def test_a_resumed_pca_run_whose_basis_is_gone_does_not_mix_two_bases(tmp_path, make_images):
    """The latents on disk were encoded with the deleted basis: a refit (on other images) would keep them beside
    latents of the new basis, and decode them wrongly."""
    make_images(tmp_path / "images", 4)
    extract_latents(tmp_path, codec="pca", workers=0)
    out = tmp_path / "features_sd_turbo"
    make_images(tmp_path / "more", 6, seed=5)
    for path in (tmp_path / "more").iterdir():
        path.rename(tmp_path / "images" / f"new_{path.name}")
    (out / "pca_basis.safetensors").unlink()
    with pytest.raises(LatentError, match="holds 4 latent file.* of a pca basis that is gone .no pca_basis.safetensors.*--overwrite"):
        extract_latents(tmp_path, workers=0)
    assert not (out / "pca_basis.safetensors").exists() and _stems(out) == ["0000", "0001", "0002", "0003"]
    result = extract_latents(tmp_path, codec="pca", overwrite=True, workers=0)
    assert len(result.written) == 10 and not result.skipped


def test_pca_fits_the_protocols_input_views_and_refuses_a_basis_of_another_protocol(tmp_path, make_images):
    """`extract --protocol sparse` keeps the sparse protocol's test views out of the basis, as `fit --protocol` tests."""
    from splatent_data import load_scene, make_synthetic_scene, split_scene

    make_synthetic_scene(tmp_path / "scene", n_views=12, width=48, height=32)
    sparse = split_scene(load_scene(tmp_path / "scene"), "sparse")
    result = extract_latents(tmp_path / "scene", codec="pca", workers=0, protocol="sparse")
    saved = PCACodec.load(result.output / "pca_basis.safetensors")
    assert saved.fit_info["protocol"] == "sparse" and len(sparse.train) == 5
    assert saved.fit_info["fitted_on"] == "the 5 training views (7 test views stay unseen)"
    (result.output / "0003.pt").unlink()
    with pytest.raises(LatentError, match="fitted on the sparse protocol's input views, not llff's.*pass --protocol sparse to resume"):
        extract_latents(tmp_path / "scene", workers=0)
    assert extract_latents(tmp_path / "scene", workers=0, protocol="sparse").written == ["0003"]
    with pytest.raises(LatentError, match="unknown --protocol 'nope'"):
        extract_latents(tmp_path / "scene", workers=0, protocol="nope")
    with pytest.raises(LatentError, match="the tiny-random codec has none"):
        extract_latents(tmp_path / "scene", output="t", codec="tiny-random", workers=0, protocol="dense")
    make_images(tmp_path / "photos" / "images", 4)
    with pytest.raises(LatentError, match="picks input views from the cameras' poses"):
        extract_latents(tmp_path / "photos", codec="pca", workers=0, protocol="dense")
