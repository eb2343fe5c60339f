"""The CUDA path: bf16 autocast, fused AdamW, frozen modules in bf16, torch.compile, resume."""

from __future__ import annotations

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
