from __future__ import annotations

import json
import subprocess
import sys

import pytest

# the original src/train.py's options (README launch line and argparse), each must take both spellings
ORIGINAL_OPTIONS = [
    "dataset_path", "max_train_steps", "resolution", "learning_rate", "train_batch_size", "dataloader_num_workers",
    "enable_xformers_memory_efficient_attention", "checkpointing_steps", "eval_freq", "viz_freq", "logger",
    "tracker_project_name", "lambda_l2", "lambda_lpips", "lambda_rgb", "use_l1", "scale", "output_dir",
    "tracker_run_name", "timestep", "top_k", "gradient_checkpointing", "gradient_accumulation_steps", "lr_scheduler",
    "lr_warmup_steps", "max_grad_norm", "mixed_precision", "seed", "resume", "min_k", "num_samples_eval", "prompt",
    "lr_num_cycles", "lr_power", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "allow_tf32",
    "set_grads_to_none",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from splatent_train.testing import build_degraded_dataset

    return build_degraded_dataset(tmp_path_factory.mktemp("train-data"))


def test_every_original_option_takes_both_spellings():
    import typer

    from splatent_cli.main import app

    command = typer.main.get_command(app).commands["train"]
    names = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for option in ORIGINAL_OPTIONS:
        assert f"--{option}" in names, option
        assert f"--{option.replace('_', '-')}" in names, option
    assert {"--no-scale", "--no_scale"} <= names


def test_readme_launch_line_runs_with_our_entry_point(dataset, tmp_path):
    """The original README's accelerate launch line, `-m splatent_cli train` in place of src/train.py
    (on this CPU machine: --cpu and one process instead of --multi_gpu)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--mixed_precision=bf16", "--cpu",
           "--num_machines", "1", "--num_processes", "1", "--dynamo_backend", "no",
           "-m", "splatent_cli", "train",
           "--dataset_path", dataset, "--max_train_steps", "4", "--resolution", "512", "--learning_rate", "2e-5",
           "--train_batch_size", "1", "--dataloader_num_workers", "1", "--enable_xformers_memory_efficient_attention",
           "--checkpointing_steps", "2", "--eval_freq", "2", "--viz_freq", "2", "--logger", "tensorboard",
           "--tracker_project_name", "splatent", "--lambda_l2", "1.0", "--lambda_lpips", "0", "--scale",
           "--output_dir", out, "--tracker_run_name", "readme", "--timestep", "300", "--top_k", "3",
           "--base_model", "tiny", "--num_threads", "1"]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 4 steps" in proc.stdout and "held-out latent PSNR" in proc.stdout
    state = json.loads((out / "train.json").read_text())
    assert state["steps"] == 4 and (out / "enhancer" / "config.json").is_file()
    assert (out / "checkpoints" / "checkpoint-4" / "state.json").is_file()
    assert list((out / "logs" / "readme").iterdir())
    config = json.loads((out / "train_config.json").read_text())
    assert config["scale"] is True and config["timestep"] == 300 and config["tracker_run_name"] == "readme"


def test_bad_input_is_one_line(cli, tmp_path):
    res = cli("train", "--dataset_path", tmp_path / "missing.json", "--output_dir", tmp_path / "out")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"splatent train: dataset JSON {tmp_path / 'missing.json'} does not exist; build one with `splatent dataset`"]
    res = cli("train", "--dataset_path", tmp_path / "missing.json", "--output_dir", tmp_path / "out",
              "--compile_mode", "fastest")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "splatent train: --compile_mode 'fastest' is not one of default, reduce-overhead, max-autotune, "
        "max-autotune-no-cudagraphs"]
