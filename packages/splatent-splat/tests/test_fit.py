"""The fit stage on CPU (torch backend) on scenes the tests build."""

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from splatent_data import SceneError, SplatentError
from splatent_splat import FitConfig, StrategyConfig, fit_scene, load_ply

# A 16-view ring, 32x24 latents (256x192 photos), ~300 ground-truth Gaussians:
# 600 steps must cut the training loss at least 5x and reach this test-view latent PSNR.
# (The range R of the PSNR is the training latents' max - min; see splatent_splat.losses.)
PSNR_THRESHOLD_DB = 30.0

QUICK = dict(eval_every=0, checkpoint_every=0, tensorboard=False, progress=False, sh_degree=1, sh_degree_interval=100)


def test_fit_lowers_the_loss_and_reaches_the_test_psnr(latent_scene, tmp_path):
    cfg = FitConfig(steps=600, log_every=10, eval_every=300,
                    strategy=StrategyConfig(refine_start=100, refine_every=100, refine_stop=400), sh_degree=1, sh_degree_interval=200, progress=False)
    result = fit_scene(latent_scene, tmp_path / "model", cfg)
    first, last = result.losses[0][1], result.losses[-1][1]
    assert first / last > 5, (first, last)
    assert result.test["psnr"] > PSNR_THRESHOLD_DB
    steps = [h["step"] for h in result.history]
    assert steps == [0, 300, 600]
    assert result.history[0]["psnr"] < result.history[-1]["psnr"] - 5
    assert result.num_gaussians > 300  # densified
    manifest = json.loads((tmp_path / "model" / "fit.json").read_text())
    assert manifest["steps"] == 600 and manifest["backend"] == "torch" and manifest["codec"] == "tiny-random"
    assert manifest["split"]["test"] == ["0000", "0008"] and "0000" not in manifest["split"]["train"]
    assert manifest["latents"].endswith("features_sd_turbo")
    assert manifest["versions"]["splatent-splat"] and manifest["versions"]["torch"] and "git_commit" in manifest
    model, meta = load_ply(tmp_path / "model" / "gaussians.ply")
    assert len(model) == result.num_gaussians and model.sh_degree == 1 and meta["codec"] == "tiny-random"
    assert list((tmp_path / "model" / "tb").iterdir())  # TensorBoard event file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "model" / "tb"), size_guidance={"images": 0}).Reload()
    image_tags = events.Tags()["images"]
    assert image_tags == ["test/0000_render_vs_gt"] and len(events.Images(image_tags[0])) == 3  # every eval


def test_resume_continues_from_the_same_step_with_the_same_state(latent_scene, tmp_path):
    cfg = FitConfig(steps=60, checkpoint_every=30, keep_checkpoints=5,
                    strategy=StrategyConfig(refine_start=10, refine_every=20, refine_stop=50), **{k: v for k, v in QUICK.items() if k != "checkpoint_every"})
    straight = fit_scene(latent_scene, tmp_path / "a", cfg)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "checkpoints" / "step_000060.pt").unlink()
    for name in ("fit.json", "gaussians.ply", "gaussians.json"):
        (tmp_path / "b" / name).unlink()
    with pytest.raises(SplatentError, match="--resume"):
        fit_scene(latent_scene, tmp_path / "b", cfg)
    resumed = fit_scene(latent_scene, tmp_path / "b", cfg, resume=True)
    assert resumed.resumed_from == 30 and resumed.steps == 60
    a, _ = load_ply(tmp_path / "a" / "gaussians.ply")
    b, _ = load_ply(tmp_path / "b" / "gaussians.ply")
    assert len(a) == len(b) == straight.num_gaussians
    for name in a.params:
        torch.testing.assert_close(b.params[name], a.params[name], rtol=0, atol=0)
    sa = torch.load(tmp_path / "a" / "checkpoints" / "step_000060.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "checkpoints" / "step_000060.pt", weights_only=True)
    assert sa["sampler"]["order"] == sb["sampler"]["order"] and sa["sampler"]["position"] == sb["sampler"]["position"]
    for name in sa["optimizers"]:
        torch.testing.assert_close(sa["optimizers"][name]["state"][0]["exp_avg"],
                                   sb["optimizers"][name]["state"][0]["exp_avg"], rtol=0, atol=0)


def test_resume_and_overwrite_together_are_refused_and_the_fit_is_kept(latent_scene, tmp_path):
    """--resume won and --overwrite was silently ignored: one of them must be chosen."""
    cfg = FitConfig(steps=10, **QUICK)
    fit_scene(latent_scene, tmp_path / "fit", cfg)
    before = sorted(p.name for p in (tmp_path / "fit").rglob("*"))
    with pytest.raises(SplatentError, match="--resume .* --overwrite .*; pass one"):
        fit_scene(latent_scene, tmp_path / "fit", cfg, resume=True, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "fit").rglob("*")) == before


def test_resuming_a_finished_fit_keeps_its_history_and_a_real_rate(latent_scene, tmp_path):
    """Nothing is left to run: fit.json must not gain a second record of the last step nor a rate of 0 steps/s."""
    cfg = FitConfig(steps=20, **{**QUICK, "eval_every": 10})
    first = fit_scene(latent_scene, tmp_path / "fit", cfg)
    again = fit_scene(latent_scene, tmp_path / "fit", cfg, resume=True)
    assert [h["step"] for h in again.history] == [h["step"] for h in first.history] == [0, 10, 20]
    assert again.steps_per_second > 0
    recorded = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert [h["step"] for h in recorded["history"]] == [0, 10, 20]


def test_split_every_with_another_protocol_is_refused_not_ignored():
    """dense and sparse choose their own test views: --split-every 4 with them changed nothing, without a word."""
    with pytest.raises(SplatentError, match="--split-every 4 picks the llff protocol's test views; the sparse"):
        FitConfig(split_mode="sparse", split_every=4).resolved()
    assert FitConfig(split_mode="sparse").resolved().split_every == 8
    assert FitConfig(split_every=4).resolved().split_every == 4
    with pytest.raises(SplatentError, match="the split file chooses its own"):
        FitConfig(split_file="split.json", split_every=4).resolved()


def test_a_split_file_names_the_test_views_and_a_resume_keeps_it(latent_scene, tmp_path):
    """split mode 'file' pointed at a --split-file option fit did not have: no fit could use a split of its own."""
    with pytest.raises(SplatentError, match="needs the split file: pass --split-file"):
        FitConfig(split_mode="file").resolved()
    with pytest.raises(SplatentError, match="--split-file names the test views and --protocol sparse"):
        FitConfig(split_mode="sparse", split_file="s.json").resolved()
    stems = sorted(p.stem for p in (latent_scene / "images").iterdir())
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps({"test": [f"{stems[1]}.png", stems[5]]}))  # names with or without extensions
    cfg = FitConfig(steps=4, split_file=str(split_file), **{**QUICK, "checkpoint_every": 2})
    fit_scene(latent_scene, tmp_path / "m", cfg)
    split = json.loads((tmp_path / "m" / "fit.json").read_text())["split"]
    assert split["mode"] == "file" and split["test"] == [stems[1], stems[5]] and len(split["train"]) == len(stems) - 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"test": [stems[2]]}))
    with pytest.raises(SplatentError, match="split_file="):
        fit_scene(latent_scene, tmp_path / "m", dataclasses.replace(cfg, steps=6, split_file=str(other)), resume=True)


def test_resuming_against_other_latents_or_photos_is_refused(latent_scene, tmp_path):
    """A resume read whatever --latents / --images it was given and went on fitting the checkpoint to them."""
    scene = tmp_path / "scene"
    shutil.copytree(latent_scene, scene)
    shutil.copytree(scene / "features_sd_turbo", scene / "features_other")
    cfg = FitConfig(steps=5, **QUICK)
    fit_scene(scene, tmp_path / "fit", cfg)
    more = dataclasses.replace(cfg, steps=8)
    with pytest.raises(SplatentError, match="fitted with latents=.*features_sd_turbo.*features_other"):
        fit_scene(scene, tmp_path / "fit", dataclasses.replace(more, latents="features_other"), resume=True)
    with pytest.raises(SplatentError, match="fitted with images=None, not 'images'"):
        fit_scene(scene, tmp_path / "fit", dataclasses.replace(more, images="images"), resume=True)
    spelled = dataclasses.replace(more, latents=str(scene / "features_sd_turbo"))  # the same folder, another spelling
    assert fit_scene(scene, tmp_path / "fit", spelled, resume=True).resumed_from == 5


def test_resuming_a_fit_whose_checkpoints_were_deleted_is_refused(latent_scene, tmp_path):
    """With no checkpoint, --resume started again from step 0 and replaced the finished model."""
    cfg = FitConfig(steps=5, **QUICK)
    fit_scene(latent_scene, tmp_path / "fit", cfg)
    shutil.rmtree(tmp_path / "fit" / "checkpoints")
    before = (tmp_path / "fit" / "gaussians.ply").read_bytes()
    with pytest.raises(SplatentError, match="no checkpoint to resume it from.*--overwrite"):
        fit_scene(latent_scene, tmp_path / "fit", dataclasses.replace(cfg, steps=10), resume=True)
    assert (tmp_path / "fit" / "gaussians.ply").read_bytes() == before
    assert fit_scene(latent_scene, tmp_path / "empty", cfg, resume=True).resumed_from is None  # nothing to lose


def test_joint_rgb_supervision_trains_an_rgb_head(latent_scene, tmp_path):
    cfg = FitConfig(steps=80, rgb_weight=1.0, rgb_sh_degree=0, eval_every=80, rgb_scale=0.5,
                    **{k: v for k, v in QUICK.items() if k != "eval_every"})
    result = fit_scene(latent_scene, tmp_path / "m", cfg)
    first, last = result.history[0], result.history[-1]
    assert last["rgb_psnr"] > first["rgb_psnr"] + 2
    model, _ = load_ply(tmp_path / "m" / "gaussians.ply")
    assert model.rgb_sh_degree == 0 and model.has_rgb


def test_the_rgb_head_trains_its_own_sh_degree_above_the_latents(latent_scene, tmp_path):
    """Latents at SH degree 1 and an RGB head at degree 3: the head's top bands learn (the head used to render with
    the latents' degree, so its bands above it kept their zeros)."""
    cfg = FitConfig(steps=20, rgb_weight=1.0, rgb_sh_degree=3, rgb_scale=0.5,
                    **{**QUICK, "sh_degree": 1, "sh_degree_interval": 1})
    fit_scene(latent_scene, tmp_path / "m", cfg)
    model, _ = load_ply(tmp_path / "m" / "gaussians.ply")
    rest = model.params["rgbN"]  # [N, 15, 3]: bands 1 (3 rows), 2 (5) and 3 (7)
    assert model.rgb_sh_degree == 3 and rest.shape[1] == 15
    assert rest[:, 8:].abs().sum() > 0 and rest[:, 3:8].abs().sum() > 0


def test_rgb_target_fits_plain_3dgs(latent_scene, tmp_path):
    cfg = FitConfig(steps=80, target="rgb", rgb_scale=0.25, eval_every=80,
                    **{k: v for k, v in QUICK.items() if k not in ("eval_every", "sh_degree")})
    result = fit_scene(latent_scene, tmp_path / "m", cfg)
    assert result.history[-1]["psnr"] > result.history[0]["psnr"] + 2
    assert 0 < result.test["ssim"] <= 1
    model, _ = load_ply(tmp_path / "m" / "gaussians.ply")
    assert model.feature_kind == "rgb" and model.sh_degree == 3


def test_scene_without_points_starts_from_random_points(make_scene, tmp_path, caplog):
    scene = make_scene(tmp_path / "s", n_views=8, latent_size=(16, 12), points=False, photos=False)
    with caplog.at_level(logging.INFO, logger="splatent"):
        result = fit_scene(scene, tmp_path / "m", FitConfig(steps=20, init_points=300, **QUICK))
    assert any("at random" in r.getMessage() for r in caplog.records)
    assert result.num_gaussians == 300 and result.steps == 20
    with pytest.raises(SceneError, match="no sparse points"):
        fit_scene(scene, tmp_path / "m2", FitConfig(steps=5, init="points", **QUICK))


def test_distorted_cameras_are_refused_with_the_fix(make_scene, tmp_path):
    scene = make_scene(tmp_path / "s", n_views=8, latent_size=(16, 12), distortion=(0.05, -0.08, 0.001, 0.0),
                       points=False, photos=False)
    with pytest.raises(SceneError, match="splatent scene undistort"):
        fit_scene(scene, tmp_path / "m", FitConfig(steps=5, **QUICK))


def test_bad_inputs_fail_with_one_clear_line(latent_scene, tmp_path):
    with pytest.raises(SceneError, match="splatent extract"):
        fit_scene(latent_scene, tmp_path / "m", FitConfig(steps=5, latents="no_such_latents", **QUICK))
    with pytest.raises(SplatentError, match="mcmc needs gsplat"):
        fit_scene(latent_scene, tmp_path / "m2", FitConfig(steps=5, strategy="mcmc", **QUICK))
    with pytest.raises(SplatentError, match="needs a CUDA device"):
        fit_scene(latent_scene, tmp_path / "m3", FitConfig(steps=5, backend="gsplat", device="cpu", **QUICK))
    with pytest.raises(SplatentError, match="--target rgb"):
        fit_scene(latent_scene, tmp_path / "m4", FitConfig(steps=5, target="rgb", rgb_weight=1.0, **QUICK))


def test_fox_is_refused_until_undistorted(fox, tmp_path):
    with pytest.raises(SceneError, match="OPENCV distortion; run `splatent scene undistort"):
        fit_scene(fox, tmp_path / "m", FitConfig(steps=5, **QUICK))


def test_32_channel_latents_fit_and_render_at_their_channel_count(make_scene, tmp_path):
    """A codec with 32 latent channels (taef2) goes through fit and render; nothing assumes 4."""
    from splatent_splat import render_model

    scene = make_scene(tmp_path / "scene32", n_views=9, channels=32, photos=False)
    cfg = FitConfig(steps=400, log_every=10, strategy=StrategyConfig(refine_start=100, refine_every=100, refine_stop=300),
                    **QUICK)
    result = fit_scene(scene, tmp_path / "model", cfg)
    assert result.losses[0][1] / result.losses[-1][1] > 3  # measured 5.0x
    assert result.test["psnr"] > 27.0  # measured 31.3 dB
    model, _ = load_ply(tmp_path / "model" / "gaussians.ply")
    assert model.feature_dim == 32
    render_model(tmp_path / "model", tmp_path / "renders")
    nvs = sorted((tmp_path / "renders" / "nvs").glob("*.pt"))
    assert nvs and torch.load(nvs[0], weights_only=True).shape[0] == 32
    manifest = json.loads((tmp_path / "renders" / "manifest.json").read_text())
    assert manifest["format"].startswith("pt float32 [32,")


def test_config_nests_rates_and_strategy_and_takes_flat_spellings():
    from splatent_splat import FLAT_OPTIONS, LearningRates

    assert FitConfig(strategy="mcmc").strategy == StrategyConfig(name="mcmc")
    flat = FitConfig.from_flat(steps=90, lr_means=1e-3, strategy="mcmc", refine_start=7, max_gaussians=5, seed=3)
    assert flat == FitConfig(steps=90, seed=3, lr=LearningRates(means=1e-3),
                             strategy=StrategyConfig("mcmc", refine_start=7, max_gaussians=5))
    # fit.json stores the nested form; it reads back to the same config
    assert FitConfig(**dataclasses.asdict(flat)) == flat
    # every flat name reaches a field of the nested dataclass it names
    for key, (group, name) in FLAT_OPTIONS.items():
        assert hasattr(getattr(FitConfig(), group), name), key
    with pytest.raises(SplatentError, match="unknown fit option 'lr_mean'"):
        FitConfig.from_flat(lr_mean=1.0)
    resolved = FitConfig(steps=600, strategy="mcmc").resolved()
    assert resolved.strategy.refine_stop == 500 and resolved.strategy.opacity_reg == 0.01 and resolved.init_opacity == 0.5
    assert FitConfig(steps=600).resolved().strategy.refine_stop == 300


def test_a_cpu_fit_runs_with_the_small_kernel_thread_policy(monkeypatch):
    """fit_scene itself (so the CLI, the pipeline and library callers alike) runs a CPU fit with one thread unless
    OMP_NUM_THREADS says otherwise, and gives the caller's thread count back."""
    import torch

    from splatent_splat import FitConfig
    from splatent_splat import fit as fit_module

    seen = []
    monkeypatch.setattr(fit_module, "_fit_scene", lambda *args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    fit_module.fit_scene("scene", "model", FitConfig(device="cpu"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    fit_module.fit_scene("scene", "model", FitConfig(device="cpu"))
    assert seen == [1, 2] and torch.get_num_threads() == before


def _masked_copy(src, dst, scribble: bool, masks: bool = True):
    """``src`` with the left half of every image masked out (nerfstudio's ``mask_path``); ``scribble`` overwrites
    that half of every latent with loud noise, which a fit that honours the masks never sees."""
    from splatent_latents import load_latent, save_latent

    shutil.copytree(src, dst)
    data = json.loads((dst / "transforms.json").read_text())
    (dst / "masks").mkdir()
    noise = torch.Generator().manual_seed(7)
    for frame in data["frames"]:
        stem = frame["file_path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        w, h = Image.open(dst / "images" / f"{stem}.png").size
        keep = np.full((h, w), 255, np.uint8)
        keep[:, : w // 2 + 3] = 0  # 3 pixels into the right half: the latent column on the edge is out too
        Image.fromarray(keep).save(dst / "masks" / f"{stem}.png")
        if masks:
            frame["mask_path"] = f"masks/{stem}.png"
        if scribble:
            latent = load_latent(dst / "features_sd_turbo" / f"{stem}.pt")
            half = latent.shape[-1] // 2
            latent[..., : half + 1] = 30.0 * torch.randn(latent[..., : half + 1].shape, generator=noise)
            save_latent(dst / "features_sd_turbo" / f"{stem}.pt", latent)
    (dst / "transforms.json").write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize("target", ["latent", "rgb"])
def test_masked_pixels_are_left_out_of_the_fit(latent_scene, tmp_path, target):
    cfg = FitConfig(steps=40, ssim_weight=0.2, target=target, rgb_scale=0.25,
                    strategy=StrategyConfig(refine_start=10, refine_every=10, refine_stop=30), **QUICK)
    def fitted(name, scribble, masks=True):
        scene = _masked_copy(latent_scene, tmp_path / name, scribble=scribble and target == "latent", masks=masks)
        if scribble and target == "rgb":  # an RGB fit reads the photos: scribble their left-out half
            for png in (scene / "images").glob("*.png"):
                pixels = np.array(Image.open(png))
                pixels[:, : pixels.shape[1] // 2] = np.random.default_rng(3).integers(0, 256, pixels[:, : pixels.shape[1] // 2].shape)
                Image.fromarray(pixels).save(png)
        fit_scene(scene, tmp_path / f"{name}-model", cfg)
        return load_ply(tmp_path / f"{name}-model" / "gaussians.ply")[0].params, json.loads(
            (tmp_path / f"{name}-model" / "fit.json").read_text())

    clean, info = fitted("clean", scribble=False)
    assert info["masked_views"] == len(info["split"]["train"])
    noisy, _ = fitted("noisy", scribble=True)
    assert clean.keys() == noisy.keys()
    for key in clean:
        assert torch.equal(clean[key], noisy[key]), key
    unmasked, _ = fitted("unmasked", scribble=True, masks=False)  # the same noise without masks: it is fitted
    assert any(unmasked[k].shape != clean[k].shape or not torch.equal(unmasked[k], clean[k]) for k in clean)


def test_masked_loss_ignores_left_out_pixels_and_their_gradient():
    from splatent_splat.losses import photometric_loss

    g = torch.Generator().manual_seed(0)
    pred = torch.randn(1, 4, 8, 8, generator=g, requires_grad=True)
    target = torch.randn(1, 4, 8, 8, generator=g)
    mask = torch.ones(1, 1, 8, 8)
    mask[..., :3] = 0
    other = target.clone()
    other[..., :3] = 100.0
    a = photometric_loss(pred, target, 0.3, data_range=4.0, mask=mask)
    b = photometric_loss(pred, other, 0.3, data_range=4.0, mask=mask)
    assert torch.equal(a, b)
    a.backward()
    assert pred.grad[..., :3].abs().max() == 0 and pred.grad[..., 3:].abs().max() > 0
    l1 = photometric_loss(pred.detach(), target, mask=mask)
    assert torch.allclose(l1, (pred.detach() - target)[..., 3:].abs().mean())
    assert not torch.allclose(l1, photometric_loss(pred.detach(), target))


def test_view_mask_keeps_a_latent_pixel_only_when_its_whole_patch_is_kept(tmp_path):
    from splatent_data import Camera
    from splatent_splat.views import view_mask

    keep = np.full((16, 32), 255, np.uint8)
    keep[5, 9] = 0  # one pixel in latent cell (0, 1)
    Image.fromarray(keep).save(tmp_path / "m.png")
    cam = Camera("a.png", tmp_path / "a.png", 32, 16, 20.0, 20.0, 16.0, 8.0, np.eye(4), mask_path=tmp_path / "m.png")
    mask = view_mask(cam, 2, 4)
    assert mask.shape == (1, 2, 4)
    assert mask[0].tolist() == [[1, 0, 1, 1], [1, 1, 1, 1]]
    assert view_mask(Camera("a.png", "a.png", 32, 16, 20.0, 20.0, 16.0, 8.0, np.eye(4)), 2, 4) is None


def test_a_pca_basis_of_another_protocol_is_named_in_a_warning(make_scene, tmp_path, caplog):
    """The basis of `extract --protocol sparse` saw the views an llff fit tests on: the scores would be optimistic."""
    from splatent_latents import extract_latents

    scene = make_scene(tmp_path / "s", n_views=8, latent_size=(16, 12))
    extract_latents(scene, codec="pca", protocol="sparse", output="pca_sparse", workers=0)
    cfg = FitConfig(steps=2, init_points=100, latents="pca_sparse", **QUICK)
    with caplog.at_level(logging.INFO, logger="splatent"):
        fit_scene(scene, tmp_path / "llff", cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "pca basis" in r.getMessage()]
    assert len(warned) == 1 and "fitted on the sparse protocol's input views, not llff's" in warned[0]
    assert "--protocol llff" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="splatent"):
        fit_scene(scene, tmp_path / "sparse", dataclasses.replace(cfg, split_mode="sparse"))
    assert not [r for r in caplog.records if "pca basis" in r.getMessage() and r.levelno == logging.WARNING]
