"""The fit stage: 3D Gaussians with latent features, fitted to a scene's latents.

``fit_scene(scene, output, FitConfig(...))`` writes ``output/``:

* ``gaussians.ply`` + ``gaussians.json``: the model (see :mod:`splatent_splat.ply`);
* ``fit.json``: the stage manifest (scene, latents and codec, split, config,
  speed, Gaussian count, test metrics and their history);
* ``checkpoints/step_*.pt``: periodic full state for ``resume``;
* ``tb/``: TensorBoard scalars.

Each step renders one training view's latent at latent resolution (intrinsics
scaled to the latent size, :mod:`splatent_splat.cameras`) and takes L1
(+ optional D-SSIM) against the extracted latent, in the standardised feature
space of :mod:`splatent_splat.gaussians`. With ``rgb_weight > 0`` the same
Gaussians also carry an RGB head rendered at image resolution and supervised
by the photo, as the original trained RGB and latents together (it gives the
latents better geometry). ``target="rgb"`` fits plain RGB 3DGS instead, to
compare the fitter with published 3DGS recipes. Test views (every 8th by
default) are never trained on; they are evaluated every ``eval_every`` steps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from splatent_data import (
    PROTOCOLS, Scene, SceneError, SplatentError, atomic_write_json, load_scene, provenance, split_scene,
)
from splatent_latents import ProgressReporter, cpu_threads, resolve_device

from .cameras import camera_tensors
from .gaussians import FeatureGaussians, features_from_views, kept_pixels, random_points_in_frustums, standardisation
from .losses import photometric_loss
from .ply import save_ply
from .backends import resolve_backend
from .training import (
    Densifier, LearningRates, StrategyConfig, ViewSampler, evaluate, list_checkpoints, load_checkpoint, regularisation,
    save_checkpoint,
)
from .views import View, load_latent_views, load_rgb_views, resolve_latents_dir

logger = logging.getLogger("splatent")

MODEL_FILE = "gaussians.ply"
MANIFEST_FILE = "fit.json"
TARGETS = ("latent", "rgb")


# The flat names of the nested options: keyword spellings kept for ``FitConfig.from_flat`` (the pipeline's
# ``fit_options``, scripts written against the flat config) and the CLI's flags.
FLAT_OPTIONS: dict[str, tuple[str, str]] = {
    **{f"lr_{f.name}": ("lr", f.name) for f in dataclasses.fields(LearningRates) if f.name not in ("scene_scale", "steps")},
    "strategy": ("strategy", "name"),
    **{f.name: ("strategy", f.name) for f in dataclasses.fields(StrategyConfig) if f.name != "name"},
}


@dataclass
class FitConfig:
    """Every option of the fit stage. ``None`` means "the default for this target/strategy".

    The learning rates (``lr``) and the densification strategy (``strategy``) are their own dataclasses, as
    the optimiser and the strategy objects take them; ``strategy="mcmc"`` (a name) and dicts (from
    ``fit.json``) are accepted and converted. :meth:`from_flat` takes the flat spellings (``lr_means``,
    ``refine_start``, ``max_gaussians``...).
    """

    steps: int = 10_000
    target: str = "latent"
    latents: str | None = None
    images: str | None = None
    sh_degree: int | None = None  # 2 for latents (the original), 3 for RGB
    sh_degree_interval: int = 1000
    rgb_weight: float = 0.0
    rgb_sh_degree: int = 3
    rgb_scale: float = 1.0
    ssim_weight: float | None = None  # 0 for latents (the original's L1), 0.2 for RGB (3DGS)
    rgb_ssim_weight: float = 0.2
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    lr: LearningRates = field(default_factory=LearningRates)
    backend: str = "auto"
    device: str = "auto"
    packed: bool = True
    antialiased: bool = False
    init: str = "auto"
    init_points: int = 100_000
    init_opacity: float | None = None  # 0.1, or 0.5 for MCMC
    init_scale: float | None = None  # 1.0, or 0.1 for MCMC
    split_mode: str = "llff"
    split_every: int = 8
    split_file: str | None = None  # JSON {"train": [...], "test": [...]}: the views, named; split_mode "file"
    eval_every: int = 1000
    checkpoint_every: int = 2000
    keep_checkpoints: int = 2
    log_every: int = 50
    seed: int = 0
    tensorboard: bool = True
    progress: bool = True
    fused_adam: bool | None = None  # None: PyTorch's fused Adam on CUDA

    def __post_init__(self) -> None:
        if isinstance(self.strategy, str):
            self.strategy = StrategyConfig(name=self.strategy)
        elif isinstance(self.strategy, dict):
            self.strategy = StrategyConfig(**self.strategy)
        if isinstance(self.lr, dict):
            self.lr = LearningRates(**self.lr)

    @classmethod
    def from_flat(cls, **options: Any) -> "FitConfig":
        """A config from flat keywords: ``FitConfig`` fields and the nested ones' flat names
        (:data:`FLAT_OPTIONS`: ``lr_means`` -> ``lr.means``, ``refine_start`` -> ``strategy.refine_start``)."""
        top = {f.name for f in dataclasses.fields(cls)}
        nested: dict[str, dict[str, Any]] = {"lr": {}, "strategy": {}}
        flat: dict[str, Any] = {}
        for key, value in options.items():
            if key in FLAT_OPTIONS:
                group, name = FLAT_OPTIONS[key]
                nested[group][name] = value
            elif key in top:
                flat[key] = value
            else:
                raise SplatentError(f"unknown fit option {key!r}")
        return cls(**flat, strategy=StrategyConfig(**nested["strategy"]), lr=LearningRates(**nested["lr"]))

    def resolved(self) -> "FitConfig":
        """A copy with every ``None`` replaced by its default, validated."""
        if self.target not in TARGETS:
            raise SplatentError(f"unknown fit target {self.target!r}; use latent or rgb")
        if self.steps < 1:
            raise SplatentError(f"--steps must be at least 1, got {self.steps}")
        mcmc = self.strategy.name == "mcmc"
        sh = self.sh_degree if self.sh_degree is not None else (2 if self.target == "latent" else 3)
        if not 0 <= sh <= 3 or not 0 <= self.rgb_sh_degree <= 3:
            raise SplatentError("SH degrees must be 0..3")
        if self.target == "rgb" and self.rgb_weight > 0:
            raise SplatentError("--rgb-weight adds an RGB head to a latent fit; it has no meaning with --target rgb")
        if self.split_file is not None and self.split_mode not in ("llff", "file"):
            raise SplatentError(f"--split-file names the test views and --protocol {self.split_mode} chooses its own; "
                                "pass one of them")
        if self.split_mode == "file" and self.split_file is None:
            raise SplatentError("split mode 'file' needs the split file: pass --split-file SPLIT.json")
        chooser = ("the split file" if self.split_file is not None or self.split_mode == "file"
                   else f"the {self.split_mode} protocol" if self.split_mode != "llff" else None)
        if chooser is not None and self.split_every != 8:
            raise SplatentError(f"--split-every {self.split_every} picks the llff protocol's test views; "
                                f"{chooser} chooses its own: drop --split-every")
        return dataclasses.replace(
            self, sh_degree=sh, strategy=self.strategy.resolved(self.steps),
            split_mode="file" if self.split_file is not None else self.split_mode,
            ssim_weight=self.ssim_weight if self.ssim_weight is not None else (0.0 if self.target == "latent" else 0.2),
            init_opacity=self.init_opacity if self.init_opacity is not None else (0.5 if mcmc else 0.1),
            init_scale=self.init_scale if self.init_scale is not None else (0.1 if mcmc else 1.0),
        )


@dataclass
class FitResult:
    """What a fit produced; also written to ``fit.json``."""

    model_dir: Path
    steps: int
    num_gaussians: int
    seconds: float
    steps_per_second: float
    test: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    resumed_from: int | None = None


def _scene_scale(views: list[View]) -> float:
    """gsplat's scene scale: 1.1 x the largest camera distance from the cameras' mean."""
    centres = np.stack([v.camera.center for v in views])
    return 1.1 * float(np.linalg.norm(centres - centres.mean(0), axis=1).max() or 1.0)


def _to_chw(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2)


@dataclass
class _Targets:
    """Everything the loop reads: views, their tensors, and how to score them."""

    train: list[View]
    test: list[View]
    rgb_train: list[View] | None
    rgb_test: list[View] | None
    data_range: float
    latents_dir: Path | None
    codec: dict[str, Any] | None


def _load_targets(scene: Scene, split, cfg: FitConfig, device: torch.device) -> _Targets:
    if cfg.target == "rgb":
        train = load_rgb_views(scene, list(split.train), scale=cfg.rgb_scale, device=device)
        test = load_rgb_views(scene, list(split.test), scale=cfg.rgb_scale, device=device)
        return _Targets(train, test, None, None, 1.0, None, None)
    latents_dir = resolve_latents_dir(scene, cfg.latents)
    train = load_latent_views(scene, latents_dir, list(split.train), device)
    test = load_latent_views(scene, latents_dir, list(split.test), device)
    from splatent_latents import read_manifest

    manifest = read_manifest(latents_dir)
    _check_basis_protocol(manifest, latents_dir, cfg.split_mode)
    codec = {"codec": manifest.codec, "codec_config": manifest.codec_config, "latents": str(latents_dir.resolve())}
    values = kept_pixels([v.target for v in train], [v.mask for v in train])
    data_range = float(values.max() - values.min()) or 1.0
    rgb_train = rgb_test = None
    if cfg.rgb_weight > 0:
        def size(views):
            return {v.stem: (max(1, round(8 * v.camera.height * cfg.rgb_scale)), max(1, round(8 * v.camera.width * cfg.rgb_scale)))
                    for v in views}
        rgb_train = load_rgb_views(scene, list(split.train), sizes=size(train), device=device)
        rgb_test = load_rgb_views(scene, list(split.test), sizes=size(test), device=device)
    return _Targets(train, test, rgb_train, rgb_test, data_range, latents_dir, codec)


def _check_basis_protocol(manifest, latents_dir: Path, split_mode: str) -> None:
    """Warn when a pca basis was fitted on another view protocol's inputs: this fit's test views may be among the
    images the basis saw (the latents stay usable, the test scores are then optimistic)."""
    if manifest.codec != "pca" or split_mode not in PROTOCOLS:
        return
    from splatent_latents import codec_from_manifest

    fitted = codec_from_manifest(latents_dir).fit_info.get("protocol")  # absent in older bases and explicit splits
    if fitted is not None and fitted != split_mode:
        logger.warning("the pca basis in %s was fitted on the %s protocol's input views, not %s's: some test views "
                       "were seen; re-extract with `splatent extract --codec pca --protocol %s --overwrite`",
                       latents_dir, fitted, split_mode, split_mode)


def _initial_gaussians(scene: Scene, targets: _Targets, cfg: FitConfig, device: torch.device) -> FeatureGaussians:
    generator = torch.Generator().manual_seed(cfg.seed)
    use_points = scene.points is not None and len(scene.points) >= 16 and cfg.init in ("auto", "points")
    if cfg.init == "points" and not use_points:
        raise SceneError(f"{scene.source} has no sparse points to start from; use --init random")
    if cfg.init not in ("auto", "points", "random"):
        raise SplatentError(f"unknown --init {cfg.init!r}; use auto, points or random")
    if use_points:
        xyz = torch.tensor(scene.points.xyz, dtype=torch.float32)
        point_rgb = (None if scene.points.rgb is None
                     else torch.tensor(scene.points.rgb, dtype=torch.float32) / 255.0)
        logger.info("initialising %d Gaussians from the scene's sparse points", len(xyz))
    else:
        depths = [scene.bounds[v.camera.name] for v in targets.train if v.camera.name in (scene.bounds or {})]
        depth_range = (min(d[0] for d in depths), max(d[1] for d in depths)) if depths else None
        xyz = random_points_in_frustums([v.camera for v in targets.train], cfg.init_points, generator=generator,
                                        depth_range=depth_range)
        point_rgb = None
        logger.info("initialising %d Gaussians at random in the cameras' frustums%s (the scene has no points)", len(xyz),
                    f" between depths {depth_range[0]:.3g} and {depth_range[1]:.3g}" if depth_range else "")
    xyz = xyz.to(device)
    cams = [v.camera for v in targets.train]
    if cfg.target == "rgb":
        rgb = point_rgb.to(device) if point_rgb is not None else features_from_views(
            xyz, cams, [v.target for v in targets.train], masks=[v.mask for v in targets.train])
        return FeatureGaussians.create(xyz, rgb, feature_kind="rgb", sh_degree=cfg.sh_degree,
                                       init_opacity=cfg.init_opacity, init_scale=cfg.init_scale)
    masks = [v.mask for v in targets.train]
    mean, scale = standardisation([v.target for v in targets.train], masks)
    features = features_from_views(xyz, cams, [v.target for v in targets.train], masks=masks)
    rgb_head = None
    if targets.rgb_train is not None:
        rgb_head = point_rgb.to(device) if point_rgb is not None else features_from_views(
            xyz, [v.camera for v in targets.rgb_train], [v.target for v in targets.rgb_train],
            masks=[v.mask for v in targets.rgb_train])
    return FeatureGaussians.create(
        xyz, features, feature_kind="latent", sh_degree=cfg.sh_degree, rgb=rgb_head,
        rgb_sh_degree=cfg.rgb_sh_degree if targets.rgb_train is not None else None,
        feature_mean=mean.to(device), feature_scale=scale.to(device),
        init_opacity=cfg.init_opacity, init_scale=cfg.init_scale,
    )



class _StepLoss:
    """The loss of one training view: latents (standardised, L1 + optional D-SSIM) or RGB,
    plus the RGB head's photo loss when jointly supervised. Returns ``(loss, info)``;
    ``info`` is the rasteriser meta densification reads (the RGB render's when there
    is one: it has image resolution)."""

    def __init__(self, gaussians: FeatureGaussians, targets: _Targets, cfg: FitConfig, backend: str, options: dict):
        self.gaussians, self.cfg, self.backend, self.options = gaussians, cfg, backend, options
        device = gaussians.device
        self.views = targets.train
        self.cams = [camera_tensors([v.camera], device) for v in targets.train]
        mean, scale = gaussians.feature_mean[:, None, None], gaussians.feature_scale[:, None, None]
        latent = cfg.target == "latent"
        # Standardised once here, as the render is (render(standardised=True)) every step.
        self.targets = [((v.target - mean) / scale if latent else v.target)[None] for v in targets.train]
        self.masks = [None if v.mask is None else v.mask[None] for v in targets.train]
        self.data_range = targets.data_range / float(gaussians.feature_scale.mean()) if latent else 1.0
        self.rgb_views = targets.rgb_train
        self.rgb_cams = [camera_tensors([v.camera], device) for v in targets.rgb_train] if targets.rgb_train else None

    def __call__(self, i: int, bands: int) -> tuple[torch.Tensor, dict]:
        """The loss on training view ``i`` with ``bands`` SH degrees unlocked (capped by each head's degree)."""
        g, cfg, view, (viewmats, ks) = self.gaussians, self.cfg, self.views[i], self.cams[i]
        image, _, info = g.render(viewmats, ks, view.camera.width, view.camera.height,
                                  sh_degree=min(bands, g.sh_degree),
                                  backend=self.backend, standardised=cfg.target == "latent", **self.options)
        pred = _to_chw(image)
        loss = photometric_loss(pred, self.targets[i], cfg.ssim_weight, data_range=self.data_range,
                                mask=self.masks[i])
        if self.rgb_cams is not None:
            rview, (viewmats, ks) = self.rgb_views[i], self.rgb_cams[i]
            # the RGB head's own degree (rgb_sh_degree, 3 by default): capped by the latents' degree, its top
            # band never had a gradient
            rgb, _, info = g.render(viewmats, ks, rview.camera.width, rview.camera.height, channel="rgb",
                                    sh_degree=min(bands, g.rgb_sh_degree), backend=self.backend, **self.options)
            loss = loss + cfg.rgb_weight * photometric_loss(_to_chw(rgb), rview.target[None], cfg.rgb_ssim_weight,
                                                            mask=None if rview.mask is None else rview.mask[None])
        return loss, info


def _check_output(output: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:  # resume would win and the overwrite be silently ignored
        raise SplatentError("--resume continues the fit in the model folder and --overwrite starts it again; pass one")
    has_state = (output / MANIFEST_FILE).exists() or bool(list_checkpoints(output))
    if has_state and not (resume or overwrite):
        raise SplatentError(
            f"{output} already holds a fit; pass --resume to continue it, --overwrite to start again, "
            f"or choose another --output"
        )
    if resume and (output / MANIFEST_FILE).exists() and not list_checkpoints(output):
        # a fit from step 0 would replace the finished model: the checkpoints were deleted (to save disk, say)
        raise SplatentError(
            f"{output} holds a finished fit but no checkpoint to resume it from ({output / 'checkpoints'} is empty); "
            f"pass --overwrite to fit again from step 0, or choose another --output"
        )
    if overwrite:
        for _, path in list_checkpoints(output):
            path.unlink()
        for name in (MANIFEST_FILE, MODEL_FILE, "gaussians.json"):
            (output / name).unlink(missing_ok=True)


def fit_scene(
    scene: str | Path | Scene,
    output: str | Path,
    config: FitConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> FitResult:
    """Fit latent-feature Gaussians to ``scene``'s latents and write ``output`` (see module doc).

    Args:
        scene: Scene folder (or a parsed :class:`Scene`); its cameras must be
            pinhole (undistort first: ``splatent scene undistort``).
        output: Model folder.
        config: Options; see :class:`FitConfig`.
        resume: Continue from the newest checkpoint in ``output``.
        overwrite: Start again even if ``output`` holds a fit.
    """
    cfg = (config or FitConfig()).resolved()
    # On the CPU, the thread policy for many small kernels (one thread unless OMP_NUM_THREADS says otherwise): a
    # fit under contention ran 7x slower with every thread.
    with cpu_threads(resolve_device(cfg.device)):
        return _fit_scene(scene, output, cfg, resume, overwrite)


def _fit_scene(scene: str | Path | Scene, output: str | Path, cfg: FitConfig, resume: bool, overwrite: bool) -> FitResult:
    output = Path(output)
    if not isinstance(scene, Scene):
        scene = load_scene(scene, images=cfg.images)
    scene.require_pinhole("fitting (a pinhole rasteriser; extract the latents from the undistorted copy too)")
    _check_output(output, resume, overwrite)
    device = resolve_device(cfg.device)
    backend = resolve_backend(cfg.backend, device)
    split = split_scene(scene, mode=cfg.split_mode, every=cfg.split_every,
                        split_file=Path(cfg.split_file).expanduser() if cfg.split_file is not None else None)
    if not split.train:
        raise SplatentError(f"the {cfg.split_mode} split of {scene.root} has no training views")
    torch.manual_seed(cfg.seed)
    targets = _load_targets(scene, split, cfg, device)
    scene_scale = _scene_scale(targets.train)
    rates = dataclasses.replace(cfg.lr, scene_scale=scene_scale, steps=cfg.steps)
    densifier = Densifier.from_config(cfg.strategy, scene_scale)
    sampler = ViewSampler(len(targets.train), seed=cfg.seed)
    history: list[dict[str, Any]] = []
    losses: list[tuple[int, float]] = []
    start, resumed_from, prior_seconds = 0, None, 0.0
    checkpoints = list_checkpoints(output) if resume else []
    if checkpoints:
        gaussians, optimizers, start, history, losses, prior_seconds = _restore(
            checkpoints[-1][1], cfg, rates, densifier, sampler, device, scene, targets)
        resumed_from = start
        logger.info("resuming %s from step %d", output, start)
    else:
        gaussians = _initial_gaussians(scene, targets, cfg, device)
        optimizers = rates.make_optimizers(gaussians, fused=_fused(cfg, device))
    densifier.check(gaussians, optimizers, backend)
    output.mkdir(parents=True, exist_ok=True)

    if backend == "gsplat":
        from .kernels import ensure_gsplat_kernels

        ensure_gsplat_kernels()
        torch.cuda.reset_peak_memory_stats(device)
    options = {"packed": cfg.packed, "rasterize_mode": "antialiased" if cfg.antialiased else "classic"}
    step_loss = _StepLoss(gaussians, targets, cfg, backend, options)
    writer = _tensorboard(output, cfg, start)

    def run_eval(step: int) -> dict[str, Any]:
        result = evaluate(gaussians, targets.test, targets.data_range, backend=backend, **options)
        record = {"step": step, "psnr": result["psnr"], "ssim": result["ssim"], "num_gaussians": len(gaussians)}
        if targets.rgb_test:
            rgb = evaluate(gaussians, targets.rgb_test, 1.0, channel="rgb", backend=backend, **options)
            record.update(rgb_psnr=rgb["psnr"], rgb_ssim=rgb["ssim"])
        record["per_view"] = result["per_view"]
        if result["psnr"] is not None:
            logger.info("step %d: test PSNR %.2f dB, SSIM %.4f, %d Gaussians", step, result["psnr"], result["ssim"],
                        len(gaussians))
        if writer is not None and result["psnr"] is not None:
            writer.add_scalar("test/psnr", result["psnr"], step)
            writer.add_scalar("test/ssim", result["ssim"], step)
            if result["preview"] is not None:  # the first test view: render | ground truth
                writer.add_image(f"test/{targets.test[0].stem}_render_vs_gt", result["preview"], step)
            if "rgb_psnr" in record:
                writer.add_scalar("test/rgb_psnr", record["rgb_psnr"], step)
        return record

    if start == 0 and cfg.eval_every > 0 and targets.test:
        history.append(run_eval(0))
    # The rate in the live text leaves eval and checkpoint time out, so the bar has no rate column of its own.
    progress = ProgressReporter("fit", cfg.steps, enabled=cfg.progress, unit=None, completed=start)
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    eval_seconds = 0.0
    t0 = time.perf_counter()
    schedule = rates.make_scheduler(optimizers, start)
    try:
        for step in range(start, cfg.steps):
            lr_means = optimizers["means"].param_groups[0]["lr"]  # MCMC's noise scale follows it
            bands = step // max(1, cfg.sh_degree_interval)  # SH degrees unlocked so far; each head caps its own
            i = sampler.next()
            loss, info = step_loss(i, bands)
            extra = regularisation(gaussians, cfg.strategy.opacity_reg, cfg.strategy.scale_reg)
            if isinstance(extra, torch.Tensor):  # no regulariser: no kernel (the step is bound by launches)
                loss = loss + extra
            densifier.pre_backward(gaussians, optimizers, step, info)
            loss.backward()
            for opt in optimizers.values():
                opt.step()
                opt.zero_grad(set_to_none=True)
            schedule.step()
            # Strategies run after the optimiser step (gsplat's simple_trainer order);
            # their step counter is 1-based like 3DGS's iteration.
            densifier.post_backward(gaussians, optimizers, step + 1, info, lr_means)
            loss_sum += loss.detach()
            loss_count += 1
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                mean_loss = float(loss_sum) / loss_count
                losses.append((done, mean_loss))
                loss_sum.zero_()
                loss_count = 0
                elapsed = time.perf_counter() - t0 - eval_seconds
                speed = (done - start) / max(elapsed, 1e-9)
                progress.update(done, info=f"{speed:.1f} steps/s  {len(gaussians):,} Gaussians  loss {mean_loss:.4f}")
                if writer is not None:
                    writer.add_scalar("train/loss", mean_loss, done)
                    writer.add_scalar("train/num_gaussians", len(gaussians), done)
                    writer.add_scalar("train/lr_means", lr_means, done)
            if cfg.eval_every > 0 and targets.test and done % cfg.eval_every == 0 and done != cfg.steps:
                te = time.perf_counter()
                history.append(run_eval(done))
                eval_seconds += time.perf_counter() - te
            if cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0 and done != cfg.steps:
                te = time.perf_counter()
                _checkpoint(output, done, gaussians, optimizers, densifier, sampler, cfg, history, losses,
                            prior_seconds + te - t0 - eval_seconds)
                eval_seconds += time.perf_counter() - te
    finally:
        progress.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0 - eval_seconds
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    final = run_eval(cfg.steps) if targets.test else {"psnr": None, "ssim": None, "per_view": {}}
    if targets.test:
        # a resume of a finished fit evaluates the same step again: replace its record rather than repeat it
        history[:] = [h for h in history if h.get("step") != cfg.steps] + [final]
    _checkpoint(output, cfg.steps, gaussians, optimizers, densifier, sampler, cfg, history, losses,
                prior_seconds + seconds)
    if writer is not None:
        writer.close()
    total_seconds = prior_seconds + seconds
    result = FitResult(
        model_dir=output, steps=cfg.steps, num_gaussians=len(gaussians), seconds=total_seconds,
        # this run's rate; a resume with no step left to run reports the whole fit's
        steps_per_second=((cfg.steps - start) / max(seconds, 1e-9) if cfg.steps > start
                          else cfg.steps / max(total_seconds, 1e-9)), test=final, history=history, losses=losses,
        peak_memory_bytes=peak, resumed_from=resumed_from,
    )
    manifest = _manifest(scene, split, cfg, targets, gaussians, result, backend, device)
    save_ply(gaussians, output / MODEL_FILE, metadata={k: manifest[k] for k in ("scene", "target", "latents", "codec", "codec_config", "data_range")})
    atomic_write_json(output / MANIFEST_FILE, manifest)
    return result



def _fused(cfg: FitConfig, device: torch.device) -> bool:
    return cfg.fused_adam if cfg.fused_adam is not None else device.type == "cuda"


def _restore(path: Path, cfg: FitConfig, rates: LearningRates, densifier: Densifier, sampler: ViewSampler,
             device: torch.device, scene: Scene, targets: _Targets):
    """Everything a checkpoint holds, back in place: ``(gaussians, optimizers, step, history, losses, seconds)``."""
    state = load_checkpoint(path)
    saved = dict(state["fit_config"])
    if isinstance(saved.get("strategy"), dict):  # nested since splatent-splat 0.4; a name before
        saved["strategy"] = saved["strategy"].get("name")
    current = {**dataclasses.asdict(cfg), "strategy": cfg.strategy.name}
    # the targets too: the same latents folder (however it is spelled) and image folder
    if targets.latents_dir is not None:
        saved["latents"] = str(resolve_latents_dir(scene, saved.get("latents")).resolve())
        current["latents"] = str(targets.latents_dir.resolve())
    # options recorded since a later version are compared only where the checkpoint has them
    later = ("split_file", "antialiased", "rgb_sh_degree", "rgb_scale")
    for key in ("target", "sh_degree", "rgb_weight", "strategy", "split_mode", "split_every", "images", "latents",
                *later):
        if key in later and key not in saved:
            continue
        if saved.get(key) != current[key]:
            raise SplatentError(
                f"{path} was fitted with {key}={saved.get(key)!r}, not {current[key]!r}; "
                f"resume with the same options or pass --overwrite"
            )
    step = int(state["step"])
    if step > cfg.steps:
        raise SplatentError(f"{path} is at step {step}, beyond --steps {cfg.steps}; pass --steps {step} or more")
    info = state["gaussians"]
    gaussians = FeatureGaussians(
        state["params"], feature_kind=info["feature_kind"], sh_degree=info["sh_degree"],
        rgb_sh_degree=info["rgb_sh_degree"], feature_mean=torch.tensor(info["feature_mean"]),
        feature_scale=torch.tensor(info["feature_scale"]),
    ).to(device)
    optimizers = rates.make_optimizers(gaussians, fused=_fused(cfg, device))
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    densifier.load_state_dict({k: v.to(device) if torch.is_tensor(v) else v for k, v in state["strategy"].items()})
    sampler.load_state_dict(state["sampler"])
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    losses = [tuple(x) for x in state["losses"]]
    return gaussians, optimizers, step, list(state["history"]), losses, float(state.get("seconds", 0.0))

def _tensorboard(output: Path, cfg: FitConfig, start: int):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; a broken install should not stop a fit
        logger.warning("tensorboard is not importable; fitting without TensorBoard scalars")
        return None
    return SummaryWriter(log_dir=str(output / "tb"), purge_step=start or None)


def _checkpoint(output, step, gaussians, optimizers, densifier, sampler, cfg, history, losses, seconds) -> None:
    payload = {
        "step": step,
        "params": {k: v.detach() for k, v in gaussians.params.items()},
        "gaussians": gaussians.config(),
        "optimizers": {k: opt.state_dict() for k, opt in optimizers.items()},
        "strategy": densifier.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(gaussians.device) if gaussians.device.type == "cuda" else None},
        "fit_config": dataclasses.asdict(cfg),
        "history": history,
        "losses": [list(x) for x in losses],
        "seconds": seconds,
    }
    save_checkpoint(output, step, payload, keep=cfg.keep_checkpoints)


def _manifest(scene, split, cfg, targets, gaussians, result, backend, device) -> dict[str, Any]:
    return {
        "stage": "fit",
        "scene": str(Path(scene.root).resolve()),
        "scene_format": scene.format,
        "images": cfg.images,
        "target": cfg.target,
        "latents": (targets.codec or {}).get("latents"),
        "codec": (targets.codec or {}).get("codec"),
        "codec_config": (targets.codec or {}).get("codec_config"),
        "split": {"mode": cfg.split_mode, "every": cfg.split_every, "file": cfg.split_file,
                  "train": list(split.train), "test": list(split.test)},
        # training views whose mask left pixels out of the loss; the scene's world relative to its original capture's
        "masked_views": sum(v.mask is not None for v in targets.train),
        "applied_transform": None if scene.applied_transform is None else scene.applied_transform.tolist(),
        "model": MODEL_FILE,
        "gaussians": gaussians.config(),
        "data_range": targets.data_range,
        "backend": backend,
        "device": str(device),
        "steps": result.steps,
        "resumed_from": result.resumed_from,
        "num_gaussians": result.num_gaussians,
        "seconds": result.seconds,
        "steps_per_second": result.steps_per_second,
        "peak_memory_bytes": result.peak_memory_bytes,
        "test": {k: v for k, v in result.test.items()},
        "history": [{k: v for k, v in h.items() if k != "per_view"} for h in result.history],
        "losses": [list(x) for x in result.losses],
        "config": dataclasses.asdict(cfg),
        **provenance(),
    }


def read_fit_manifest(model_dir: Path) -> dict[str, Any]:
    """``fit.json`` of a model folder, with a clear error when it is missing or bad."""
    path = Path(model_dir) / MANIFEST_FILE
    if not path.is_file():
        raise SplatentError(f"{model_dir} holds no fitted model ({MANIFEST_FILE} missing); run `splatent fit` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SplatentError(f"{path} is not valid JSON ({exc.msg}); re-run `splatent fit`") from None

