"""``TrainConfig``: every option of ``splatent train``, named as in the original ``src/train.py``.

Defaults are the recipe of the original README's launch line (``--learning_rate 2e-5
--lambda_lpips 2.0 --timestep 300 --top_k 3 --scale --max_train_steps 15000``), not the
original argparse defaults, which that line overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splatent_model import SD_TURBO

from .errors import TrainError

if TYPE_CHECKING:
    import torch

LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
MIXED_PRECISION = ("no", "fp16", "bf16")
LOGGERS = ("tensorboard", "none")
LPIPS_NETS = ("vgg", "alex")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_MIN_STEPS = 2000  # compiling costs about 3.5 minutes on an H100; 2000 eager steps take about 9


@dataclass
class TrainConfig:
    """Options of one training run.

    Model:
        base_model: Hub id or diffusers folder whose UNet is fine-tuned (``stabilityai/sd-turbo``), or a preset
            trained from scratch: ``small`` (17.6M parameters, minutes on one GPU) or ``tiny`` (CPU tests).
        init_from: Start from this enhancer checkpoint (folder or original ``.pkl``) instead of the base weights.
        timestep: The fixed timestep the render is denoised from.
        top_k: Reference views per target (1 + top_k must tile a grid: 0, 1, 3, 5...; 0 is the paper's
            no-reference ablation).
        min_k: Skip this many best references (the original's ``--min_k``).
        scale: Multiply latents by the codec's scaling factor before the UNet (the original's ``--scale``).
        prompt: Use this prompt for every entry instead of the entries' own (`""` is the empty prompt, as enhance reads it).

    Data:
        dataset_path: The dataset JSON (``splatent dataset``).
        codec: ``auto`` (from the ``manifest.json`` beside the latents or of their render folder), a codec
            name (``sd-vae``, ``pca``, ``tiny-random``) or a latents folder with a manifest.
        rgb_root: Ground-truth images live at ``<rgb_root>/<scene>/<images_dir>/<stem>.png`` instead of
            beside each ``target_feature``.
        gt_from_latents: Use the decoded ground-truth latent as the ground-truth image (no image files).
        resolution: Side in pixels of the square crop trained on (latents: ``resolution / 8``); 0 trains on
            whole views. Views smaller than it are used whole.
        eval_resolution: The same for evaluation; ``None``: as ``resolution``; 0: whole views.
        train_batch_size: Samples per process and micro-step.
        dataloader_num_workers: Loader processes per training process.
        strict: Stop at the first entry that cannot be loaded instead of reporting and dropping it.

    Losses (as the original): ``lambda_l2`` × L2 (L1 with ``use_l1``) between predicted and ground-truth
    latents in the UNet's (scaled) space, ``lambda_lpips`` × LPIPS (``lpips_net``) and ``lambda_rgb`` × MSE
    between the decoded prediction and the ground-truth image in [-1, 1].

    Optimisation: AdamW (``adam_*``; fused on CUDA unless ``fused_adam`` is False), diffusers'
    ``lr_scheduler`` (warmup and length counted in optimizer steps), ``max_grad_norm`` clipping (0: off),
    ``gradient_accumulation_steps``, ``gradient_checkpointing``, ``mixed_precision`` (``None``: what
    ``accelerate launch`` says, else ``no``), ``seed``, ``compile`` (``torch.compile`` the UNet, a VAE decoder and
    LPIPS; ``None``: on CUDA for runs of at least ``COMPILE_MIN_STEPS`` steps, where its minutes of warm-up pay off:
    on an H100 it trains 1.38× faster than eager, see ``benchmarks/RESULTS.md``; a later run on the same machine reuses
    Inductor's on-disk cache: 17 s of warm-up instead of ~150 s on an H100, and ``TORCHINDUCTOR_CACHE_DIR`` keeps
    that cache where ``/tmp`` is cleared),
    ``compile_mode`` (``torch.compile``'s mode when compiling: ``default``, or ``reduce-overhead``, which replays
    the compiled regions as CUDA graphs: the fastest setting measured on one GPU, its step bound by the GPU rather than
    by kernel launches (``benchmarks/RESULTS.md``); with gradient accumulation a step's micro-steps share one graph
    generation, so the gradients one micro-step hands over survive the next (pytorch/pytorch#169545)),
    ``channels_last`` (NHWC UNet, VAE decoder and LPIPS on CUDA; ``None``: when compiling on CUDA, where cuDNN's
    NCHW↔NHWC conversions were 16% of the compiled step's kernels and NHWC trained 9% faster on an H100; eager
    steps keep NCHW, no faster there), ``allow_tf32``,
    ``enable_xformers_memory_efficient_attention`` (falls back to PyTorch SDPA when
    xformers is not installed), ``cpu`` (train on the CPU even with a GPU), ``num_threads`` (CPU threads
    for the run, restored afterwards; 1 is fastest for tiny models on a busy machine).

    Checkpoints: every ``checkpointing_steps`` optimizer steps, the last ``checkpoints_total_limit`` kept
    (0: all); ``resume`` is ``latest`` or a checkpoint folder (or an original ``model_<step>.pkl``: weights only);
    ``save_enhancer`` writes the final enhancer to ``output_dir/enhancer``.

    Evaluation and logging: every ``eval_freq`` steps on up to ``num_samples_eval`` test entries (0: only at
    the end); image grids of ``num_samples_viz`` test entries every ``viz_freq`` steps; ``logger``
    ``tensorboard`` or ``none`` (``metrics.jsonl`` is always written); losses are synchronised every
    ``log_every`` steps.
    """

    dataset_path: Path
    output_dir: Path
    # model
    base_model: str = SD_TURBO
    init_from: str | None = None
    timestep: int = 300
    top_k: int = 3
    min_k: int = 0
    scale: bool = True
    prompt: str | None = None
    # data
    codec: str = "auto"
    rgb_root: Path | None = None
    images_dir: str = "images_4"
    gt_from_latents: bool = False
    resolution: int = 512
    eval_resolution: int | None = None
    train_batch_size: int = 1
    dataloader_num_workers: int = 0
    strict: bool = False
    # losses
    lambda_l2: float = 1.0
    lambda_lpips: float = 2.0
    lambda_rgb: float = 1.0
    use_l1: bool = False
    lpips_net: str = "vgg"
    # optimisation
    max_train_steps: int = 15000
    learning_rate: float = 2e-5
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 500
    lr_num_cycles: int = 1
    lr_power: float = 1.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str | None = None
    seed: int = 0
    fused_adam: bool | None = None
    compile: bool | None = None
    compile_mode: str = "default"
    channels_last: bool | None = None
    allow_tf32: bool = True
    enable_xformers_memory_efficient_attention: bool = False
    cpu: bool = False
    num_threads: int | None = None
    # checkpoints
    checkpointing_steps: int = 1000
    checkpoints_total_limit: int = 3
    resume: str | None = None
    save_enhancer: bool = True
    # evaluation and logging
    eval_freq: int = 1000
    num_samples_eval: int = 100
    viz_freq: int = 100
    num_samples_viz: int = 2
    logger: str = "tensorboard"
    tracker_project_name: str = "splatent"
    tracker_run_name: str = "run"
    log_every: int = 10

    def __post_init__(self) -> None:
        self.dataset_path = Path(self.dataset_path).expanduser()
        self.output_dir = Path(self.output_dir).expanduser()
        if self.rgb_root is not None:
            self.rgb_root = Path(self.rgb_root).expanduser()

    def use_compile(self, device: "torch.device") -> bool:
        """Whether to ``torch.compile``: as asked, or (``compile=None``) on CUDA for long runs."""
        if self.compile is not None:
            return self.compile
        return device.type == "cuda" and self.max_train_steps >= COMPILE_MIN_STEPS

    def use_channels_last(self, device: "torch.device") -> bool:
        """Whether to run NHWC: as asked, or (``channels_last=None``) on CUDA when compiling."""
        if self.channels_last is not None:
            return self.channels_last and device.type == "cuda"
        return device.type == "cuda" and self.use_compile(device)

    def check(self) -> "TrainConfig":
        """Refuse impossible values, one line naming the option; returns ``self``."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainError(message)

        need(self.max_train_steps >= 1, f"--max_train_steps must be at least 1, got {self.max_train_steps}")
        need(self.train_batch_size >= 1, f"--train_batch_size must be at least 1, got {self.train_batch_size}")
        need(self.gradient_accumulation_steps >= 1,
             f"--gradient_accumulation_steps must be at least 1, got {self.gradient_accumulation_steps}")
        need(self.dataloader_num_workers >= 0, f"--dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}")
        need(self.learning_rate > 0, f"--learning_rate must be positive, got {self.learning_rate}")
        for name in ("adam_beta1", "adam_beta2"):
            need(0 <= getattr(self, name) < 1, f"--{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("adam_epsilon", "adam_weight_decay"):
            need(getattr(self, name) >= 0, f"--{name} must be >= 0, got {getattr(self, name)}")
        need(self.top_k >= 0, f"--top_k must be 0 (no references) or more, got {self.top_k}")
        need(self.min_k >= 0, f"--min_k must be >= 0, got {self.min_k}")
        for name in ("resolution", "eval_resolution"):
            value = getattr(self, name)
            need(value is None or (value >= 0 and value % 8 == 0),
                 f"--{name} must be 0 (whole views) or a positive multiple of 8 pixels, got {value}")
        for name in ("lambda_l2", "lambda_lpips", "lambda_rgb", "max_grad_norm"):
            need(getattr(self, name) >= 0, f"--{name} must be >= 0, got {getattr(self, name)}")
        need(self.lambda_l2 + self.lambda_lpips + self.lambda_rgb > 0,
             "--lambda_l2, --lambda_lpips and --lambda_rgb are all 0: nothing to train on")
        need(self.lr_scheduler in LR_SCHEDULERS,
             f"--lr_scheduler {self.lr_scheduler!r} is not one of {', '.join(LR_SCHEDULERS)}")
        need(self.compile_mode in COMPILE_MODES,
             f"--compile_mode {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
        need(self.mixed_precision is None or self.mixed_precision in MIXED_PRECISION,
             f"--mixed_precision {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")
        if self.logger == "clearml":
            raise TrainError("--logger clearml is not supported; use --logger tensorboard (or none)")
        need(self.logger in LOGGERS, f"--logger {self.logger!r} is not one of {', '.join(LOGGERS)}")
        need(self.lpips_net in LPIPS_NETS, f"--lpips_net {self.lpips_net!r} is not one of {', '.join(LPIPS_NETS)}")
        for name in ("checkpointing_steps", "eval_freq", "viz_freq", "num_samples_eval", "num_samples_viz",
                     "checkpoints_total_limit", "lr_warmup_steps"):
            need(getattr(self, name) >= 0, f"--{name} must be >= 0, got {getattr(self, name)}")
        need(self.num_threads is None or self.num_threads >= 1, f"--num_threads must be at least 1, got {self.num_threads}")
        need(self.log_every >= 1, f"--log_every must be at least 1, got {self.log_every}")
        need(self.dataset_path.is_file(), f"dataset JSON {self.dataset_path} does not exist; build one with `splatent dataset`")
        need(self.rgb_root is None or self.rgb_root.is_dir(), f"--rgb_root {self.rgb_root} is not a folder")
        return self

    @property
    def crop(self) -> int:
        """Training crop side in latent pixels (0: whole views)."""
        return self.resolution // 8

    @property
    def eval_crop(self) -> int:
        return (self.resolution if self.eval_resolution is None else self.eval_resolution) // 8

    def to_json(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v, Path) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
