"""``splatent train``: the original ``src/train.py``, same flags (both spellings), on accelerate.

One GPU (or CPU)::

    splatent train --dataset_path data/dataset.json --output_dir outputs/splatent --mixed_precision bf16

Several GPUs (the original README's launch line, with our entry point)::

    accelerate launch --mixed_precision=bf16 --multi_gpu --num_processes N -m splatent_cli train \\
        --dataset_path data/dataset.json --output_dir outputs/splatent ...
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import guarded
from ..options import config_options

HELP = "Fine-tune the single-step enhancer on a dataset JSON (accelerate; multi-GPU with `accelerate launch -m splatent_cli train`)."


# parameters whose TrainConfig field has another name (the original's long flag; ``logger`` is a module name)
RENAMES = {"enable_xformers": "enable_xformers_memory_efficient_attention", "logger_name": "logger"}


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@guarded("train", resume="a re-run with --resume latest continues from the last checkpoint")
def train(
    dataset_path: Path = typer.Option(..., "--dataset_path", "--dataset-path", help="Dataset JSON (`splatent dataset`)."),
    output_dir: Path = typer.Option(..., "--output_dir", "--output-dir", help="Run folder: checkpoints/, enhancer/, logs/, metrics.jsonl."),
    # model
    base_model: str = typer.Option("stabilityai/sd-turbo", "--base_model", "--base-model", help="Hub id or diffusers folder whose UNet is fine-tuned, or a preset trained from scratch: 'small' (17.6M parameters) or 'tiny'."),
    init_from: str = typer.Option(None, "--init_from", "--init-from", help="Start from this enhancer checkpoint (folder or original .pkl)."),
    timestep: int = typer.Option(300, "--timestep", help="Fixed timestep the render is denoised from."),
    top_k: int = typer.Option(3, "--top_k", "--top-k", help="Reference views per target (0, 1, 3 or 5)."),
    min_k: int = typer.Option(0, "--min_k", "--min-k", help="Skip this many best references."),
    scale: bool = typer.Option(True, "--scale/--no_scale", " /--no-scale", help="Multiply latents by the codec's scaling factor (the original's --scale)."),
    prompt: str = typer.Option(None, "--prompt", help="Use this prompt for every entry."),
    # data
    codec: str = typer.Option("auto", "--codec", help="auto (the latents' manifest), sd-vae, tiny-random, or a latents folder."),
    rgb_root: Path = typer.Option(None, "--rgb_root", "--rgb-root", help="Ground-truth images at RGB_ROOT/<scene>/<images_dir>/<stem>.png."),
    images_dir: str = typer.Option("images_4", "--images_dir", "--images-dir", help="Image folder name under --rgb_root scenes."),
    gt_from_latents: bool = typer.Option(False, "--gt_from_latents", "--gt-from-latents", help="Use the decoded ground-truth latents as ground-truth images."),
    resolution: int = typer.Option(512, "--resolution", help="Square training crop in pixels (latents: /8); 0: whole views."),
    eval_resolution: int = typer.Option(None, "--eval_resolution", "--eval-resolution", help="Evaluation crop (default: --resolution; 0: whole views)."),
    train_batch_size: int = typer.Option(1, "--train_batch_size", "--train-batch-size", help="Samples per GPU and micro-step."),
    dataloader_num_workers: int = typer.Option(0, "--dataloader_num_workers", "--dataloader-num-workers", help="Loader processes per GPU."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first entry that cannot be loaded."),
    # losses
    lambda_l2: float = typer.Option(1.0, "--lambda_l2", "--lambda-l2", help="Weight of the latent L2 (or L1) loss."),
    lambda_lpips: float = typer.Option(2.0, "--lambda_lpips", "--lambda-lpips", help="Weight of LPIPS on decoded images (0: no LPIPS at all)."),
    lambda_rgb: float = typer.Option(1.0, "--lambda_rgb", "--lambda-rgb", help="Weight of the RGB MSE on decoded images."),
    use_l1: bool = typer.Option(False, "--use_l1", "--use-l1", help="L1 instead of L2 between latents."),
    lpips_net: str = typer.Option("vgg", "--lpips_net", "--lpips-net", help="LPIPS backbone: vgg or alex."),
    # optimisation
    max_train_steps: int = typer.Option(15000, "--max_train_steps", "--max-train-steps", help="Optimizer steps."),
    learning_rate: float = typer.Option(2e-5, "--learning_rate", "--learning-rate", help="AdamW learning rate."),
    lr_scheduler: str = typer.Option("constant", "--lr_scheduler", "--lr-scheduler", help="linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup."),
    lr_warmup_steps: int = typer.Option(500, "--lr_warmup_steps", "--lr-warmup-steps", help="Warmup steps of the LR schedule."),
    lr_num_cycles: int = typer.Option(1, "--lr_num_cycles", "--lr-num-cycles", help="Restarts of cosine_with_restarts."),
    lr_power: float = typer.Option(1.0, "--lr_power", "--lr-power", help="Power of the polynomial schedule."),
    adam_beta1: float = typer.Option(0.9, "--adam_beta1", "--adam-beta1"),
    adam_beta2: float = typer.Option(0.999, "--adam_beta2", "--adam-beta2"),
    adam_weight_decay: float = typer.Option(1e-2, "--adam_weight_decay", "--adam-weight-decay"),
    adam_epsilon: float = typer.Option(1e-8, "--adam_epsilon", "--adam-epsilon"),
    max_grad_norm: float = typer.Option(1.0, "--max_grad_norm", "--max-grad-norm", help="Gradient-norm clipping (0: off)."),
    gradient_accumulation_steps: int = typer.Option(1, "--gradient_accumulation_steps", "--gradient-accumulation-steps", help="Micro-steps per optimizer step."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient_checkpointing", "--gradient-checkpointing", help="Recompute UNet activations in the backward pass (less memory)."),
    mixed_precision: str = typer.Option(None, "--mixed_precision", "--mixed-precision", help="no, fp16 or bf16 (default: what `accelerate launch` says)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the model, data order and crops."),
    fused_adam: bool = typer.Option(None, "--fused_adam/--no_fused_adam", "--fused-adam/--no-fused-adam", help="Fused AdamW kernel (default: on CUDA)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", " /--no_compile", help="torch.compile the UNet, the VAE decoder and LPIPS (minutes of warm-up, then faster steps; a later run on the same machine reuses the compile cache, set TORCHINDUCTOR_CACHE_DIR to keep it); default: on CUDA for runs of 2000 steps or more."),
    compile_mode: str = typer.Option("default", "--compile_mode", "--compile-mode", help="torch.compile's mode when compiling: default, reduce-overhead (CUDA graphs: the fastest on one GPU), max-autotune, max-autotune-no-cudagraphs."),
    channels_last: bool = typer.Option(None, "--channels_last/--no_channels_last", "--channels-last/--no-channels-last", help="NHWC memory format for the UNet, VAE decoder and LPIPS on CUDA; default: when compiling (9% faster compiled on an H100, no faster eager)."),
    allow_tf32: bool = typer.Option(True, "--allow_tf32/--no_allow_tf32", "--allow-tf32/--no-allow-tf32", help="TF32 matmuls on Ampere and newer GPUs."),
    enable_xformers: bool = typer.Option(False, "--enable_xformers_memory_efficient_attention", "--enable-xformers-memory-efficient-attention", help="xformers attention (PyTorch SDPA is used when it is not installed)."),
    set_grads_to_none: bool = typer.Option(False, "--set_grads_to_none", "--set-grads-to-none", hidden=True, help="Accepted for the original's command lines; gradients are always set to None."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even when a GPU is visible."),
    num_threads: int = typer.Option(None, "--num_threads", "--num-threads", help="CPU threads for the run."),
    # checkpoints, evaluation, logging
    checkpointing_steps: int = typer.Option(1000, "--checkpointing_steps", "--checkpointing-steps", help="Save a resumable checkpoint every N steps and at the end (0: none; the enhancer is still exported)."),
    checkpoints_total_limit: int = typer.Option(3, "--checkpoints_total_limit", "--checkpoints-total-limit", help="Keep the last K checkpoints (0: all)."),
    resume: str = typer.Option(None, "--resume", help="'latest' or a checkpoint folder (or an original model_<step>.pkl)."),
    eval_freq: int = typer.Option(1000, "--eval_freq", "--eval-freq", help="Evaluate on the test split every N steps (and at the end)."),
    num_samples_eval: int = typer.Option(100, "--num_samples_eval", "--num-samples-eval", help="Test entries evaluated."),
    viz_freq: int = typer.Option(100, "--viz_freq", "--viz-freq", help="Log image grids every N steps."),
    num_samples_viz: int = typer.Option(2, "--num_samples_viz", "--num-samples-viz", help="Rows of the image grid."),
    logger_name: str = typer.Option("tensorboard", "--logger", help="tensorboard or none (metrics.jsonl is always written)."),
    tracker_project_name: str = typer.Option("splatent", "--tracker_project_name", "--tracker-project-name", help="Project name (kept in the run's config)."),
    tracker_run_name: str = typer.Option("run", "--tracker_run_name", "--tracker-run-name", help="TensorBoard run folder under OUTPUT_DIR/logs."),
    log_every: int = typer.Option(10, "--log_every", "--log-every", help="Synchronise and log losses every N steps."),
) -> None:
    """Fine-tune the single-step enhancer on a dataset JSON."""
    from splatent_train import TrainConfig, train_enhancer

    config = TrainConfig(**config_options(train, locals(), TrainConfig, renames=RENAMES))
    if not _is_main_process():
        train_enhancer(config)
        return
    from splatent_latents import progress_bar  # imports torch: not at CLI start

    with progress_bar("train", total=max_train_steps, unit="steps") as bar:
        result = train_enhancer(config, progress=bar.report)
    print(f"{result.summary()}; enhancer: {result.enhancer_dir}")
