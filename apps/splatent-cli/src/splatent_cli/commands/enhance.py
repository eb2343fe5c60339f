"""``splatent enhance``: the original ``inference_custom.py`` (loose files) and
``inference_dataset.py`` (a dataset JSON split), same flags; batched, bf16 on CUDA, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import fail, guarded


@guarded("enhance")
def enhance(
    input_image: Path = typer.Option(None, "--input_image", "--input-image", help="Custom mode: an image or .pt latent, or a folder of them."),
    ref_image: list[Path] = typer.Option(None, "--ref_image", "--ref-image", help="Reference: a file for every input, or a folder matched by name. Repeat for more references."),
    dataset_path: Path = typer.Option(None, "--dataset_path", "--dataset-path", help="Dataset mode: a dataset JSON (see `splatent dataset`)."),
    split: str = typer.Option("test", "--split", help="Dataset split to enhance."),
    model_path: str = typer.Option(..., "--model_path", "--model-path", help="Checkpoint folder, original .pkl, base model (stabilityai/sd-turbo) or 'tiny'."),
    base_model: str = typer.Option(None, "--base_model", "--base-model", help="Base weights (hub id or folder) for delta/partial checkpoints and the text encoder [default: the checkpoint's]."),
    output_dir: Path = typer.Option(Path("output"), "--output_dir", "--output-dir", "-o", help="Where outputs go (dataset mode: OUTPUT_DIR/enhanced/)."),
    prompt: str = typer.Option(None, "--prompt", help="Text prompt [default: the checkpoint's; dataset mode: each entry's]."),
    timestep: int = typer.Option(None, "--timestep", help="Fixed diffusion timestep [default: the checkpoint's, 300 for the original's]."),
    top_k: int = typer.Option(None, "--top_k", "--top-k", help="References per target in dataset mode [default: the checkpoint's]."),
    min_k: int = typer.Option(0, "--min_k", "--min-k", min=0, help="Skip the first MIN_K references of each entry."),
    scale: bool = typer.Option(None, "--scale/--no-scale", " /--no_scale", help="Multiply latents by the codec's scaling factor [default: the checkpoint's]."),
    rgb_root: Path = typer.Option(None, "--rgb_root", "--rgb-root", help="Ground-truth images at RGB_ROOT/<scene>/<images_dir>/<stem>.png."),
    images_dir: str = typer.Option("images_4", "--images_dir", "--images-dir", help="Image folder name under --rgb_root scenes."),
    scene_id: str = typer.Option(None, "--scene_id", "--scene-id", help="Only dataset entries whose feature path contains this."),
    no_metrics: bool = typer.Option(False, "--no_metrics", "--no-metrics", help="Skip PSNR/SSIM against ground truth."),
    save_images: bool = typer.Option(True, "--save-images/--no-save-images", "--save_images/--no_save_images", help="Write decoded PNGs."),
    save_latents: bool = typer.Option(False, "--save-latents", "--save_latents", "--save_latent", "--save-latent", help="Custom mode: also write enhanced .pt latents (dataset mode always does)."),
    video: bool = typer.Option(False, "--video", help="Custom mode: also write output.mp4 of the outputs in name order."),
    fps: int = typer.Option(30, "--fps", min=1, help="Frames per second of --video."),
    codec: str = typer.Option(None, "--codec", help="Latent codec for encode/decode [default: the checkpoint's, SD-Turbo's VAE]."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    batch_size: int = typer.Option(8, "--batch_size", "--batch-size", min=1, help="Targets per UNet pass."),
    workers: int = typer.Option(4, "--num_workers", "--num-workers", "--workers", min=1, help="Threads reading inputs."),
    attention: str = typer.Option("sdpa", "--attention", help="sdpa (PyTorch flash/memory-efficient), xformers or default."),
    xformers: bool = typer.Option(False, "--enable_xformers_memory_efficient_attention", "--enable-xformers-memory-efficient-attention", help="Same as --attention xformers."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the UNet and VAE decoder (CUDA graphs on GPU): slow start, faster batches."),
    compile_mode: str = typer.Option(None, "--compile-mode", "--compile_mode", help="torch.compile mode [default: reduce-overhead on CUDA]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Dataset mode: re-enhance views already written."),
    method_name: str = typer.Option(None, "--method_name", "--method-name", help="Accepted for the original's scripts; recorded in the manifest."),
) -> None:
    """Enhance rendered latents with reference views and decode them to images."""
    if (input_image is None) == (dataset_path is None):
        raise fail("enhance", "pass either --input_image (custom mode) or --dataset_path (dataset mode)")
    if input_image is None and ref_image:
        raise fail("enhance", "--ref_image is for custom mode; dataset entries name their references")
    from splatent_model import (
        DatasetEnhanceOptions, FilesEnhanceOptions, RuntimeOptions, codec_for, enhance_dataset, enhance_files, load_enhancer,
    )

    trained_k = _trained_top_k(model_path)
    if top_k is not None and trained_k is not None and top_k != trained_k:
        raise fail("enhance", f"--top_k {top_k}: {model_path} was trained with {trained_k} references per view (its "
                              f"UNet sees a grid of {trained_k + 1} tiles); pass --top_k {trained_k} or leave it out")
    model = load_enhancer(model_path, base_model=base_model, timestep=timestep, top_k=top_k, scale=scale)
    codec_obj = codec_for(model, codec)
    options = RuntimeOptions(
        device=device, dtype=dtype, attention="xformers" if xformers else attention, batch_size=batch_size,
        compile=(compile_mode or True) if compile else None,
    )
    from splatent_latents import progress_bar

    # lazy: the bar appears with the first enhanced view, after the model-loading messages
    with progress_bar("enhance", 0, unit="views", lazy=True) as bar:
        progress = bar.report
        if dataset_path is not None:
            what = DatasetEnhanceOptions(
                split=split, min_k=min_k, prompt=prompt, scene_id=scene_id, rgb_root=rgb_root, images_dir=images_dir,
                save_images=save_images, metrics=not no_metrics, overwrite=overwrite, workers=workers,
                method_name=method_name,
            )
            result = enhance_dataset(dataset_path, output_dir, model, codec_obj, what, options=options,
                                     model_source=model_path, progress=progress)
        else:
            what = FilesEnhanceOptions(prompt=prompt, save_latents=save_latents, save_images=save_images, video=video,
                                       fps=fps, workers=workers)
            result = enhance_files(input_image, ref_image or [], output_dir, model, codec_obj, what, options=options,
                                   progress=progress)
    rate = f" ({result.views_per_second:.1f} views/s)" if result.enhanced else ""
    skipped = f", {result.skipped} already done" if result.skipped else ""
    print(f"enhanced {result.enhanced} views in {result.seconds:.1f} s{rate}{skipped} -> {result.output_dir}")
    m = result.metrics
    if m.get("psnr_out") is not None:
        print(f"  {m['views']} views with ground truth: PSNR {m['psnr_in']:.2f} -> {m['psnr_out']:.2f} dB, "
              f"SSIM {m['ssim_in']:.4f} -> {m['ssim_out']:.4f}, latent PSNR {m['latent_psnr_in']:.2f} -> "
              f"{m['latent_psnr_out']:.2f} dB ({result.output_dir / 'metrics.json'})")
    if result.video is not None:
        print(f"  video: {result.video}")


def _trained_top_k(model_path: str) -> int | None:
    """References per view a trained checkpoint folder was trained with (its ``config.json``); None otherwise."""
    import json
    from pathlib import Path

    config = Path(model_path) / "config.json"
    if not config.is_file():
        return None
    try:
        value = json.loads(config.read_text()).get("top_k")
    except (json.JSONDecodeError, AttributeError, OSError):
        return None  # load_enhancer says what is wrong with the file
    return int(value) if isinstance(value, int) else None
