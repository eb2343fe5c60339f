"""splatent-train: fine-tune the Splatent enhancer with accelerate (the original ``src/train.py``, rebuilt).

``train_enhancer(TrainConfig(...))`` trains on a dataset JSON with the original's
losses (latent L2/L1, LPIPS and RGB MSE of the decoded prediction), mixed precision,
gradient accumulation and checkpointing, DDP over any number of processes, resumable
checkpoints (``accelerator.save_state`` + an exported enhancer), and evaluation of the
enhanced output against the un-enhanced render on the test split. (The eval stage of the
pipeline and its HTML report live in splatent-pipeline.)
"""

from .build import build_enhancer, build_lr_scheduler, build_optimizer, make_accelerator
from .checkpoint import (
    ENHANCER_DIR, TrainState, export_enhancer, list_checkpoints, load_checkpoint, resolve_resume, save_checkpoint,
)
from .config import LOGGERS, LPIPS_NETS, LR_SCHEDULERS, MIXED_PRECISION, TrainConfig
from .data import (
    Batch, EnhancerDataset, EntryProblem, StreamSampler, check_entries, collate_samples, crop_box, resolve_codec,
)
from .errors import BrokenEntryError, LpipsUnavailableError, TrainError
from .evaluation import (
    METRICS, EvalReport, Evaluator, PromptTable, compare_views, image_metrics, latent_metrics, summarize,
)
from .losses import EnhancerLoss, LossTerms, backbone_cache_path, build_lpips, lpips_available
from .tracking import METRICS_FILE, TrainLogger, loss_curve, read_metrics
from .train import TrainResult, train_enhancer

__version__ = "0.5.0"

__all__ = [
    "Batch", "BrokenEntryError", "ENHANCER_DIR", "EnhancerDataset", "EnhancerLoss", "EntryProblem", "EvalReport",
    "Evaluator", "LOGGERS", "LPIPS_NETS", "LR_SCHEDULERS", "LossTerms", "LpipsUnavailableError", "METRICS",
    "METRICS_FILE", "MIXED_PRECISION", "PromptTable", "StreamSampler", "TrainConfig", "TrainError", "TrainLogger",
    "TrainResult", "TrainState", "backbone_cache_path", "build_enhancer", "build_lpips", "build_lr_scheduler",
    "build_optimizer", "check_entries", "collate_samples", "compare_views", "crop_box", "export_enhancer",
    "image_metrics", "latent_metrics", "list_checkpoints", "load_checkpoint", "loss_curve", "lpips_available",
    "make_accelerator", "read_metrics", "resolve_codec", "resolve_resume", "save_checkpoint", "summarize",
    "train_enhancer",
]
