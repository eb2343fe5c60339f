"""``splatent pipeline``: the original ``unified_pipeline.py``, in-process and resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import fail, guarded
from ..options import config_options


def fit_options(strategy: str, protocol: str) -> dict:
    """The fit's options; the default protocol is left out so the stage keys of earlier runs still match."""
    return {"strategy": strategy, **({"split_mode": protocol} if protocol != "llff" else {})}


@guarded("pipeline")
def pipeline(
    scene_path: Path = typer.Option(None, "--scene_path", "--scene-path", help="Scene folder (transforms.json, COLMAP or LLFF)."),
    scenes: Path = typer.Option(None, "--scenes", help="A folder of scenes: fit and render each, and write one dataset JSON of them (see --pairs)."),
    output_dir: Path = typer.Option(Path("results"), "--output_dir", "--output-dir", help="Result folder."),
    save_images: bool = typer.Option(False, "--save_images", "--save-images", help="Also decode renders to PNGs."),
    model_splatent_path: str = typer.Option(None, "--model_splatent_path", "--model-splatent-path",
                                            help="Enhancer checkpoint (folder, original .pkl, or 'tiny')."),
    codec: str = typer.Option("sd-vae", "--codec", help="Latent codec: sd-vae, taef2 (offline, learned), pca (offline, linear) or tiny-random."),
    vae_model: str = typer.Option(None, "--model", "--vae_model", "--vae-model", help="VAE weights for sd-vae (hub id or folder)."),
    images: str = typer.Option(None, "--images", "--res", help="Image folder inside the scene (e.g. images_4)."),
    top_k: int = typer.Option(3, "--top_k", "--top-k", help="Reference views per target."),
    steps: int = typer.Option(10_000, "--steps", help="Fit steps."),
    strategy: str = typer.Option("default", "--strategy", help="Densification: default or mcmc."),
    protocol: str = typer.Option("llff", "--protocol", help="Input/test views of the fit: llff (every 8th view tests), dense (30 furthest-point input views) or sparse (5)."),
    backend: str = typer.Option("auto", "--backend", help="Rasteriser: auto, gsplat or torch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", " /--no_lpips", help="Score LPIPS in eval (needs backbone weights)."),
    start_from: str = typer.Option(None, "--from", help="Re-run from this stage: undistort, extract, fit, render, dataset, enhance, eval."),
    pairs: str = typer.Option("test-views", "--pairs", help="--scenes: the training scenes' pairs: test-views (renders of the protocol's test views), holdout (k-fold fits over the input views) or both."),
    folds: int = typer.Option(4, "--folds", min=2, help="--scenes --pairs holdout/both: fold fits per training scene."),
    test_scenes: str = typer.Option(None, "--test_scenes", "--test-scenes", help="--scenes: comma-separated test scenes (default: the original's 90/10 split, seed 42)."),
    test_fraction: float = typer.Option(0.1, "--test_fraction", "--test-fraction", min=0.0, max=1.0, help="--scenes: share of scenes held out as test scenes."),
    seed: int = typer.Option(42, "--seed", help="--scenes: seed of the scene shuffle."),
    benchmark_path: Path = typer.Option(None, "--benchmark_path", "--benchmark-path", help="--scenes: a folder of benchmark scenes; scenes of the same names are never used."),
) -> None:
    """Run undistort, extract, fit, render, dataset, enhance and eval on one scene (or, with --scenes, build
    a multi-scene dataset: every scene fitted and rendered, test scenes kept out of training)."""
    if (scene_path is None) == (scenes is None):
        raise fail("pipeline", "pass either --scene_path (one scene) or --scenes (a folder of scenes)")
    if scenes is not None:
        if model_splatent_path or start_from:
            raise fail("pipeline", "--scenes builds a dataset (fit, render, pairs); --model_splatent_path and --from are for one scene")
        if save_images:
            raise fail("pipeline", "--scenes builds a dataset of latents and decodes no render; --save_images is for one "
                                   "scene (--scene_path), or run `splatent render --save-images` on a scene's model")
        return _batch(locals())
    # options a --scene_path run does not use: refused when set, rather than ignored
    unused = [flag for flag, value, default in (
        ("--pairs", pairs, "test-views"), ("--folds", folds, 4), ("--test_scenes", test_scenes, None),
        ("--test_fraction", test_fraction, 0.1), ("--seed", seed, 42), ("--benchmark_path", benchmark_path, None),
    ) if value != default]
    if unused:
        raise fail("pipeline", f"{', '.join(unused)}: for --scenes (a multi-scene dataset); a --scene_path run does not "
                               f"use {'it' if len(unused) == 1 else 'them'}, so drop {'it' if len(unused) == 1 else 'them'}")
    from splatent_pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(**config_options(pipeline, locals(), PipelineConfig), fit_options=fit_options(strategy, protocol))
    result = run_pipeline(cfg)
    times = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print(f"pipeline: ran {', '.join(result.ran) or 'nothing'}; skipped {', '.join(result.skipped) or 'nothing'}"
          + (f" ({times})" if times else ""))
    if result.report:
        print(f"report: {result.report}")
        if result.means:
            print("mean PSNR: " + ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in result.means.items()))


def _batch(opts: dict) -> None:
    from splatent_data import benchmark_scene_names
    from splatent_pipeline import BatchConfig, run_batch

    bench = opts["benchmark_path"]
    cfg = BatchConfig(
        scenes_dir=opts["scenes"], output_dir=opts["output_dir"], codec=opts["codec"], vae_model=opts["vae_model"],
        images=opts["images"], protocol=opts["protocol"], steps=opts["steps"], fit_options={"strategy": opts["strategy"]},
        top_k=opts["top_k"], pairs=opts["pairs"], folds=opts["folds"],
        test_scenes=opts["test_scenes"].split(",") if opts["test_scenes"] else None,
        test_fraction=opts["test_fraction"], seed=opts["seed"],
        exclude=benchmark_scene_names(bench) if bench is not None else [],
        backend=opts["backend"], device=opts["device"],
    )
    result = run_batch(cfg)
    if result.dataset is None and not result.scenes:
        return  # another process of `accelerate launch`: the main one reports
    print(result.table())
    failed = [r.name for r in result.scenes if r.status == "failed"]
    if result.dataset is not None:
        print(f"dataset: {result.dataset} ({result.entries.get('train', 0)} train, {result.entries.get('test', 0)} test entries)")
    if failed:
        raise fail("pipeline", f"{len(failed)} scene(s) failed ({', '.join(failed)}); the others are kept. Fix them and re-run: "
                               f"finished scenes are skipped")
