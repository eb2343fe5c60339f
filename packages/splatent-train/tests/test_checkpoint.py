from __future__ import annotations

import json

import pytest
import torch

from splatent_model import SplatentEnhancer, load_enhancer
from splatent_train import TrainError, export_enhancer, list_checkpoints, resolve_resume
from splatent_train.checkpoint import STATE_FILE, read_state, remove_partial


def fake_checkpoint(root, step, complete=True):
    path = root / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / STATE_FILE).write_text(json.dumps({"step": step, "samples": step * 2}))
    return path


def test_latest_skips_half_written_checkpoints(tmp_path):
    assert resolve_resume(tmp_path, "latest") is None and resolve_resume(tmp_path, None) is None
    fake_checkpoint(tmp_path, 5)
    ten = fake_checkpoint(tmp_path, 10)
    fake_checkpoint(tmp_path, 20, complete=False)  # crashed before state.json
    partial = tmp_path / "checkpoints" / ".checkpoint-30.partial"
    partial.mkdir()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10]
    assert resolve_resume(tmp_path, "latest") == ten
    assert resolve_resume(tmp_path, str(ten)) == ten
    assert resolve_resume(tmp_path / "x", str(tmp_path)) == ten  # a run folder means its latest checkpoint
    assert read_state(ten)[0].samples == 20
    remove_partial(tmp_path)
    assert not partial.exists()
    with pytest.raises(TrainError, match="--resume"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoints" / "checkpoint-20"))


def test_export_replaces_the_folder_only_when_complete(tmp_path):
    model = SplatentEnhancer.tiny()
    out = export_enhancer(model, tmp_path / "enhancer")
    first = load_enhancer(out)
    with torch.no_grad():
        model.unet.conv_out.bias.add_(1.0)
    export_enhancer(model, tmp_path / "enhancer")
    second = load_enhancer(out)
    assert torch.equal(second.unet.conv_out.bias, first.unet.conv_out.bias + 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enhancer"]  # no temporaries left
