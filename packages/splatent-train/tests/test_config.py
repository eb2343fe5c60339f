from __future__ import annotations

import dataclasses

import pytest
import torch

from splatent_train import TrainConfig, TrainError
from splatent_train.config import COMPILE_MIN_STEPS


def config(tmp_path, **kw) -> TrainConfig:
    path = tmp_path / "dataset.json"
    path.write_text("{}")
    return TrainConfig(dataset_path=path, output_dir=tmp_path / "out", **kw)


@pytest.mark.parametrize("option, value, words", [
    ("max_train_steps", 0, "--max_train_steps"),
    ("resolution", 500, "multiple of 8"),
    ("lr_scheduler", "step", "--lr_scheduler 'step'"),
    ("mixed_precision", "fp8", "--mixed_precision"),
    ("logger", "clearml", "not supported"),
    ("lpips_net", "squeeze", "--lpips_net"),
    ("gradient_accumulation_steps", 0, "--gradient_accumulation_steps"),
    ("adam_beta1", 1.5, "--adam_beta1 must be in [0, 1), got 1.5"),
    ("adam_beta2", -0.1, "--adam_beta2"),
    ("adam_epsilon", -1.0, "--adam_epsilon must be >= 0"),
    ("adam_weight_decay", -0.01, "--adam_weight_decay"),
])
def test_bad_options_are_one_line_naming_the_option(tmp_path, option, value, words):
    with pytest.raises(TrainError, match="^[^\n]*$") as err:
        config(tmp_path, **{option: value}).check()
    assert words in str(err.value)


def test_all_losses_off_and_missing_dataset_are_refused(tmp_path):
    with pytest.raises(TrainError, match="nothing to train"):
        config(tmp_path, lambda_l2=0, lambda_lpips=0, lambda_rgb=0).check()
    with pytest.raises(TrainError, match="does not exist"):
        TrainConfig(dataset_path=tmp_path / "none.json", output_dir=tmp_path).check()


def test_json_round_trip_and_crops(tmp_path):
    c = config(tmp_path, resolution=256, eval_resolution=0, rgb_root=tmp_path)
    assert TrainConfig.from_json(c.to_json()) == c
    assert c.crop == 32 and c.eval_crop == 0
    assert config(tmp_path).eval_crop == 64


def test_compile_defaults_to_cuda_runs_long_enough_to_repay_it(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    long_run = TrainConfig(dataset_path=tmp_path, output_dir=tmp_path, max_train_steps=COMPILE_MIN_STEPS)
    short_run = TrainConfig(dataset_path=tmp_path, output_dir=tmp_path, max_train_steps=COMPILE_MIN_STEPS - 1)
    assert long_run.compile is None and long_run.use_compile(cuda) and not long_run.use_compile(cpu)
    assert not short_run.use_compile(cuda)
    assert not dataclasses.replace(long_run, compile=False).use_compile(cuda)
    assert dataclasses.replace(short_run, compile=True).use_compile(cpu)


def test_channels_last_defaults_to_compiled_cuda_runs(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    run = TrainConfig(dataset_path=tmp_path, output_dir=tmp_path, max_train_steps=COMPILE_MIN_STEPS)
    assert run.channels_last is None and run.use_channels_last(cuda) and not run.use_channels_last(cpu)
    assert not dataclasses.replace(run, compile=False).use_channels_last(cuda)  # eager steps keep NCHW
    assert not dataclasses.replace(run, channels_last=False).use_channels_last(cuda)
    forced = dataclasses.replace(run, compile=False, channels_last=True)
    assert forced.use_channels_last(cuda) and not forced.use_channels_last(cpu)  # NHWC is a CUDA choice


def test_unknown_compile_mode_is_one_line(tmp_path):
    dataset = tmp_path / "dataset.json"
    dataset.write_text("{}")
    with pytest.raises(TrainError, match=r"--compile_mode 'fastest' is not one of default, reduce-overhead"):
        TrainConfig(dataset_path=dataset, output_dir=tmp_path, compile_mode="fastest").check()
