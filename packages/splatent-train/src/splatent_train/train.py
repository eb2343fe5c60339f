"""``train_enhancer``: the training loop. Data, losses, evaluation, checkpoints and logging are the
small modules it calls; the loop itself only orders them.

One optimizer step = ``gradient_accumulation_steps`` micro-steps on every process; a micro-step
takes ``train_batch_size`` samples per process. Launch on several GPUs with
``accelerate launch --multi_gpu --num_processes N -m splatent_cli train ...``: accelerate
wraps the model in DDP, the sampler shards the data by process, evaluation gathers the
records, and only the main process writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from splatent_data import atomic_write_json, provenance, read_dataset_json
from splatent_latents.workers import die_with_parent
from splatent_model import EnhanceInputError

from .build import (
    adopt_codec, build_enhancer, build_lr_scheduler, build_optimizer, compute_dtype, configure_for_training,
    make_accelerator, prepare_frozen, release_accelerator,
)
from .checkpoint import (
    ENHANCER_DIR, TrainState, export_enhancer, list_checkpoints, load_checkpoint, remove_partial, resolve_resume,
    save_checkpoint,
)
from .config import TrainConfig
from .data import (
    EnhancerDataset, EntryProblem, StreamSampler, check_entries, collate_samples, global_batch_start, resolve_codec,
)
from .errors import BrokenEntryError, TrainError
from .evaluation import EvalReport, Evaluator, PromptTable, decode
from .losses import NAMES, EnhancerLoss, build_lpips, lpips_available
from .tracking import TrainLogger

logger = logging.getLogger("splatent")

Progress = Callable[[int, int], None]  # (step, max_train_steps)
StepCallback = Callable[[TrainState], None]


@dataclass
class TrainResult:
    """What a run did.

    Attributes:
        output_dir: The run folder.
        enhancer_dir: The exported enhancer (``output_dir/enhancer``; load with ``splatent_model.load_enhancer``).
        steps, start_step: Optimizer steps reached, and where this invocation began (> 0 after a resume).
        seconds: Wall time of the loop.
        steps_per_second, samples_per_second: Steady-state throughput (after the first steps, evaluations and
            checkpoints excluded), over all processes.
        peak_memory_gb: Peak CUDA memory of the main process (None on CPU).
        losses: Mean of each loss term over the last logged window.
        eval: Means of the last evaluation (see :mod:`splatent_train.evaluation`), empty without a test split.
        broken: Entry id -> why it could not be used.
        checkpoints: Checkpoint folders present at the end.
        resumed_from: The checkpoint this invocation resumed from.
    """

    output_dir: Path
    enhancer_dir: Path | None
    steps: int
    start_step: int
    seconds: float
    steps_per_second: float
    samples_per_second: float
    peak_memory_gb: float | None
    losses: dict[str, float] = field(default_factory=dict)
    eval: dict[str, float] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    checkpoints: list[Path] = field(default_factory=list)
    resumed_from: Path | None = None

    def summary(self) -> str:
        parts = [f"trained {self.steps - self.start_step} steps (to step {self.steps}) in {self.seconds:.1f} s "
                 f"({self.steps_per_second:.2f} steps/s)"]
        if self.losses:
            parts.append(f"loss {self.losses.get('loss', float('nan')):.4g}")
        if "latent_psnr_gain" in self.eval:
            parts.append(f"held-out latent PSNR {self.eval['latent_psnr_enhanced']:.2f} dB vs render "
                         f"{self.eval['latent_psnr_render']:.2f} dB ({self.eval['latent_psnr_gain']:+.2f})")
        if self.broken:
            parts.append(f"{len(self.broken)} broken entries dropped")
        return "; ".join(parts)


def train_enhancer(
    config: TrainConfig,
    model=None,
    codec=None,
    lpips_model=None,
    progress: Progress | None = None,
    step_callback: StepCallback | None = None,
) -> TrainResult:
    """Fine-tune the enhancer on ``config.dataset_path``; see :class:`TrainConfig` for every option.

    Args:
        model: A ``SplatentEnhancer`` to train instead of building one from ``base_model``/``init_from``.
        codec: The latent codec instead of resolving ``config.codec``.
        lpips_model: An ``lpips.LPIPS`` for the loss and the metric (e.g. with a random backbone in tests).
            ``model``, ``codec`` and ``lpips_model`` are moved to the training device (and the frozen ones
            to the compute dtype) in place.
        progress: Called on the main process after each optimizer step.
        step_callback: Called on every process after each optimizer step (after its checkpoint, if any).

    Returns:
        A :class:`TrainResult` (the same on every process).
    """
    config.check()
    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    accelerator = make_accelerator(config)
    run = None
    try:
        run = Run(config, accelerator, model, codec, lpips_model)
        return run.train(progress, step_callback)
    finally:
        if run is not None:  # a failed run too: a caller that goes on must not keep its file and writer thread
            run.tracker.close()
        release_accelerator(accelerator)
        torch.set_num_threads(threads)


class Run:
    """One run's parts, built once; :meth:`train` is the loop."""

    def __init__(self, config: TrainConfig, accelerator, model, codec, lpips_model) -> None:
        from accelerate.utils import set_seed

        self.config, self.acc = config, accelerator
        self.main = accelerator.is_main_process
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        out = config.output_dir
        set_seed(config.seed)
        spec = read_dataset_json(config.dataset_path, check_files=False)
        train_entries, test_entries = spec.split("train"), spec.split("test")
        if not train_entries:
            raise TrainError(f"{config.dataset_path} has no 'train' entries; build it with `splatent dataset` "
                             f"from scenes that are not all test scenes")
        self.resume_path = resolve_resume(out, config.resume)
        if config.resume is None and list_checkpoints(out):
            raise TrainError(f"{out} already holds checkpoints of a run; pass --resume latest to continue it "
                             f"or choose another --output_dir")

        with accelerator.main_process_first():  # downloads and caches happen once
            self.codec = codec if codec is not None else resolve_codec(config.codec, train_entries + test_entries)
        self.load_images = not config.gt_from_latents
        image_losses = config.lambda_lpips > 0 or config.lambda_rgb > 0
        where = dict(rgb_root=config.rgb_root, images_dir=config.images_dir)
        good_train, problems = check_entries(train_entries, config.top_k, config.min_k,
                                             self.load_images and image_losses, **where)
        good_test, test_problems = check_entries(test_entries, config.top_k, config.min_k, self.load_images, **where)
        self.broken: dict[str, str] = {}
        self.report_problems(problems + test_problems, when="in the dataset")
        if not good_train:
            raise TrainError(f"none of the {len(train_entries)} train entries of {config.dataset_path} can be used "
                             f"(first: {problems[0].id}: {problems[0].reason})")

        # the model, its prompts, and the frozen codec and LPIPS
        device = accelerator.device
        with accelerator.main_process_first():
            model = model if model is not None else build_enhancer(config, self.codec)
        try:
            model.check_codec(self.codec, source=f"--init_from {config.init_from}" if config.init_from else "the enhancer")
        except EnhanceInputError as exc:
            raise TrainError(str(exc)) from None
        if self.main:
            out.mkdir(parents=True, exist_ok=True)
        adopt_codec(model, self.codec, out)
        entry_prompts = sorted({config.prompt if config.prompt is not None else e.prompt for e in good_train + good_test})
        if len(entry_prompts) == 1:
            model.register_to_config(prompt=entry_prompts[0])
        prompts = sorted(set(entry_prompts) | {model.config.prompt})
        configure_for_training(model, config, device)
        with accelerator.main_process_first():
            self.prompts = PromptTable.from_model(model, prompts, device)
            if config.lambda_lpips > 0 and lpips_model is None:
                lpips_model = build_lpips(config.lpips_net)
            elif lpips_model is None and lpips_available(config.lpips_net):
                lpips_model = build_lpips(config.lpips_net)  # cached weights: the metric costs no download
        lpips_model = prepare_frozen(self.codec, lpips_model, device, compute_dtype(accelerator),
                                     config.use_compile(device), config.use_channels_last(device), config.compile_mode)
        self.loss = EnhancerLoss(config.lambda_l2, config.lambda_lpips, config.lambda_rgb, config.use_l1,
                                 model.scale_factor, self.codec, lpips_model if config.lambda_lpips > 0 else None)

        optimizer = build_optimizer(model.unet.parameters(), config, device)
        scheduler = build_lr_scheduler(optimizer, config, self.world)
        self.model, self.optimizer, self.scheduler = accelerator.prepare(model, optimizer, scheduler)
        self.state = TrainState()
        if self.resume_path is not None:
            self.state = load_checkpoint(accelerator, self.model, self.resume_path)
            if self.main:
                logger.info("resumed from %s at step %d", self.resume_path, self.state.step)
                self.check_resumed_settings()
        # a new run in a folder without checkpoints keeps none of an earlier run's records (history step 0)
        history_step = self.state.step if self.resume_path is not None else 0
        if self.main:
            remove_partial(out)
            drop_evaluations_after(out, history_step)
            atomic_write_json(out / "train_config.json", {**config.to_json(), "num_processes": self.world, **provenance()})

        # data
        common = dict(prompts=self.prompts.prompts, top_k=config.top_k, min_k=config.min_k, seed=config.seed,
                      prompt=config.prompt, **where)  # None: each entry's own; "": the empty prompt, as enhance reads it
        self.train_set = EnhancerDataset(good_train, crop=config.crop, load_images=self.load_images and image_losses,
                                         **common)
        test_set = EnhancerDataset(good_test, crop=config.eval_crop, load_images=self.load_images, **common)
        viz_set = test_set if len(test_set) else EnhancerDataset(
            good_train[:config.num_samples_viz], crop=config.eval_crop, load_images=self.load_images, **common)
        evaluator_args = dict(codec=self.codec, prompts=self.prompts, lpips=lpips_model,
                              batch_size=config.train_batch_size, num_workers=config.dataloader_num_workers)
        self.evaluator = Evaluator(test_set, max_views=config.num_samples_eval, **evaluator_args) \
            if len(test_set) else None
        self.viewer = Evaluator(viz_set, max_views=config.num_samples_viz, **evaluator_args)
        self.tracker = TrainLogger(out, config.tracker_run_name, config.logger, enabled=self.main,
                                   resume_step=history_step)
        # reduce-overhead and max-autotune replay CUDA graphs: each step must say where it begins
        self.cuda_graphs = config.use_compile(device) and config.compile_mode in ("reduce-overhead", "max-autotune")
        self.last_eval: EvalReport | None = None
        self.last_losses: dict[str, float] = {}
        self._stand_in = None

    # ------------------------------------------------------------------ the loop

    def loader(self):
        c = self.config
        start = global_batch_start(self.state.samples, c.train_batch_size, self.world)
        self.state.samples = start
        sampler = StreamSampler(len(self.train_set), c.train_batch_size, c.seed, start, self.rank, self.world)
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=c.train_batch_size, sampler=sampler, collate_fn=collate_samples,
            num_workers=c.dataloader_num_workers, pin_memory=self.acc.device.type == "cuda",
            persistent_workers=c.dataloader_num_workers > 0,
            worker_init_fn=die_with_parent if c.dataloader_num_workers > 0 else None,  # no orphan after a kill -9
        )

    def train(self, progress: Progress | None, step_callback: StepCallback | None) -> TrainResult:
        c, acc, state = self.config, self.acc, self.state
        start_step = state.step
        window: list[tuple[int, Tensor, Tensor | None, float]] = []  # (step, loss terms [4], grad norm, lr)
        micro: list[Tensor] = []
        clock = Throughput(acc.device, warmup=min(10, max(1, (c.max_train_steps - start_step) // 5)),
                           first_step=start_step)
        batches = iter(self.loader())
        epoch = -(-len(self.train_set) // c.train_batch_size)  # batches in one pass over the entries
        empty = 0  # batches in a row of which no entry loaded
        while state.step < c.max_train_steps:
            batch = next(batches)
            state.samples += c.train_batch_size * self.world
            self.report_problems(batch.problems, when="while loading")
            weight = 1.0
            empty = 0 if len(batch) else empty + 1
            if not len(batch):
                if self.world == 1:
                    if empty >= epoch:  # a whole pass with nothing loaded: stop (a TrainError) unless some entry loads
                        self.stand_in()
                        empty = 0
                    continue
                # DDP needs every process in each backward pass: a stand-in that contributes nothing
                batch, weight = self.stand_in(), 0.0
            batch = batch.to(acc.device)
            if self.cuda_graphs and acc.sync_gradients:
                # A new optimizer step: the graphs may reuse the last step's output memory. Not between micro-steps
                # of one step: the gradients a backward graph hands over become .grad and must survive until the
                # optimizer consumes them (pytorch/pytorch#169545), so later micro-steps run as graphs of their own.
                torch.compiler.cudagraph_mark_step_begin()
            with acc.accumulate(self.model):
                pred = self.model(batch.views, prompt_embeds=self.prompts(batch.prompts))
                with acc.autocast():
                    terms = self.loss(pred, batch.target, self.gt_images(batch))
                acc.backward(terms.total * weight if weight != 1.0 else terms.total)
                grad_norm = None
                if acc.sync_gradients and c.max_grad_norm > 0:
                    grad_norm = acc.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            micro.append(terms.stacked() * weight)
            if not acc.sync_gradients:
                continue
            state.step += 1
            window.append((state.step, torch.stack(micro).mean(0), grad_norm, self.scheduler.get_last_lr()[0]))
            micro.clear()
            clock.tick(state.step)
            last = state.step == c.max_train_steps
            evaluate = self.evaluator is not None and (last or (c.eval_freq and state.step % c.eval_freq == 0))
            visualize = c.viz_freq and state.step % c.viz_freq == 0
            checkpoint = c.checkpointing_steps > 0 and (last or state.step % c.checkpointing_steps == 0)
            if last or evaluate or visualize or checkpoint or state.step % c.log_every == 0:
                self.flush(window)
            if evaluate or visualize or checkpoint:
                with clock.paused():
                    if visualize:
                        self.visualize()
                    if evaluate:
                        self.evaluate()
                    if checkpoint:
                        save_checkpoint(acc, self.model, c.output_dir, state, self.checkpoint_info(),
                                        c.checkpoints_total_limit)
            if self.main and progress is not None:
                progress(state.step, c.max_train_steps)
            if step_callback is not None:
                step_callback(state)
        del batches
        return self.finish(start_step, clock)

    def stand_in(self):
        """The first loadable training sample (centre crop), for a process whose whole micro-batch is broken."""
        if self._stand_in is None:
            for index in range(len(self.train_set)):
                batch = collate_samples([self.train_set[index]])
                if len(batch):
                    self._stand_in = batch
                    break
            else:
                raise TrainError("no train entry of the dataset can be loaded; see the warnings above")
        return self._stand_in

    def gt_images(self, batch) -> Tensor | None:  # [B, 3, H, W] in [0, 1]
        if not self.loss.needs_images:
            return None
        if batch.images is not None:
            return batch.float_images()
        with torch.no_grad():
            return decode(self.codec, batch.target)

    # ------------------------------------------------------------------ what the loop calls

    def report_problems(self, problems: list[EntryProblem], when: str) -> None:
        new = [p for p in problems if p.id not in self.broken]
        for p in new:
            self.broken[p.id] = p.reason
        if not new:
            return
        if self.config.strict:
            raise BrokenEntryError(f"entry {new[0].id!r}: {new[0].reason} (--strict; {len(new)} broken {when})")
        if self.main or when == "while loading":
            for p in new[:5]:
                logger.warning("dropping entry %r: %s", p.id, p.reason)
            if len(new) > 5:
                logger.warning("dropping %d more broken entries %s (see train.json)", len(new) - 5, when)

    def flush(self, window: list) -> None:
        """Synchronise the window's losses (one transfer, averaged over processes) and log them."""
        if not window:
            return
        terms = torch.stack([w[1] for w in window])
        norms = torch.stack([w[2].float() if w[2] is not None else terms.new_tensor(float("nan")) for w in window])
        values = torch.cat([terms, norms[:, None].to(terms.device)], dim=1)
        if self.world > 1:
            values = self.acc.reduce(values, "mean")
        rows = values.cpu().tolist()
        for (step, _, _, lr), row in zip(window, rows):
            logs = {**dict(zip(NAMES, row[:4])), "grad_norm": row[4], "lr": lr}
            self.tracker.scalars(step, {k: v for k, v in logs.items() if not math.isnan(v)})
        self.last_losses = dict(zip(NAMES, torch.tensor(rows)[:, :4].mean(0).tolist()))
        window.clear()

    def evaluate(self) -> None:
        report = self.evaluator.run(self.acc.unwrap_model(self.model), self.acc, self.state.step)
        self.last_eval = report
        self.report_problems(report.problems, when="while evaluating")
        if self.main:
            self.tracker.scalars(self.state.step, {k: v for k, v in report.means.items() if k != "views"}, "eval/")
            self.tracker.flush()
            atomic_write_json(self.config.output_dir / "eval" / f"step_{self.state.step}.json",
                              {"step": self.state.step, "means": report.means, "views": report.records})
            logger.info(report.line())

    def visualize(self) -> None:
        if not self.main:
            return
        grid = self.viewer.grid(self.acc.unwrap_model(self.model), self.acc.device, self.config.num_samples_viz,
                                self.acc.autocast)
        if grid is not None:
            self.tracker.image("viz/render|enhanced|gt|references", self.state.step, grid)
            from splatent_data import save_rgb

            save_rgb(self.config.output_dir / "viz" / "latest.png", grid)

    RESUME_KEYS = ("base_model", "timestep", "top_k", "min_k", "scale", "resolution", "train_batch_size",
                   "gradient_accumulation_steps", "dataset_path", "seed")

    def checkpoint_info(self) -> dict[str, Any]:
        settings = self.config.to_json()
        return {"settings": {k: settings[k] for k in self.RESUME_KEYS}}

    def check_resumed_settings(self) -> None:
        """Say which settings differ from the run being resumed (allowed, but rarely meant)."""
        if self.resume_path.suffix == ".pkl":
            return
        from .checkpoint import read_state

        before = read_state(self.resume_path)[1].get("settings", {})
        now = self.config.to_json()
        changed = [f"--{k} {before[k]} -> {now[k]}" for k in self.RESUME_KEYS if k in before and before[k] != now[k]]
        if changed:
            logger.warning("resuming with changed settings: %s", ", ".join(changed))

    def finish(self, start_step: int, clock: "Throughput") -> TrainResult:
        from accelerate.utils import gather_object

        acc, c = self.acc, self.config
        acc.wait_for_everyone()
        seconds, steps_per_second = clock.result(self.state.step)
        broken = dict(self.broken)
        if self.world > 1:
            for part in gather_object([broken]):
                broken.update(part)
        enhancer_dir = c.output_dir / ENHANCER_DIR if c.save_enhancer else None
        if self.main and enhancer_dir is not None:
            export_enhancer(acc.unwrap_model(self.model), enhancer_dir)
        # resumed at --max_train_steps: no step ran, so the record of the run that reached this step stays the record
        earlier = self.earlier_record() if self.state.step == start_step else None
        result = TrainResult(
            output_dir=c.output_dir, enhancer_dir=enhancer_dir, steps=self.state.step, start_step=start_step,
            seconds=seconds, steps_per_second=steps_per_second,
            samples_per_second=steps_per_second * c.train_batch_size * c.gradient_accumulation_steps * self.world,
            peak_memory_gb=(torch.cuda.max_memory_allocated(acc.device) / 2**30
                            if acc.device.type == "cuda" else None),
            losses=earlier["losses"] if earlier else self.last_losses,
            eval=earlier["eval"] if earlier else self.last_eval.means if self.last_eval else {}, broken=broken,
            checkpoints=[p for _, p in list_checkpoints(c.output_dir)], resumed_from=self.resume_path,
        )
        if self.main and earlier is None:
            atomic_write_json(c.output_dir / "train.json", {
                "steps": result.steps, "start_step": result.start_step, "seconds": result.seconds,
                "steps_per_second": result.steps_per_second, "samples_per_second": result.samples_per_second,
                "peak_memory_gb": result.peak_memory_gb, "losses": result.losses, "eval": result.eval,
                "broken": result.broken, "num_processes": self.world,
                "enhancer": str(enhancer_dir) if enhancer_dir else None,
                "resumed_from": str(self.resume_path) if self.resume_path else None,
            })
        if self.main:
            self.tracker.close()
        acc.wait_for_everyone()
        return result

    def earlier_record(self) -> dict[str, Any] | None:
        """The ``train.json`` of the run that reached this step (its losses and evaluation), if there is one."""
        try:
            record = json.loads((self.config.output_dir / "train.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("steps") != self.state.step:
            return None
        if not isinstance(record.get("losses"), dict) or not isinstance(record.get("eval"), dict):
            return None
        return record


def drop_evaluations_after(output_dir: Path, step: int) -> None:
    """Remove ``eval/step_<n>.json`` of steps past ``step``: the abandoned run's (a resume from an earlier checkpoint)
    or an earlier run's in this folder, which this run's evaluations would otherwise sit among."""
    for path in (Path(output_dir) / "eval").glob("step_*.json"):
        n = path.stem.removeprefix("step_")
        if n.isdigit() and int(n) > step:
            path.unlink(missing_ok=True)


class Throughput:
    """Steady-state steps per second: timed from ``warmup`` steps after ``first_step`` (where a resumed run starts)
    on, with pauses (eval, checkpoints) removed."""

    def __init__(self, device: torch.device, warmup: int, first_step: int = 0) -> None:
        self.device, self.warmup, self.first_step = device, warmup, first_step
        self.began = time.perf_counter()
        self.start: float | None = None
        self.start_step = 0
        self.paused_for = 0.0

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def tick(self, step: int) -> None:
        if self.start is None and step - self.first_step >= self.warmup:
            self.sync()
            self.start, self.start_step = time.perf_counter(), step

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside is not counted (evaluation, image grids, checkpoints)."""
        self.sync()
        began = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            if self.start is not None:
                self.paused_for += time.perf_counter() - began

    def result(self, step: int) -> tuple[float, float]:
        """``(wall seconds of the loop, steady steps/s)``; with too few steps, steps/s over the whole loop."""
        self.sync()
        now = time.perf_counter()
        if self.start is None or step <= self.start_step:  # no steady steps: the whole loop (0.0 for no step)
            return now - self.began, max(step - self.first_step, 0) / max(now - self.began, 1e-9)
        return now - self.began, (step - self.start_step) / max(now - self.start - self.paused_for, 1e-9)
