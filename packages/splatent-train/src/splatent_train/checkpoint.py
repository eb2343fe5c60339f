"""Training checkpoints: accelerate's full state, the step and data position, and an exported enhancer.

Layout of ``OUTPUT_DIR``::

    checkpoints/checkpoint-<step>/
        model.safetensors, optimizer.bin, scheduler.bin, random_states_<rank>.pkl   # accelerator.save_state
        state.json                                                                 # step, samples seen, config
        enhancer/config.json, enhancer/unet/ (diffusers layout)                      # splatent-model format
    enhancer/                                                                      # the final export

A checkpoint is written into ``checkpoints/.checkpoint-<step>.partial`` and renamed
when complete (``state.json`` is its last file), so ``--resume latest`` never picks a
half-written one; only the last ``checkpoints_total_limit`` are kept. accelerate reads
its own files back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from splatent_data import atomic_write_json

from .errors import TrainError

logger = logging.getLogger("splatent")

CHECKPOINTS = "checkpoints"
PREFIX = "checkpoint-"
STATE_FILE = "state.json"
ENHANCER_DIR = "enhancer"
STATE_FORMAT = 1


@dataclass
class TrainState:
    """Where a run is: optimizer steps done, and global samples consumed (all processes, all micro-steps)."""

    step: int = 0
    samples: int = 0


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"{PREFIX}{step}"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``output_dir/checkpoints``, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for path in root.iterdir():
            m = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
            if m and (path / STATE_FILE).is_file():
                found.append((int(m.group(1)), path))
    return sorted(found)


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``latest`` (None when there is none yet) or a path."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(resume).expanduser()
    if path.is_file() and path.suffix == ".pkl":
        return path
    if path.is_dir() and (path / STATE_FILE).is_file():
        return path
    if path.is_dir() and list_checkpoints(path):
        return list_checkpoints(path)[-1][1]
    originals = sorted(path.glob("model_*.pkl"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)) \
        if path.is_dir() else []
    if originals:  # the original's --resume DIR: its last model_<step>.pkl
        return originals[-1]
    raise TrainError(f"--resume {resume}: not a checkpoint folder (with {STATE_FILE}), a run's output folder, "
                     f"an original model_<step>.pkl, or 'latest'")


def read_state(path: Path) -> tuple[TrainState, dict[str, Any]]:
    """``(state, the whole state.json)`` of a checkpoint folder."""
    try:
        data = json.loads((Path(path) / STATE_FILE).read_text())
        return TrainState(step=int(data["step"]), samples=int(data["samples"])), data
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TrainError(f"{Path(path) / STATE_FILE} is unreadable ({exc}); resume from an older checkpoint") from None


def save_checkpoint(accelerator, model, output_dir: Path, state: TrainState, info: dict[str, Any],
                    keep: int = 0) -> Path:
    """Write a checkpoint at ``state.step`` (call on every process); keep the last ``keep`` (0: all)."""
    final = checkpoint_dir(output_dir, state.step)
    partial = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(partial / ENHANCER_DIR)
        atomic_write_json(partial / STATE_FILE, {"format": STATE_FORMAT, **asdict(state),
                                                 "num_processes": accelerator.num_processes, **info})
        # Checkpoints of later steps (and this step's) are the run this one resumed before: it branched off at an
        # earlier checkpoint, so they are not its past. Kept, `--resume latest` would go back to the abandoned run,
        # and pruning by step would delete this run's newest checkpoint before them.
        abandoned = [old for step, old in list_checkpoints(output_dir) if step > state.step]
        if abandoned:
            logger.warning("removing %s: later steps of the run this one resumed from an earlier checkpoint",
                           ", ".join(p.name for p in abandoned))
        for old in abandoned + ([final] if final.exists() else []):
            shutil.rmtree(old)
        os.replace(partial, final)
        if keep > 0:
            for _, old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, model, path: Path) -> TrainState:
    """Restore a checkpoint into the prepared objects; an original ``model_<step>.pkl`` restores weights only."""
    path = Path(path)
    if path.suffix == ".pkl":
        return load_original_weights(accelerator.unwrap_model(model), path)
    state, _ = read_state(path)
    check_loadable(path)
    try:
        accelerator.load_state(str(path))
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise TrainError(f"cannot restore {path} ({first}); it was written for another model or is damaged: "
                         f"resume from another checkpoint or start a new --output_dir") from None
    return state


def check_loadable(path: Path) -> None:
    """Refuse a checkpoint any of whose pickled files (optimizer, scheduler, random states) a weights-only load
    cannot read: such a file could run code when unpickled. accelerate itself skips unreadable random states
    silently, which would resume with other random streams; here that is an error too."""
    from accelerate.utils.other import load as weights_only_load  # torch.load(weights_only=True) + accelerate's safe types

    for file in sorted(Path(path).iterdir()):
        if file.suffix not in (".bin", ".pkl", ".pt") or not file.is_file():
            continue
        try:
            weights_only_load(file, map_location="cpu")
        except Exception as exc:  # UnpicklingError (a disallowed global), truncated or foreign data
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise TrainError(f"refused to resume from {path}: {file.name} cannot be read as plain weights and "
                             f"state ({first}); it may be damaged or could run code when loaded. Resume from "
                             f"another checkpoint or start a new --output_dir") from None


def load_original_weights(model, path: Path) -> TrainState:
    """UNet weights of an original ``model_<step>.pkl``; the step comes from the name, the optimizer starts fresh."""
    from splatent_model import read_original_checkpoint

    state = read_original_checkpoint(path)
    expected = model.unet.state_dict()
    wrong = next((k for k, v in state.items() if k in expected and v.shape != expected[k].shape), None)
    if wrong is not None:  # load_state_dict would raise a multi-line RuntimeError listing every mismatch
        raise TrainError(f"{path}: weight {wrong!r} has shape {tuple(state[wrong].shape)} but this UNet's is "
                         f"{tuple(expected[wrong].shape)}; train with the --base_model and --codec it was trained with")
    missing, unexpected = model.unet.load_state_dict(state, strict=False)
    if unexpected or len(missing) == len(model.unet.state_dict()):
        raise TrainError(f"{path} does not hold weights of this UNet (e.g. {(unexpected or missing)[0]!r}); "
                         f"train with the --base_model it was trained from")
    m = re.search(r"(\d+)", path.stem)
    step = int(m.group(1)) if m else 0
    logger.warning("resuming from %s: UNet weights only (the original format keeps no scheduler or data "
                   "position); the optimizer starts fresh at step %d", path.name, step)
    return TrainState(step=step, samples=0)


def export_enhancer(model, directory: Path) -> Path:
    """Save the enhancer (splatent-model format) into ``directory``, replacing it only once complete."""
    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def remove_partial(output_dir: Path) -> None:
    """Delete half-written checkpoints a crash left behind."""
    root = Path(output_dir) / CHECKPOINTS
    if root.is_dir():
        for path in root.glob(f".{PREFIX}*.partial"):
            shutil.rmtree(path, ignore_errors=True)
