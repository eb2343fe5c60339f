"""Stage keys and the run context. The keys were computed with the pipeline before it moved here
(``splatent_cli.pipeline`` at 1bde21d): result folders written then must resume, so they may never change."""

from __future__ import annotations

import json

import pytest

from splatent_data import SplatentError, make_synthetic_scene
from splatent_pipeline import STAGES, PipelineConfig, PipelineRun, RunContext, StageRecord, run_pipeline, stage_key

KNOWN = dict(scene_path="/data/scene", output_dir="/tmp/o", codec="pca", steps=40, top_k=3, model_splatent_path="tiny",
             lpips=False, device="cpu", backend="torch",
             fit_options={"init_points": 2000, "eval_every": 1000, "tensorboard": False},
             report_title="T", report_notes=("a", "b"))
PINHOLE_KEYS = {"extract": "ba16039efde99605", "fit": "f75f52e5a71623ba", "render": "01c555db03f34ffc",
                "dataset": "786b51a8748352f8", "enhance": "e82d68bf33da35bf", "eval": "322fc40b71bc15a7"}
DISTORTED_KEYS = {"undistort": "89e08bdbb3678789", "extract": "ead8002280b58fc3", "fit": "2bea5c41f0c6f2c8",
                  "render": "ec993f1cce3359a5", "dataset": "3c84039c5da7047e", "enhance": "dd420e6f8e115298",
                  "eval": "6e36fd13c51dc184"}


def _chain(cfg: PipelineConfig, stages) -> dict[str, str]:
    keys, previous = {}, ""
    for stage in stages:
        previous = keys[stage] = stage_key(cfg.stage_options(stage), previous)
    return keys


def test_stage_keys_are_those_of_the_pipeline_before_the_move():
    cfg = PipelineConfig(**KNOWN)
    assert STAGES == ("undistort", "extract", "fit", "render", "dataset", "enhance", "eval")
    assert _chain(cfg, STAGES[1:]) == PINHOLE_KEYS  # a pinhole scene has no undistort stage
    assert _chain(cfg, STAGES) == DISTORTED_KEYS


def test_run_context_parses_the_scene_once_and_names_the_run_folders(tmp_path):
    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    ctx = RunContext.load(PipelineConfig(scene_path=tmp_path / "scene", output_dir=tmp_path / "out"))
    assert ctx.scene.is_pinhole and len(ctx.scene.cameras) == 10
    p = ctx.paths
    assert ctx.working_scene == tmp_path / "scene"  # pinhole: the stages read the input scene itself
    assert (p.latents, p.model, p.renders, p.dataset, p.enhanced, p.eval) == (
        tmp_path / "out" / "latents", tmp_path / "out" / "model", tmp_path / "out" / "renders" / "scene",
        tmp_path / "out" / "data" / "dataset.json", tmp_path / "out" / "enhanced", tmp_path / "out" / "eval")


def _stand_in_stages(monkeypatch, visited: list[str]) -> None:
    """Stages that write their outputs and record their names, in milliseconds."""
    import dataclasses

    import splatent_pipeline.pipeline as pipeline

    def stand_in(stage):
        def run(ctx):
            visited.append(stage.name)
            target = stage.outputs(ctx.paths)
            (target.parent if target.suffix else target).mkdir(parents=True, exist_ok=True)
            if target.suffix:
                target.write_text("{}")
            return {"stand_in": stage.name}
        return dataclasses.replace(stage, run=run)

    monkeypatch.setattr(pipeline, "STAGE_LIST", tuple(stand_in(s) for s in pipeline.STAGE_LIST))


def test_a_run_stops_after_a_stage_and_goes_on_from_there(tmp_path, monkeypatch):
    """``PipelineRun.run`` visits each stage once: a second call continues after ``stop_after``."""
    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    visited: list[str] = []
    _stand_in_stages(monkeypatch, visited)
    cfg = PipelineConfig(scene_path=tmp_path / "scene", output_dir=tmp_path / "out", stop_after="dataset")
    lines: list[str] = []
    run = PipelineRun(cfg, say=lines.append)
    first = run.run()
    assert first.ran == ["extract", "fit", "render", "dataset"] and first.stopped_before == "enhance"
    assert not any("no enhancer" in line for line in lines)
    cfg.stop_after, cfg.model_splatent_path = None, "tiny"
    lines.clear()
    rest = run.run()
    assert rest.ran == ["enhance", "eval"] and rest.skipped == []
    assert [line.split("]")[0] for line in lines] == ["[enhance", "[enhance", "[eval", "[eval"]  # nothing re-announced
    record = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert record["config"]["model_splatent_path"] == "tiny" and record["stages"]["eval"]["stand_in"] == "eval"
    assert record["versions"]["splatent-pipeline"] and "git_commit" in record  # what produced it
    assert [record["stages"][s]["key"] for s in STAGES[1:]] == list(_chain(cfg, STAGES[1:]).values())
    # a new run over the same folder skips everything; without an enhancer it stops before enhance
    cfg.model_splatent_path = None
    again = PipelineRun(cfg, say=lines.append).run()
    assert again.skipped == ["extract", "fit", "render", "dataset"] and again.stopped_before == "enhance"
    assert visited == ["extract", "fit", "render", "dataset", "enhance", "eval"]


def test_record_refuses_an_unknown_stage(tmp_path):
    with pytest.raises(SplatentError, match="--from must be one of"):
        StageRecord(tmp_path / "pipeline.json", "nope")
    with pytest.raises(SplatentError, match="stop_after must be one of"):
        PipelineRun(PipelineConfig(scene_path=tmp_path, output_dir=tmp_path / "out", stop_after="nope"))


def test_a_missing_enhancer_checkpoint_is_refused_before_any_stage(tmp_path):
    """It failed at the enhance stage, after the fit and the renders had run (hours on a real scene)."""
    from splatent_model import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        PipelineRun(PipelineConfig(scene_path=tmp_path, output_dir=tmp_path / "out",
                                   model_splatent_path=str(tmp_path / "ckpt-typo")))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, message", [
    ({"top_k": 0}, "--top_k must be at least 1"), ({"steps": 0}, "--steps must be at least 1"),
    ({"backend": "cuda"}, "unknown rasteriser backend"), ({"fit_options": {"strategy": "mcmcc"}}, "unknown densification"),
])
def test_bad_options_are_refused_before_any_stage(tmp_path, option, message):
    """--top_k 0 failed at the dataset stage, after the fit; a bad --steps, --backend or --strategy after extract."""
    with pytest.raises(SplatentError, match=message):
        PipelineRun(PipelineConfig(scene_path=tmp_path, output_dir=tmp_path / "out", **option))
    assert not (tmp_path / "out").exists()


def test_a_distorted_scene_is_undistorted_first_and_resumes(tmp_path):
    import dataclasses as dc

    from splatent_data import load_scene, write_transforms

    scene = make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    write_transforms([dc.replace(c, model="OPENCV", distortion=(0.02, 0.0, 0.0, 0.0)) for c in scene.cameras],
                     tmp_path / "scene" / "transforms.json")
    cfg = PipelineConfig(scene_path=tmp_path / "scene", output_dir=tmp_path / "out", codec="pca", device="cpu",
                         stop_after="extract", progress=False)
    first = run_pipeline(cfg, say=lambda line: None)
    assert first.ran == ["undistort", "extract"]
    assert load_scene(tmp_path / "out" / "undistorted").is_pinhole
    assert (tmp_path / "out" / "latents" / "manifest.json").is_file()
    again = run_pipeline(cfg, say=lambda line: None)
    assert again.skipped == ["undistort", "extract"] and not again.ran


def test_a_blender_scene_with_images_in_split_folders_is_gathered_first_and_keeps_its_split(tmp_path):
    """NeRF-synthetic's layout: train/r_0.png and test/r_0.png, one transforms file per split."""
    import dataclasses as dc
    import shutil

    from splatent_data import load_scene, split_scene, write_transforms

    made = make_synthetic_scene(tmp_path / "made", n_views=10, width=64, height=48)
    scene = tmp_path / "scene"
    for split, cams in (("train", made.cameras[1::2]), ("test", made.cameras[::2])):
        (scene / split).mkdir(parents=True)
        moved = [dc.replace(c, image_path=scene / split / f"r_{i}.png") for i, c in enumerate(cams)]
        for cam, new in zip(cams, moved):
            shutil.copy(cam.image_path, new.image_path)
        write_transforms(moved, scene / f"transforms_{split}.json")
    cfg = PipelineConfig(scene_path=scene, output_dir=tmp_path / "out", codec="pca", device="cpu",
                         stop_after="extract", progress=False)
    first = run_pipeline(cfg, say=lambda line: None)
    assert first.ran == ["undistort", "extract"]
    gathered = load_scene(tmp_path / "out" / "undistorted")
    assert split_scene(gathered).test == tuple(f"test_r_{i}" for i in range(5))
    assert sorted(p.stem for p in (tmp_path / "out" / "latents").glob("*_r_*.*")) == sorted(gathered.stems)
    assert run_pipeline(cfg, say=lambda line: None).skipped == ["undistort", "extract"]


def test_another_scene_or_image_folder_in_the_same_results_runs_every_stage_again(tmp_path, monkeypatch):
    """The stage keys leave the scene path out (a pinhole scene's chain starts at extract): a run over another scene,
    or the same scene's other image folder, must not be told its stages are up to date."""
    for name in ("a", "b"):
        make_synthetic_scene(tmp_path / name / "garden", n_views=10, width=64, height=48)
    visited: list[str] = []
    _stand_in_stages(monkeypatch, visited)
    lines: list[str] = []
    run = lambda scene, images=None: PipelineRun(PipelineConfig(  # noqa: E731
        scene_path=scene, output_dir=tmp_path / "out", stop_after="dataset", images=images), say=lines.append).run()
    assert run(tmp_path / "a" / "garden").ran == ["extract", "fit", "render", "dataset"]
    assert run(tmp_path / "a" / "garden").skipped == ["extract", "fit", "render", "dataset"]  # same scene: resumes
    assert run(tmp_path / "b" / "garden").ran == ["extract", "fit", "render", "dataset"]
    assert any(f"holds results of {tmp_path / 'a' / 'garden'}" in line for line in lines)
    assert run(tmp_path / "b" / "garden", images="images").ran == ["extract", "fit", "render", "dataset"]
    assert len(visited) == 12


def test_from_a_stage_is_recorded_before_any_stage_runs(tmp_path):
    """``--from fit`` forgets fit and what follows at once: a run stopped before fit finished (its model already
    deleted) must not find fit up to date next time."""
    path = tmp_path / "pipeline.json"
    record = StageRecord(path, None)
    for stage in ("extract", "fit", "render"):
        record.finish(stage, "k", 1.0, {})
    StageRecord(path, "fit")  # and the process stops here
    assert list(json.loads(path.read_text())["stages"]) == ["extract"]


def test_extract_stage_re_encodes_images_changed_in_place(tmp_path):
    """The extract stage runs when its inputs changed (``--from extract``, a demo with another seed): it encodes the
    images again instead of keeping latents that merely have the right shape."""
    import numpy as np
    from PIL import Image

    from splatent_latents import load_latent

    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    cfg = dict(scene_path=tmp_path / "scene", output_dir=tmp_path / "out", codec="pca", device="cpu",
               stop_after="extract")
    run_pipeline(PipelineConfig(**cfg), say=lambda _: None)
    before = load_latent(tmp_path / "out" / "latents" / "0000.pt").clone()
    image = tmp_path / "scene" / "images" / "0000.png"
    Image.fromarray(255 - np.asarray(Image.open(image))).save(image)
    run_pipeline(PipelineConfig(**cfg, start_from="extract"), say=lambda _: None)
    assert not np.allclose(load_latent(tmp_path / "out" / "latents" / "0000.pt").numpy(), before.numpy())


def test_a_scene_read_from_another_image_folder_goes_through_every_stage(tmp_path):
    """``images="images_2"`` reaches the dataset and eval stages too (through the render manifest's image folder):
    a scene whose only photos are in images_2/ failed at dataset ("no image file"), and eval scored against
    images/ where both exist."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    (tmp_path / "scene" / "images").rename(tmp_path / "scene" / "images_2")
    result = run_pipeline(PipelineConfig(
        scene_path=tmp_path / "scene", output_dir=tmp_path / "out", images="images_2", codec="pca", steps=20,
        model_splatent_path="tiny", lpips=False, device="cpu", backend="torch",
        fit_options={"init_points": 1000, "eval_every": 1000, "tensorboard": False}), say=lambda _: None)
    assert result.ran == ["extract", "fit", "render", "dataset", "enhance", "eval"] and result.means["render"]["psnr"] > 0
    manifest = json.loads(next((tmp_path / "out" / "renders").glob("*/manifest.json")).read_text())
    assert manifest["image_folder"] == "images_2"


def test_new_enhancer_weights_at_the_same_path_run_enhance_and_eval_again(tmp_path, monkeypatch):
    """The enhance key names the checkpoint by its path: an enhancer trained again into the same folder must not
    leave the old weights' enhanced views and report looking up to date."""
    import os

    make_synthetic_scene(tmp_path / "scene", n_views=10, width=64, height=48)
    visited: list[str] = []
    _stand_in_stages(monkeypatch, visited)
    ckpt = tmp_path / "ckpt"
    (ckpt / "unet").mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    (ckpt / "unet" / "weights.safetensors").write_bytes(b"old")
    cfg = PipelineConfig(scene_path=tmp_path / "scene", output_dir=tmp_path / "out", model_splatent_path=str(ckpt))
    assert run_pipeline(cfg, say=lambda _: None).ran == ["extract", "fit", "render", "dataset", "enhance", "eval"]
    assert run_pipeline(cfg, say=lambda _: None).ran == []  # unchanged weights: up to date
    weights = ckpt / "unet" / "weights.safetensors"
    weights.write_bytes(b"new")  # same size: the modification time tells
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    again = run_pipeline(cfg, say=lambda _: None)
    assert again.ran == ["enhance", "eval"] and again.skipped == ["extract", "fit", "render", "dataset"]
    assert run_pipeline(cfg, say=lambda _: None).ran == []
