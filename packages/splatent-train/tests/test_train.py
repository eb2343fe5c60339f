from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splatent_model import load_enhancer
from splatent_train import BrokenEntryError, TrainConfig, TrainError, loss_curve, train_enhancer
from splatent_train.tracking import read_metrics

HERE = Path(__file__).resolve().parent


def tiny_config(dataset: Path, out: Path, **kw) -> TrainConfig:
    """The tiny enhancer on 16x12 pca latents; fast settings, on the CPU even where a GPU is (bitwise checks)."""
    base = dict(dataset_path=dataset, output_dir=out, base_model="tiny", lambda_lpips=0.0, lambda_rgb=1.0,
                learning_rate=1e-3, lr_warmup_steps=0, train_batch_size=2, max_train_steps=10,
                checkpointing_steps=0, eval_freq=0, viz_freq=0, logger="none", num_threads=1, cpu=True)
    return TrainConfig(**{**base, **kw})


def unet_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_enhancer(folder).unet.state_dict()


def test_enhancer_beats_the_render_on_held_out_views(degraded_dataset, tmp_path):
    """A few hundred CPU steps: on test views never trained on, the enhanced latents beat the degraded renders."""
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", max_train_steps=150, eval_freq=75,
                                        viz_freq=75, logger="tensorboard"))
    m = result.eval
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["versions"]["splatent-train"]
    assert m["views"] == 3
    assert m["latent_psnr_gain"] > 1.0, m  # dB; ~+3 in practice
    assert m["latent_l2_enhanced"] < 0.8 * m["latent_l2_render"]
    assert m["psnr_gain"] > 0.3 and m["ssim_gain"] > 0
    # what the run leaves behind
    out = tmp_path / "run"
    enhancer = load_enhancer(result.enhancer_dir)
    assert enhancer.config.codec["name"] == "pca" and Path(enhancer.config.codec["basis"]).is_file()
    assert enhancer.prompt_cache, "prompt embeddings are stored so inference needs no text encoder"
    assert (out / "viz" / "latest.png").is_file() and list((out / "logs" / "run").iterdir())
    assert json.loads((out / "eval" / "step_150.json").read_text())["means"]["views"] == 3
    curve = loss_curve(out)
    assert sorted(curve) == list(range(1, 151)) and curve[150] < curve[1]
    train_json = json.loads((out / "train.json").read_text())
    assert train_json["steps"] == 150 and train_json["eval"]["latent_psnr_gain"] == m["latent_psnr_gain"]


def test_resume_after_a_crash_reaches_the_same_weights(degraded_dataset, tmp_path, caplog):
    """Crash at step N, resume: step 2N is bitwise the uninterrupted run (accumulation, warmup, cosine LR, crops)."""
    n = 4
    settings = dict(max_train_steps=2 * n, checkpointing_steps=n, gradient_accumulation_steps=2, resolution=64,
                    lr_scheduler="cosine", lr_warmup_steps=2, eval_freq=3, checkpoints_total_limit=1)
    whole = train_enhancer(tiny_config(degraded_dataset, tmp_path / "whole", **settings))

    class Crash(Exception):
        pass

    def crash(state):
        if state.step == n:
            raise Crash

    with pytest.raises(Crash):
        train_enhancer(tiny_config(degraded_dataset, tmp_path / "crashed", **settings), step_callback=crash)
    assert [p.name for p in (tmp_path / "crashed" / "checkpoints").iterdir()] == [f"checkpoint-{n}"]
    with pytest.raises(TrainError, match="--resume latest"):
        train_enhancer(tiny_config(degraded_dataset, tmp_path / "crashed", **settings))
    # the history is on disk up to the crash (flushed per write); a killed run may also leave records past its
    # last checkpoint and a cut line: the resume drops both
    assert max(loss_curve(tmp_path / "crashed")) == n
    with open(tmp_path / "crashed" / "metrics.jsonl", "a") as f:
        f.write('{"step": %d, "loss": 99.0}\n{"step": ' % (2 * n + 5))
    resumed = train_enhancer(tiny_config(degraded_dataset, tmp_path / "crashed", resume="latest", **settings))
    assert resumed.start_step == n and resumed.steps == 2 * n
    steps = [r["step"] for r in read_metrics(tmp_path / "crashed") if "loss" in r]
    assert steps == sorted(set(steps)) and max(steps) == 2 * n
    assert resumed.resumed_from.name == f"checkpoint-{n}"
    a, b = unet_state(whole.enhancer_dir), unet_state(resumed.enhancer_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loss_curve(tmp_path / "whole") == loss_curve(tmp_path / "crashed")
    # the last K checkpoints are kept, each with an exported enhancer
    assert [c.name for c in resumed.checkpoints] == [f"checkpoint-{2 * n}"]
    b2 = unet_state(resumed.checkpoints[0] / "enhancer")
    assert all(torch.equal(b[k], b2[k]) for k in b)
    # continuing with other settings is allowed, and said
    with caplog.at_level(logging.WARNING, logger="splatent"):
        longer = train_enhancer(tiny_config(degraded_dataset, tmp_path / "crashed", resume="latest",
                                            **{**settings, "max_train_steps": 2 * n + 1, "resolution": 32}))
    assert longer.start_step == 2 * n and longer.steps == 2 * n + 1
    assert "--resolution 64 -> 32" in caplog.text


def malformed_copy(dataset: Path, root: Path) -> tuple[Path, str, str]:
    """The dataset with one train entry's render corrupted and another's ground-truth image removed."""
    data = json.loads(dataset.read_text())
    ids = sorted(data["train"])
    corrupt_id, no_image_id = ids[0], ids[1]
    root.mkdir(parents=True)
    bad = root / "corrupt.pt"
    bad.write_bytes(b"\x00garbage")
    data["train"][corrupt_id]["feature"] = str(bad)
    gt = Path(data["train"][no_image_id]["target_feature"])
    lonely = root / "lonely" / gt.name
    lonely.parent.mkdir()
    shutil.copy(gt, lonely)
    data["train"][no_image_id]["target_feature"] = str(lonely)
    path = root / "dataset.json"
    path.write_text(json.dumps(data))
    return path, corrupt_id, no_image_id


def test_malformed_entries_are_reported_not_silently_skipped(degraded_dataset, tmp_path, caplog):
    path, corrupt_id, no_image_id = malformed_copy(degraded_dataset, tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="splatent"):
        result = train_enhancer(tiny_config(path, tmp_path / "run", max_train_steps=12))
    assert set(result.broken) == {corrupt_id, no_image_id}
    assert "corrupt.pt" in result.broken[corrupt_id]
    assert "no ground-truth image" in result.broken[no_image_id]
    logged = caplog.text
    assert f"dropping entry {corrupt_id!r}" in logged and f"dropping entry {no_image_id!r}" in logged
    assert json.loads((tmp_path / "run" / "train.json").read_text())["broken"] == result.broken
    assert result.steps == 12  # the others trained; the broken ones were never replaced by neighbours
    with pytest.raises(BrokenEntryError, match=no_image_id):
        train_enhancer(tiny_config(path, tmp_path / "strict", strict=True))


def test_a_dataset_of_which_no_train_entry_loads_stops_with_one_error(degraded_dataset, tmp_path):
    """Entries can pass the start's file check and still fail to load (a corrupt latent): when none loads, training
    stops with an error rather than skipping empty batches forever."""
    data = json.loads(degraded_dataset.read_text())
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00garbage")
    for entry in data["train"].values():
        entry["feature"] = str(bad)
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TrainError, match="no train entry of the dataset can be loaded"):
        train_enhancer(tiny_config(path, tmp_path / "run", max_train_steps=3))


def test_an_empty_prompt_option_trains_on_the_empty_prompt_as_enhance_reads_it(degraded_dataset, tmp_path):
    """`--prompt ""` is a prompt: enhance encodes the empty text for it, so training must condition on the same."""
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", max_train_steps=2, prompt=""))
    assert result.steps == 2
    enhancer = load_enhancer(result.enhancer_dir)
    assert enhancer.config.prompt == "" and "" in enhancer.prompt_cache


def test_lpips_loss_and_no_lpips_at_all(degraded_dataset, tmp_path, random_lpips, monkeypatch):
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "lpips", max_train_steps=3, lambda_lpips=2.0,
                                        eval_freq=3), lpips_model=random_lpips)
    assert result.losses["loss_lpips"] > 0 and "lpips_enhanced" in result.eval

    import splatent_train.train as train_module

    def no_download(*a, **k):
        raise AssertionError("LPIPS must not be built with --lambda_lpips 0 and no cached weights")

    monkeypatch.setattr(train_module, "build_lpips", no_download)
    monkeypatch.setattr(train_module, "lpips_available", lambda net: False)
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "plain", max_train_steps=2, eval_freq=2,
                                        gt_from_latents=True))
    assert result.losses["loss_lpips"] == 0 and "lpips_enhanced" not in result.eval


def test_two_processes_match_one_process_at_equal_effective_batch(degraded_dataset, tmp_path):
    """DDP over 2 CPU processes (gloo, through accelerate) with batch 1 follows the loss curve of 1 process with batch 2."""
    steps = 6
    one = tiny_config(degraded_dataset, tmp_path / "one", max_train_steps=steps, log_every=1)
    train_enhancer(one)
    two = tiny_config(degraded_dataset, tmp_path / "two", max_train_steps=steps, train_batch_size=1, log_every=1,
                      eval_freq=steps, cpu=True)
    config_file = tmp_path / "two.json"
    config_file.write_text(json.dumps(two.to_json()))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         str(HERE / "distributed_worker.py"), str(config_file)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "train.json").read_text())["num_processes"] == 2
    a, b = loss_curve(tmp_path / "one"), loss_curve(tmp_path / "two")
    assert sorted(a) == sorted(b) == list(range(1, steps + 1))
    for step in a:
        assert abs(a[step] - b[step]) <= 1e-4 * abs(a[step]), (step, a[step], b[step])
    # only the main process wrote: one metrics file, one export, eval gathered from both shards
    assert json.loads((tmp_path / "two" / "train.json").read_text())["eval"]["views"] == 3


def test_resume_from_an_original_pkl_takes_its_weights_and_step(degraded_dataset, tmp_path):
    from splatent_model import SplatentEnhancer

    source = SplatentEnhancer.tiny(seed=5)
    pkl_dir = tmp_path / "original" / "checkpoints"
    pkl_dir.mkdir(parents=True)
    torch.save({"state_dict_unet": source.unet.state_dict()}, pkl_dir / "model_3.pkl")
    torch.save({"state_dict_unet": source.unet.state_dict()}, pkl_dir / "model_7.pkl")
    # learning rate ~0 keeps the weights where the .pkl put them
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", resume=str(pkl_dir), max_train_steps=9,
                                        learning_rate=1e-12, adam_weight_decay=0.0))
    assert result.start_step == 7 and result.steps == 9 and result.resumed_from.name == "model_7.pkl"
    trained, original = unet_state(result.enhancer_dir), source.unet.state_dict()
    assert all(torch.allclose(trained[k], original[k], atol=1e-6) for k in original)


def test_resume_from_a_pkl_of_another_channel_count_is_one_line(degraded_dataset, tmp_path):
    """The UNet of an 8-channel codec resumed into a 4-channel run: one error naming the weight, not torch's list."""
    from splatent_model import SplatentEnhancer

    pkl = tmp_path / "model_3.pkl"
    torch.save({"state_dict_unet": SplatentEnhancer.tiny(channels=8).unet.state_dict()}, pkl)
    with pytest.raises(TrainError, match=r"'conv_in.weight' has shape \(32, 8, 3, 3\).*--codec") as info:
        train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", resume=str(pkl), max_train_steps=4))
    assert "\n" not in str(info.value)


def test_init_from_a_bfloat16_checkpoint_trains_float32_weights(degraded_dataset, tmp_path):
    """A checkpoint stored in bfloat16 (`convert-ckpt --dtype bfloat16`) is a starting point: the run's master
    weights, and so its updates and its export, are float32 (bfloat16 weights lose updates of lr 1e-5 entirely)."""
    from safetensors import safe_open
    from splatent_model import SplatentEnhancer

    SplatentEnhancer.tiny().save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", init_from=str(tmp_path / "bf16"),
                                        max_train_steps=2))
    with safe_open(str(result.enhancer_dir / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}


def test_gradient_checkpointing_changes_memory_not_results(degraded_dataset, tmp_path):
    plain = train_enhancer(tiny_config(degraded_dataset, tmp_path / "plain", max_train_steps=3, log_every=1))
    ckpt = train_enhancer(tiny_config(degraded_dataset, tmp_path / "ckpt", max_train_steps=3, log_every=1,
                                      gradient_checkpointing=True))
    assert loss_curve(tmp_path / "plain") == loss_curve(tmp_path / "ckpt")
    a, b = unet_state(plain.enhancer_dir), unet_state(ckpt.enhancer_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_no_reference_ablation_and_the_small_preset(degraded_dataset, tmp_path):
    """top_k 0 (the paper's no-reference row) trains a 1x1 grid; `small` is a real, bigger preset that trains
    and reloads with its own architecture."""
    from splatent_model import SplatentEnhancer, small_unet_config

    result = train_enhancer(tiny_config(degraded_dataset, tmp_path / "k0", top_k=0, max_train_steps=3))
    enhancer = load_enhancer(result.enhancer_dir)
    assert enhancer.config.top_k == 0
    small = SplatentEnhancer.preset("small", channels=4)
    params = sum(p.numel() for p in small.unet.parameters())
    assert small.config.base_model == "small" and 10e6 < params < 30e6
    assert list(small.unet.config.block_out_channels) == small_unet_config(4)["block_out_channels"]
    run = train_enhancer(tiny_config(degraded_dataset, tmp_path / "small", base_model="small", top_k=1,
                                     max_train_steps=1, train_batch_size=1))
    again = load_enhancer(run.enhancer_dir)
    assert again.config.base_model == "small" and again.config.top_k == 1
    assert sum(p.numel() for p in again.unet.parameters()) == params


class _Exploit:
    """Unpickling this would create a file: the proof that a pickle ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("victim", ["optimizer.bin", "random_states_0.pkl"])
def test_resume_refuses_a_checkpoint_file_that_could_run_code(degraded_dataset, tmp_path, victim):
    import pickle

    settings = dict(max_train_steps=2, checkpointing_steps=1, resolution=32)
    run = train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", **settings))
    checkpoint = run.checkpoints[-1]
    marker = tmp_path / "pwned"
    (checkpoint / victim).write_bytes(pickle.dumps({"state": _Exploit(str(marker))}))
    with pytest.raises(TrainError, match=f"refused to resume .*{victim}"):
        train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", resume="latest",
                                   **{**settings, "max_train_steps": 3}))
    assert not marker.exists()


def test_throughput_counts_from_the_runs_own_first_step():
    """A resumed run warms up over its own first steps, and a run too short for a steady window reports its whole
    loop's rate (train.json must hold a number: strict JSON has no NaN)."""
    from splatent_train.train import Throughput

    resumed = Throughput(torch.device("cpu"), warmup=3, first_step=5000)
    resumed.tick(5001)
    assert resumed.start is None  # step 5001 is the run's first, not past a warm-up of 3
    for step in (5002, 5003):
        resumed.tick(step)
    assert resumed.start_step == 5003
    seconds, rate = resumed.result(5010)
    assert seconds > 0 and rate > 0
    short = Throughput(torch.device("cpu"), warmup=1, first_step=0)
    seconds, rate = short.result(1)
    assert rate == pytest.approx(1 / seconds, rel=0.5) and rate > 0
    assert Throughput(torch.device("cpu"), warmup=1, first_step=7).result(7)[1] == 0.0


def test_a_run_resumed_from_an_earlier_checkpoint_replaces_the_later_ones(degraded_dataset, tmp_path, caplog):
    """Resuming from checkpoint-2 of a run that reached checkpoint-6 branches off: its own checkpoints survive pruning
    and `--resume latest` finds them, not the abandoned run's."""
    out = tmp_path / "run"
    first = train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=6, checkpointing_steps=2))
    assert [p.name for p in first.checkpoints] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    with caplog.at_level(logging.WARNING, logger="splatent"):
        branch = train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=3, checkpointing_steps=1,
                                            checkpoints_total_limit=1, resume=str(first.checkpoints[0])))
    assert [p.name for p in branch.checkpoints] == ["checkpoint-3"]
    assert "removing checkpoint-4, checkpoint-6" in caplog.text
    again = train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=4, resume="latest"))
    assert again.start_step == 3


def test_a_new_run_in_a_folder_without_checkpoints_starts_its_own_metrics(degraded_dataset, tmp_path):
    """A folder whose earlier run wrote no checkpoint may be reused without --resume: its loss curve is the new run's
    alone, not the old one's steps with the new ones appended."""
    out = tmp_path / "run"
    train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=8))
    train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=4, learning_rate=5e-4))
    assert sorted(loss_curve(out)) == [1, 2, 3, 4]


def test_evaluations_past_the_resumed_checkpoint_are_not_kept(degraded_dataset, tmp_path):
    """eval/step_<n>.json of the abandoned run's later steps go, as its checkpoints and metrics.jsonl records do; a new
    run in a folder without checkpoints keeps none of the earlier run's."""
    out = tmp_path / "run"
    first = train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=6, checkpointing_steps=2, eval_freq=2))
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["step_2.json", "step_4.json", "step_6.json"]
    train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=3, resume=str(first.checkpoints[0])))
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["step_2.json", "step_3.json"]
    fresh = tmp_path / "fresh"
    train_enhancer(tiny_config(degraded_dataset, fresh, max_train_steps=4, eval_freq=2))
    train_enhancer(tiny_config(degraded_dataset, fresh, max_train_steps=1))
    assert sorted(p.name for p in (fresh / "eval").iterdir()) == ["step_1.json"]


def test_resuming_a_finished_run_keeps_its_record(degraded_dataset, tmp_path):
    """`--resume latest` on a run that already reached --max_train_steps trains nothing and keeps train.json's losses
    and evaluation (it rewrote them empty)."""
    out = tmp_path / "run"
    settings = dict(max_train_steps=3, checkpointing_steps=3)
    done = train_enhancer(tiny_config(degraded_dataset, out, **settings))
    record = json.loads((out / "train.json").read_text())
    assert record["eval"]["views"] == 3 and record["losses"]
    again = train_enhancer(tiny_config(degraded_dataset, out, resume="latest", **settings))
    assert again.start_step == again.steps == 3
    assert json.loads((out / "train.json").read_text()) == record
    assert again.eval == done.eval and again.losses == done.losses


def tensorboard_steps(log_dir: Path, tag: str = "loss") -> list[int]:
    """The steps TensorBoard shows for ``tag`` (its reader applies the purges a restarted writer records)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_tensorboard_keeps_each_step_once_after_a_resume(degraded_dataset, tmp_path):
    """As metrics.jsonl, TensorBoard's curves drop the abandoned run's steps past the checkpoint a run resumes from,
    and a new run in a folder without checkpoints hides the earlier run's."""
    out = tmp_path / "run"
    settings = dict(logger="tensorboard", log_every=1)
    first = train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=6, checkpointing_steps=3, **settings))
    train_enhancer(tiny_config(degraded_dataset, out, max_train_steps=5, resume=str(first.checkpoints[0]), **settings))
    assert tensorboard_steps(out / "logs" / "run") == [1, 2, 3, 4, 5]
    fresh = tmp_path / "fresh"
    train_enhancer(tiny_config(degraded_dataset, fresh, max_train_steps=5, **settings))
    train_enhancer(tiny_config(degraded_dataset, fresh, max_train_steps=2, **settings))
    assert tensorboard_steps(fresh / "logs" / "run") == [1, 2]


def test_a_run_that_fails_closes_its_metrics_file(degraded_dataset, tmp_path):
    """A library caller that goes on after a failed run keeps no open metrics file (nor TensorBoard's thread)."""
    import psutil

    def fail(state) -> None:
        if state.step == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here") as caught:
        train_enhancer(tiny_config(degraded_dataset, tmp_path / "run", max_train_steps=5), step_callback=fail)
    # while the caller holds the error (its traceback keeps the run alive), the file is already closed
    assert caught.traceback and not [f for f in psutil.Process().open_files() if f.path.endswith("metrics.jsonl")]
