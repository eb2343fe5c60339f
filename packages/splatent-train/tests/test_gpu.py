"""The CUDA path: bf16 autocast, fused AdamW, frozen modules in bf16, torch.compile, resume."""

from __future__ import annotations

import math

import pytest
import torch

from splatent_train import TrainConfig, loss_curve, train_enhancer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the training fast path)"),
]


def gpu_config(dataset, out, **kw) -> TrainConfig:
    base = dict(dataset_path=dataset, output_dir=out, base_model="tiny", mixed_precision="bf16", lambda_lpips=0.0,
                learning_rate=1e-3, lr_warmup_steps=0, train_batch_size=2, max_train_steps=150, eval_freq=0,
                viz_freq=0, checkpointing_steps=0, logger="none", log_every=1)
    return TrainConfig(**{**base, **kw})


def test_bf16_training_on_cuda_learns_and_resumes(degraded_dataset, tmp_path):
    from splatent_train import build_lpips

    random_lpips = build_lpips("alex", pretrained=False)  # its own: training moves it to the GPU in bf16
    result = train_enhancer(gpu_config(degraded_dataset, tmp_path / "run", checkpointing_steps=75, lambda_lpips=1.0),
                            lpips_model=random_lpips)
    assert result.peak_memory_gb is not None and result.peak_memory_gb > 0
    assert result.eval["latent_psnr_gain"] > 1.0, result.eval
    curve = loss_curve(tmp_path / "run")
    assert curve[150] < curve[1]
    # resuming the finished run for more steps continues from its last checkpoint
    more = train_enhancer(gpu_config(degraded_dataset, tmp_path / "run", checkpointing_steps=75, lambda_lpips=1.0,
                                     max_train_steps=160, resume="latest"), lpips_model=random_lpips)
    assert more.start_step == 150 and more.steps == 160


def test_compiled_training_follows_eager(degraded_dataset, tmp_path):
    eager = train_enhancer(gpu_config(degraded_dataset, tmp_path / "eager", max_train_steps=12))
    compiled = train_enhancer(gpu_config(degraded_dataset, tmp_path / "compiled", max_train_steps=12, compile=True))
    a, b = loss_curve(tmp_path / "eager"), loss_curve(tmp_path / "compiled")
    for step in a:
        assert abs(a[step] - b[step]) <= 0.05 * abs(a[step]) + 1e-4, (step, a[step], b[step])
    assert compiled.steps == eager.steps == 12


def test_cuda_graph_run_evaluates_draws_checkpoints_and_resumes(degraded_dataset, tmp_path):
    """A run compiled with CUDA graphs replays them (none skipped); evaluation, image grids, checkpoints and a resume
    go through them and agree with an eager run of the same settings."""
    from torch._dynamo.utils import counters

    from splatent_latents import load_codec

    from splatent_train import build_lpips

    # the RGB and LPIPS losses back-propagate through the compiled (graphed) VAE decoder and LPIPS network
    settings = dict(max_train_steps=8, eval_freq=4, viz_freq=4, checkpointing_steps=4, compile_mode="reduce-overhead",
                    lambda_rgb=1.0, lambda_lpips=1.0)
    skips = counters["inductor"]["cudagraph_skips"]
    graphs = train_enhancer(gpu_config(degraded_dataset, tmp_path / "graphs", compile=True, **settings),
                            codec=load_codec("tiny-random"), lpips_model=build_lpips("alex", pretrained=False))
    assert counters["inductor"]["cudagraph_skips"] == skips, "a compiled region fell back to launching kernels"
    eager = train_enhancer(gpu_config(degraded_dataset, tmp_path / "eager", compile=False, **settings),
                           codec=load_codec("tiny-random"), lpips_model=build_lpips("alex", pretrained=False))
    a, b = loss_curve(tmp_path / "eager"), loss_curve(tmp_path / "graphs")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert abs(a[step] - b[step]) <= 0.05 * abs(a[step]) + 1e-4, (step, a[step], b[step])
    for key in ("latent_psnr_enhanced", "psnr_enhanced"):
        assert abs(graphs.eval[key] - eager.eval[key]) < 0.2, (key, graphs.eval, eager.eval)
    assert (tmp_path / "graphs" / "eval" / "step_4.json").is_file() and (tmp_path / "graphs" / "viz" / "latest.png").is_file()
    assert [p.name for p in graphs.checkpoints] == [p.name for p in eager.checkpoints] and graphs.checkpoints
    more = train_enhancer(gpu_config(degraded_dataset, tmp_path / "graphs", compile=True, **{**settings, "max_train_steps": 10},
                                     resume="latest"), codec=load_codec("tiny-random"),
                          lpips_model=build_lpips("alex", pretrained=False))
    assert more.start_step == 8 and more.steps == 10
    assert math.isfinite(loss_curve(tmp_path / "graphs")[10])


def test_cuda_graphs_with_gradient_accumulation_follow_eager(degraded_dataset, tmp_path):
    """Asked for, CUDA graphs also run with gradient accumulation: a step's micro-steps share one graph generation,
    so the gradients the first hands over survive the second (pytorch/pytorch#169545 fails the other way)."""
    settings = dict(max_train_steps=6, gradient_accumulation_steps=2)
    train_enhancer(gpu_config(degraded_dataset, tmp_path / "eager", compile=False, **settings))
    train_enhancer(gpu_config(degraded_dataset, tmp_path / "graphs", compile=True, compile_mode="reduce-overhead",
                              **settings))
    a, b = loss_curve(tmp_path / "eager"), loss_curve(tmp_path / "graphs")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:
        assert abs(a[step] - b[step]) <= 0.05 * abs(a[step]) + 1e-4, (step, a[step], b[step])


def test_steady_training_steps_do_not_wait_for_the_gpu(degraded_dataset, tmp_path):
    """Between logs a step queues its work and moves on: nothing in it copies or reads back in a way that waits for
    the GPU (one such copy a step, the UNet's timestep tensor, left a CUDA-graph step ~10% idle on an H100). The sync
    debug mode of torch.cuda raises on any synchronising call in steps 4 and 5."""
    def guard(state) -> None:
        if state.step == 3:
            torch.cuda.set_sync_debug_mode("error")
        elif state.step == 5:
            torch.cuda.set_sync_debug_mode("default")

    try:
        result = train_enhancer(gpu_config(degraded_dataset, tmp_path / "run", max_train_steps=8, log_every=100),
                                step_callback=guard)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.steps == 8
