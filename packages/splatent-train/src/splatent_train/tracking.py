"""What the main process records: ``metrics.jsonl`` always, TensorBoard scalars and image grids on request.

``metrics.jsonl`` holds one JSON object per line: ``{"step": 10, "loss": ..., "lr": ...}``
for training steps and ``{"step": 1000, "eval/psnr_enhanced": ...}`` for evaluations, so
loss curves of two runs can be compared without TensorBoard. TensorBoard logs go to
``OUTPUT_DIR/logs/<tracker_run_name>`` (the original's place).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from splatent_data import atomic_write_bytes

METRICS_FILE = "metrics.jsonl"


class TrainLogger:
    """Writes scalars and images; does nothing on processes other than the main one (``enabled`` False)."""

    def __init__(self, output_dir: Path, run_name: str = "run", backend: str = "tensorboard",
                 enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.writer = None
        self.file = None
        if not enabled:
            return
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            keep_history(output_dir / METRICS_FILE, resume_step)
        self.file = open(output_dir / METRICS_FILE, "a", encoding="utf-8")
        if backend == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            # TensorBoard hides the earlier writer's events from purge_step on, as keep_history drops its records
            purge_step = resume_step + 1 if resume_step is not None else None
            self.writer = SummaryWriter(log_dir=str(output_dir / "logs" / run_name), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if not self.enabled:
            return
        clean = {f"{prefix}{k}": (float(v) if math.isfinite(float(v)) else None) for k, v in values.items()}
        self.file.write(json.dumps({"step": int(step), **clean}) + "\n")
        self.file.flush()  # a killed run keeps its history up to its last logged step
        if self.writer is not None:
            for key, value in clean.items():
                if value is not None:
                    self.writer.add_scalar(key, value, step)

    def image(self, tag: str, step: int, image: np.ndarray) -> None:  # image [H, W, 3] uint8
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self.enabled:
            self.file.flush()
            if self.writer is not None:
                self.writer.flush()

    def close(self) -> None:
        """Close the file and the TensorBoard writer (its thread); a second call does nothing."""
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def keep_history(path: Path, step: int) -> None:
    """Keep the records of steps up to ``step`` (the checkpoint a run resumes from): the killed run's later
    records are redone by the resumed run, and a line cut by the kill is dropped. Atomic."""
    if not path.is_file():
        return
    kept = [line for line, record in _records(path) if int(record.get("step", 0)) <= step]
    atomic_write_bytes(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a line cut by a kill, or being written, is left out)."""
    path = Path(output_dir) / METRICS_FILE
    return [record for _, record in _records(path)] if path.is_file() else []


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` of each whole JSON object line of a ``metrics.jsonl``."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append((line, record))
    return records


def loss_curve(output_dir: Path, key: str = "loss") -> dict[int, float]:
    """``{step: value}`` of one training scalar (the last record per step wins, e.g. after a resume)."""
    return {r["step"]: r[key] for r in read_metrics(output_dir) if r.get(key) is not None}
