"""``kill -9`` mid-run, then the same command again: every stage continues where it was, leaves no corrupt file,
leaves no process behind, and (CPU, seeded, one thread) ends with what an uninterrupted run gives.

Each test runs the command once uninterrupted (the reference), once killed with SIGKILL (the main process only,
as a user's ``kill -9`` does) when a file shows it is partway, and once more to finish. Slow: CI runs them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from splatent_data import make_synthetic_scene

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def splatent(*args) -> list[str]:
    return [sys.executable, "-m", "splatent_cli", *map(str, args)]


def run_ok(*args) -> subprocess.CompletedProcess:
    r = subprocess.run(splatent(*args), capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return r


def _session_members(sid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields: state, ppid, pgrp, session, ...
            members.append(int(stat.parent.name))
    return members


def kill_when(args: list, partway: Callable[[], bool], timeout: float = 300) -> None:
    """Start ``splatent ARGS``, SIGKILL its main process once ``partway()`` holds, and check that nothing it
    started survives it (data-loader workers, writer threads' processes)."""
    proc = subprocess.Popen(splatent(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                            start_new_session=True)
    deadline = time.time() + timeout
    try:
        while not partway():
            if proc.poll() is not None:
                pytest.fail(f"the command ended (exit {proc.returncode}) before the kill point: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("the kill point was never reached")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL, "the command finished before the kill"
        if sys.platform.startswith("linux"):
            deadline = time.time() + 15
            while _session_members(proc.pid) and time.time() < deadline:
                time.sleep(0.1)
            assert not _session_members(proc.pid), "a process of the killed command lives on"
    finally:
        if proc.poll() is None:
            proc.kill()
        if sys.platform.startswith("linux"):
            for pid in _session_members(proc.pid):
                os.kill(pid, signal.SIGKILL)


def latents_of(folder: Path) -> dict[str, torch.Tensor]:
    """Every ``*.pt`` latent of ``folder``, each loaded whole (a torn file fails to load)."""
    from splatent_latents import load_latent

    return {p.name: load_latent(p) for p in sorted(folder.glob("*.pt"))}


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("killscene") / "scene"
    make_synthetic_scene(root, n_views=48, width=256, height=192, seed=3)
    return root


def test_extract_killed_mid_run_resumes_to_the_same_latents(scene, tmp_path):
    args = lambda out: ["extract", scene, "--codec", "taef2", "--device", "cpu", "--batch_size", 1, "--workers", 2,  # noqa: E731
                        "--output", out]
    run_ok(*args(tmp_path / "reference"))
    reference = latents_of(tmp_path / "reference")
    out = tmp_path / "killed"
    kill_when(args(out), lambda: len(list(out.glob("*.pt"))) >= 8)
    partial = latents_of(out)  # every file there loads: nothing torn
    assert 8 <= len(partial) < len(reference)
    assert all(torch.equal(partial[k], reference[k]) for k in partial)
    r = run_ok(*args(out))
    assert same_tensors(latents_of(out), reference)
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"], "a temporary file is left"
    assert json.loads((out / "manifest.json").read_text())["count"] == len(reference)
    assert "resum" in (r.stdout + r.stderr).lower() or "skip" in (r.stdout + r.stderr).lower()


@pytest.fixture(scope="module")
def latents(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("killlatents") / "latents"
    run_ok("extract", scene, "--codec", "pca", "--device", "cpu", "--workers", 0, "--output", out)
    return out


def _fit_state(model: Path) -> dict[str, torch.Tensor]:
    from splatent_splat import load_ply

    gaussians, _ = load_ply(model / "gaussians.ply")
    return {k: v.detach() for k, v in gaussians.params.items()}


def test_fit_killed_after_a_checkpoint_resumes_to_the_same_gaussians(scene, latents, tmp_path):
    args = lambda out, *more: ["fit", scene, "--latents", latents, "--output", out, "--steps", 300,  # noqa: E731
                               "--checkpoint-every", 50, "--eval-every", 0, "--device", "cpu", "--backend", "torch",
                               "--init-points", 3000, "--no-tensorboard", *more]
    run_ok(*args(tmp_path / "reference"))
    out = tmp_path / "killed"
    kill_when(args(out), lambda: any((out / "checkpoints").glob("step_000100.pt")))
    for checkpoint in (out / "checkpoints").glob("*.pt"):  # whole, or not there
        torch.load(checkpoint, map_location="cpu", weights_only=True)
    run_ok(*args(out, "--resume"))
    reference, resumed = _fit_state(tmp_path / "reference"), _fit_state(out)
    assert same_tensors(resumed, reference)


def _train_args(dataset: Path, out: Path, *more) -> list:
    return ["train", "--dataset_path", dataset, "--output_dir", out, "--base_model", "tiny", "--max_train_steps", 40,
            "--checkpointing_steps", 10, "--resolution", 64, "--cpu", "--lambda_lpips", 0, "--lambda_rgb", 0,
            "--logger", "none", "--eval_freq", 0, "--viz_freq", 0, "--log_every", 1, "--seed", 0,
            "--dataloader_num_workers", 1, *more]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from splatent_train.testing import build_degraded_dataset

    return build_degraded_dataset(tmp_path_factory.mktemp("killdata"), n_views=16, width=128, height=96)


def test_train_killed_after_a_checkpoint_resumes_to_the_same_weights_and_history(dataset, tmp_path):
    from safetensors.torch import load_file

    run_ok(*_train_args(dataset, tmp_path / "reference"))
    out = tmp_path / "killed"
    kill_when(_train_args(dataset, out), lambda: (out / "checkpoints" / "checkpoint-20").is_dir()
              and any((out / "checkpoints" / "checkpoint-20").iterdir()))
    run_ok(*_train_args(dataset, out, "--resume", "latest"))
    weights = lambda run: load_file(str(run / "enhancer" / "unet" / "diffusion_pytorch_model.safetensors"))  # noqa: E731
    assert same_tensors(weights(out), weights(tmp_path / "reference"))
    history = lambda run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    steps = [h["step"] for h in history(out) if "loss" in h]
    assert steps == sorted(set(steps)) and steps[-1] == 40 and steps[0] == 1, "the loss history has gaps or repeats"
    ref = {h["step"]: h["loss"] for h in history(tmp_path / "reference") if "loss" in h}
    assert all(abs(h["loss"] - ref[h["step"]]) < 1e-6 for h in history(out) if "loss" in h)


def test_enhance_killed_mid_dataset_resumes_to_the_same_outputs(dataset, tmp_path):
    run = tmp_path / "model"
    run_ok(*_train_args(dataset, run, "--max_train_steps", 2, "--checkpointing_steps", 0))
    args = lambda out: ["enhance", "--dataset_path", dataset, "--split", "train", "--model_path", run / "enhancer",  # noqa: E731
                        "--output_dir", out, "--device", "cpu", "--batch_size", 1, "--num_workers", 1,
                        "--save-images"]
    run_ok(*args(tmp_path / "reference"))
    reference = latents_of(tmp_path / "reference" / "enhanced")
    out = tmp_path / "killed"
    kill_when(args(out), lambda: len(list((out / "enhanced").glob("*.png"))) >= 3)
    assert len(latents_of(out / "enhanced")) < len(reference)
    run_ok(*args(out))
    assert same_tensors(latents_of(out / "enhanced"), reference)
    assert not list((out / "enhanced").glob(".*")), "a temporary file is left"


def test_pipeline_killed_mid_fit_resumes_to_the_same_numbers(tmp_path):
    scene = tmp_path / "scene"
    make_synthetic_scene(scene, n_views=12, width=96, height=64, seed=1)
    args = lambda out: ["pipeline", "--scene_path", scene, "--output_dir", out, "--codec", "pca", "--steps", 30,  # noqa: E731
                        "--model_splatent_path", "tiny", "--device", "cpu", "--backend", "torch", "--no-lpips"]
    run_ok(*args(tmp_path / "reference"))
    out = tmp_path / "killed"
    kill_when(args(out), lambda: (out / "latents" / "manifest.json").is_file() and (out / "model").is_dir())
    r = run_ok(*args(out))
    assert "[extract] up to date, skipped" in r.stdout and "[fit] running" in r.stdout
    metrics = lambda o: json.loads((o / "eval" / "metrics.json").read_text())["mean"]  # noqa: E731
    assert metrics(out) == metrics(tmp_path / "reference")
