"""``extract_latents``: a scene's images to ``SCENE/features_sd_turbo/<stem>.pt``.

Compatible with the original ``scripts/extract_features.py``: images from
``SCENE/images_4`` (any folder with ``images``), one unscaled float32 latent
``[C, H/8, W/8]`` per image, named by the image's stem (``C`` is the codec's
channel count: 4 for ``sd-vae`` and ``pca``, 32 for ``taef2``). On top of it:

* Speed: images of one size are batched; CPU workers decode the next batches
  while the device encodes (``torch.inference_mode``, bf16 on CUDA,
  ``channels_last``); finished latents are written by a thread pool.
* Resumable: each file is written to a temporary name and renamed. A re-run
  skips latents that exist with the shape their image needs; ``overwrite``
  re-encodes everything. ``manifest.json`` (written before the first latent)
  records codec, model, dtype, channels and sizes; a request that disagrees with it is
  an error rather than a folder of mixed latents. Options left unset
  (``codec``, ``model``, ``revision``, ``dtype``) follow the manifest.
* Multi-GPU: under ``accelerate launch`` each process encodes its share of the
  image list (``split_between_processes``); no file is written twice.
* ``pca`` is fitted on the training split when the folder is a scene with
  poses (test views stay unseen), else on all images; its basis is saved in
  the folder before any latent, and a resumed run reuses it.
* ``sample``: latents are posterior draws, as the original script made them;
  image ``stem``'s draw is seeded from ``(seed, stem)``, so it does not depend
  on batching, resumption or the number of processes. ``pca`` and ``taef2``
  have no posterior and refuse it.
* ``compile``: ``torch.compile`` the encoder of ``sd-vae`` / ``tiny-random`` /
  ``taef2``; ``pca`` is a single matrix product and refuses it. Batches are padded
  to the full batch of their image size, so one graph serves a whole size. On an
  H100 at 512² (sd-vae, bf16): 239 images/s against 153 uncompiled, after a compile
  of about 15 s, so it pays off from about 6 000 images (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from splatent_data import Split

from .codec import LatentCodec
from .devices import dtype_name, resolve_device, resolve_dtype
from .errors import LatentError
from .files import LATENT_SUFFIX, load_latent, save_latent
from .images import ImageBatches, ImageItem, batch_rows, batches_by_size, find_image_dir, probe_images
from .manifest import MANIFEST_NAME, LatentManifest
from .pca import BASIS_FILENAME, PCACodec
from .progress import progress_bar
from .registry import CODEC_NAMES, DEFAULT_CODEC, DETERMINISTIC_CODECS, load_codec
from .taef2 import Taef2Codec
from .vae import VaeCodec
from .workers import as_is, die_with_parent

logger = logging.getLogger("splatent")

DEFAULT_OUTPUT = "features_sd_turbo"
# Pixels per batch: 16 images of 512x512 keep an H100 busy within a few GB in bf16.
VAE_PIXEL_BUDGET = {"cuda": 16 * 512 * 512, "cpu": 4 * 512 * 512}
PCA_PIXEL_BUDGET = 64 * 512 * 512
PENDING_WRITES = 256


@dataclass
class ExtractResult:
    """What a run did. ``failed`` maps file names to reasons; ``seconds`` is the encoding time."""

    output: Path
    codec: str
    dtype: str
    written: list[str]
    skipped: list[str]
    failed: dict[str, str]
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: counts, folder, codec and speed."""
        rate = f", {self.images_per_second:.1f} images/s" if self.written else ""
        return (f"{len(self.written)} encoded, {len(self.skipped)} skipped, {len(self.failed)} failed "
                f"-> {self.output} ({self.codec}, {self.dtype}{rate})")


def extract_latents(
    scene: str | Path,
    output: str | Path = DEFAULT_OUTPUT,
    images: str | Path | None = None,
    codec: str | LatentCodec | None = None,
    model: str | None = None,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    sample: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    fail_fast: bool = False,
    compile: bool = False,
    split: Split | None = None,
    protocol: str = "llff",
    progress: bool = False,
    distributed: bool = True,
) -> ExtractResult:
    """Encode every image of a scene (or image folder) into a latents folder.

    Args:
        scene: Scene folder (with ``images_4/`` or ``images/``), or a folder of images.
        output: Latents folder name under ``scene``, or an absolute path.
        images: Image folder under ``scene`` (``images_4``) or a path; see :func:`find_image_dir`.
        codec: ``sd-vae``, ``pca``, ``taef2``, ``tiny-random`` or a built codec; None: the folder's manifest, else ``sd-vae``.
        model, revision: The ``sd-vae`` weights (hub id or local folder); None: the manifest's, else SD-Turbo.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (under ``accelerate launch``, ``auto`` is the process's GPU).
        dtype: Encoder precision: ``auto`` (the manifest's; else bf16 for VAEs on CUDA, float32 otherwise) or a name.
        batch_size: Images per batch; None fills a pixel budget per image size.
        workers: CPU processes decoding images; None picks from the core count.
        sample: Store posterior draws instead of the posterior mean.
        seed: Seeds the draws (with each image's stem).
        overwrite: Re-encode everything (and refit ``pca``), replacing what the folder holds.
        fail_fast: Stop at the first unreadable image instead of reporting all at the end.
        compile: ``torch.compile`` the encoder (VAEs and ``taef2``; worth it only for large scenes).
        split: The train/test split whose train views fit ``pca``; None: ``protocol``'s split of the scene.
        protocol: When ``split`` is None, the view protocol (``llff``, ``dense``, ``sparse``: as ``fit``'s) whose
            input views fit ``pca``, so that a fit under that protocol tests on views the basis never saw.
        progress: Show a progress bar.
        distributed: Under ``accelerate launch``, split the images across the processes (``False``: this
            process encodes them all, as when each process runs its own scenes).
    """
    scene = Path(scene).expanduser()
    image_dir = find_image_dir(scene, images)
    out_dir = scene / Path(output).expanduser()
    procs = _Processes(device, distributed)

    items, failed = probe_images(image_dir)
    if failed and fail_fast:
        raise LatentError(next(iter(failed.values())))  # each reason names its file

    previous = _previous_manifest(out_dir, overwrite)
    name, config = _requested_codec(codec, model, revision, previous)
    if sample and name in DETERMINISTIC_CODECS:
        raise LatentError(f"the {name} codec is deterministic: it has no posterior to sample; drop --sample")
    if compile and name == "pca":
        raise LatentError("--compile applies to VAE codecs; pca is a single matrix product")
    from splatent_data import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise LatentError(f"unknown --protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if protocol != "llff" and name != "pca":
        raise LatentError(f"--protocol chooses the views a pca basis is fitted on; the {name} codec has none: drop it")
    dev = procs.device if (procs.count > 1 and device == "auto") else resolve_device(device)
    run_dtype = resolve_dtype(previous.dtype if (dtype == "auto" and previous) else dtype, dev, name)
    request = LatentManifest(
        codec=name, codec_config=config, dtype=dtype_name(run_dtype), count=0, sizes={},
        sample=sample, seed=seed if sample else None, images=_relative(image_dir, scene),
    )
    if previous is not None:
        _check_resumable(previous, request, out_dir)
        request.sizes = {s: hw for s, hw in previous.sizes.items() if (out_dir / f"{s}{LATENT_SUFFIX}").is_file()}

    if procs.is_main:
        if overwrite:
            _clear(out_dir, items)
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out_dir)
    built = codec if isinstance(codec, LatentCodec) else None
    if name == "pca":
        if procs.is_main:
            built = _pca_codec(built, out_dir, scene, image_dir, items, split, protocol, overwrite or previous is None,
                               workers, fail_fast)
        procs.barrier()
        built = built if procs.is_main else PCACodec.load(out_dir / BASIS_FILENAME)
    elif built is None:
        built = load_codec(name, **{k: v for k, v in config.items() if k != "name"})
    if compile:
        if not isinstance(built, (VaeCodec, Taef2Codec)):
            raise LatentError(f"--compile applies to VAE codecs and taef2, not {name}")
        built.compile()
    built.to(dev, run_dtype)
    request.scaling_factor = built.scaling_factor
    request.channels, request.downsample = built.channels, built.downsample
    if built.downsample != 8:  # images are cropped to multiples of 8 (images.py); any channel count is fine
        raise LatentError(f"codec {name} makes latents at 1/{built.downsample}; extraction needs 1/8")
    if procs.is_main:
        request.count = len(request.sizes)
        request.save(out_dir)
    procs.barrier()

    mine = procs.split(items)
    todo, skipped = _split_done(mine, out_dir, overwrite, built.channels)
    done_sizes = {item.stem: list(item.encoded_size) for item in skipped}
    written: list[str] = []
    start = time.perf_counter()
    try:
        _encode(built, todo, out_dir, dev, run_dtype, batch_size, workers, sample, seed, fail_fast,
                procs, progress, written, done_sizes, failed, pad=compile)
    finally:
        seconds = time.perf_counter() - start
        if procs.count == 1:  # a failing process cannot meet the others, so only a lone one saves on errors
            _update_manifest(request, out_dir, items, [done_sizes])
    if procs.count > 1:
        gathered = procs.gather((done_sizes, failed, written, [i.stem for i in skipped]))
        if procs.is_main:
            _update_manifest(request, out_dir, items, [d for d, _, _, _ in gathered])
        failed = {k: v for _, f, _, _ in gathered for k, v in f.items()}
        written = [s for _, _, w, _ in gathered for s in w]
        skipped_stems = [s for _, _, _, k in gathered for s in k]
        procs.barrier()
    else:
        skipped_stems = [i.stem for i in skipped]
    return ExtractResult(out_dir, name, request.dtype, sorted(written), sorted(skipped_stems), failed, seconds)


def _encode(codec, todo, out_dir, dev, dtype, batch_size, workers, sample, seed, fail_fast,
            procs, progress, written, done_sizes, failed, pad: bool = False) -> None:
    """Encode ``todo`` batch by batch; appends to ``written``, ``done_sizes``, ``failed`` as it goes.

    ``pad`` (a compiled encoder): every batch of one image size is padded to that size's full batch, so a short
    last batch (or one with unreadable images, or a small scene) reuses the compiled graph instead of compiling
    another.
    """
    budget = PCA_PIXEL_BUDGET if codec.name == "pca" else VAE_PIXEL_BUDGET["cuda" if dev.type == "cuda" else "cpu"]
    batches = batches_by_size(todo, batch_size, budget)
    pending: dict[Future, ImageItem] = {}

    def finish(future: Future) -> None:
        item = pending.pop(future)
        try:
            future.result()
        except OSError as exc:  # disk full, file-size limit, permissions: the OS's error, naming the file
            exc.filename = exc.filename or str(out_dir / (item.stem + LATENT_SUFFIX))
            raise
        written.append(item.stem)
        done_sizes[item.stem] = list(item.encoded_size)

    def drain(raise_errors: bool) -> None:
        errors = []
        for future in list(pending):
            try:
                finish(future)
            except LatentError as exc:
                errors.append(exc)
        if errors and raise_errors:
            raise errors[0]

    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=4, thread_name_prefix="splatent-write"))
        stack.enter_context(torch.inference_mode())
        stack.enter_context(_cudnn_benchmark(dev.type == "cuda"))
        advance = stack.enter_context(progress_bar("extract", len(todo), progress and procs.is_main))
        # One batch in flight: batch k+1 is copied up and encoded while batch k's latents come down and are
        # handed to the writers, so the GPU does not wait on the host between batches.
        in_flight: _Encoded | None = None

        def store(done: _Encoded) -> None:
            done.ready()
            for j, item in enumerate(done.items):
                if not done.finite[j]:
                    reason = (f"the encoder gave NaN/inf latents in {dtype_name(dtype)}; "
                              f"re-extract with --dtype float32 --overwrite")
                    if fail_fast:
                        raise LatentError(f"{item.path}: {reason}")
                    failed[item.path.name] = reason
                    continue
                pending[pool.submit(save_latent, out_dir / f"{item.stem}{LATENT_SUFFIX}", done.latents[j])] = item
            for future in [f for f in pending if f.done()]:
                finish(future)
            while len(pending) > PENDING_WRITES:
                finish(next(iter(pending)))
            advance(len(done.items))

        try:
            for images, good, bad in _loader(todo, batches, workers, procs.count, dev):
                for file_name, reason in bad.items():
                    if fail_fast:
                        raise LatentError(reason)
                    failed[file_name] = reason
                advance(len(bad))
                encoded = None
                if good:
                    batch = [todo[i] for i in good]
                    generators = [torch.Generator().manual_seed(_image_seed(seed, i.stem)) for i in batch] if sample else None
                    rows = batch_rows(tuple(images.shape[-2:]), batch_size, budget) if pad else None
                    encoded = _encode_batch(codec, images, batch, dev, dtype, sample, generators, rows)
                previous, in_flight = in_flight, encoded
                if previous is not None:
                    store(previous)
            previous, in_flight = in_flight, None
            if previous is not None:
                store(previous)
        except BaseException:
            if in_flight is not None:  # encoded before the failure: still written
                with suppress(Exception):
                    store(in_flight)
            drain(raise_errors=False)  # latents already computed are still written whole
            raise
        drain(raise_errors=True)


@dataclass
class _Encoded:
    """A batch's latents on their way to the host (``ready`` waits for the copy)."""

    items: list[ImageItem]
    latents: torch.Tensor  # [B, C, h, w] float32 on the host once ready
    finite: torch.Tensor  # [B] bool
    event: Any = None  # torch.cuda.Event recorded after the copies

    def ready(self) -> None:
        if self.event is not None:
            self.event.synchronize()


def _encode_batch(codec, images: np.ndarray, items: list[ImageItem], dev: torch.device, dtype: torch.dtype,
                  sample: bool, generators, rows: int | None = None) -> _Encoded:
    """Queue one batch on ``dev``: pinned, non-blocking copies both ways, so the call returns while the GPU works.

    ``rows``: encode that many images, the batch followed by copies of its last image (dropped afterwards).
    """
    x = torch.from_numpy(images)
    cuda = dev.type == "cuda"
    if cuda:
        x = x.pin_memory()
    x = x.to(dev, non_blocking=cuda).to(dtype).div_(255.0)
    count = len(x)
    if rows is not None and rows > count:
        x = torch.cat([x, x[-1:].expand(rows - count, *x.shape[1:])])
        if generators is not None:
            generators = generators + [torch.Generator().manual_seed(0) for _ in range(rows - count)]
    latents = codec.encode(x, sample=sample, generator=generators)[:count].float()
    finite = torch.isfinite(latents).flatten(1).all(1)
    if not cuda:
        return _Encoded(items, latents.cpu(), finite.cpu())
    # A non-blocking copy to the CPU lands in pinned memory; the event says when it has.
    latents, finite = latents.to("cpu", non_blocking=True), finite.to("cpu", non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return _Encoded(items, latents, finite, event)


def _loader(todo: list[ImageItem], batches: list[list[int]], workers: int | None, processes: int, dev: torch.device):
    if workers is None:
        workers = min(8, max(0, (os.cpu_count() or 1) // processes - 1))
    workers = min(workers, len(batches))
    # NumPy batches through the workers' pipes, workers tied to this process: see splatent_latents.workers
    return torch.utils.data.DataLoader(
        ImageBatches(todo, batches), batch_size=None, shuffle=False, num_workers=workers, collate_fn=as_is,
        worker_init_fn=die_with_parent if workers else None, prefetch_factor=4 if workers else None,
    )


def _image_seed(seed: int, stem: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(stem.encode())) % 2**63


@contextmanager
def _cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """Let cuDNN time its convolution algorithms: batches repeat the same shapes."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _split_done(items: list[ImageItem], out_dir: Path, overwrite: bool, channels: int) -> tuple[list[ImageItem], list[ImageItem]]:
    """``(to encode, already done)``: a latent is done when it loads with the shape its image needs
    (``channels`` of the codec, the image's size over 8)."""
    if overwrite:
        return list(items), []
    todo, done, stale = [], [], 0
    for item in items:
        path = out_dir / f"{item.stem}{LATENT_SUFFIX}"
        if path.is_file():
            height, width = item.encoded_size
            try:
                load_latent(path, shape=(channels, height // 8, width // 8))
                done.append(item)
                continue
            except LatentError as exc:
                logger.debug("re-encoding %s: %s", path.name, exc)
                stale += 1
        todo.append(item)
    if stale:
        logger.info("%d latent file(s) in %s do not match their image and codec (size or channels changed, or unreadable) "
                    "and are re-encoded", stale, out_dir)
    return todo, done


def _previous_manifest(out_dir: Path, overwrite: bool) -> LatentManifest | None:
    """The folder's manifest when resuming; refuses latents of unknown origin."""
    if overwrite or not out_dir.is_dir():
        return None
    if (out_dir / MANIFEST_NAME).is_file():
        return LatentManifest.load(out_dir)
    foreign = sorted(out_dir.glob(f"*{LATENT_SUFFIX}"))
    if foreign:
        raise LatentError(
            f"{out_dir} holds {len(foreign)} latent file(s) but no {MANIFEST_NAME}, so their codec is unknown "
            f"(written by another tool?); pass --overwrite to re-encode them or choose another --output"
        )
    return None


def _requested_codec(codec: str | LatentCodec | None, model: str | None, revision: str | None,
                     previous: LatentManifest | None) -> tuple[str, dict[str, Any]]:
    """Codec name and the config the manifest will record; unset options follow ``previous``."""
    if isinstance(codec, LatentCodec):
        if model or revision:
            raise LatentError("pass model and revision to load_codec, not with an already built codec")
        config = codec.config()
        return codec.name, ({**config, "basis": BASIS_FILENAME} if codec.name == "pca" else config)
    name = codec or (previous.codec if previous else DEFAULT_CODEC)
    base = previous.codec_config if previous is not None and previous.codec == name else {}
    if name != "sd-vae" and (model or revision):
        raise LatentError(f"--model and --revision choose sd-vae weights; codec {name} has none")
    if name == "sd-vae":
        from .vae import DEFAULT_MODEL, resolve_model

        chosen = resolve_model(model)[0] if model else base.get("model", DEFAULT_MODEL)
        return name, {"name": name, "model": chosen, "revision": revision if revision is not None else base.get("revision")}
    if name == "tiny-random":
        return name, {"name": name, "seed": base.get("seed", 0)}
    if name == "pca":
        return name, {"name": name, "basis": BASIS_FILENAME}
    if name == "taef2":  # the packaged weights unless the folder was made with others
        return name, {"name": name, **({"weights": base["weights"]} if base.get("weights") else {})}
    raise LatentError(f"unknown codec {name!r}; use one of {', '.join(CODEC_NAMES)}")


def _check_resumable(previous: LatentManifest, request: LatentManifest, out_dir: Path) -> None:
    """Refuse to add latents to a folder whose manifest describes different ones."""
    keys = sorted((set(previous.codec_config) | set(request.codec_config)) - {"name", "basis"})
    differences = [("codec", previous.codec, request.codec)]
    differences += [(k, previous.codec_config.get(k), request.codec_config.get(k)) for k in keys]
    differences += [(k, getattr(previous, k), getattr(request, k)) for k in ("dtype", "sample", "seed", "images")]
    for key, old, new in differences:
        if old != new:
            if key == "sample":
                resume = "pass --sample" if old else "drop --sample"
            else:
                resume = f"pass --{key} {old}"
            raise LatentError(f"{out_dir} holds latents made with {key}={old} but this run asks for {key}={new}; "
                              f"{resume} to resume, --overwrite to replace them, or choose another --output")


def _clear(out_dir: Path, items: list[ImageItem]) -> None:
    """``overwrite``: drop the old manifest, basis and the latents this run re-encodes, before writing any."""
    for path in [out_dir / MANIFEST_NAME, out_dir / BASIS_FILENAME] + [out_dir / f"{i.stem}{LATENT_SUFFIX}" for i in items]:
        path.unlink(missing_ok=True)
    others = sorted(out_dir.glob(f"*{LATENT_SUFFIX}")) if out_dir.is_dir() else []
    if others:
        logger.warning("%s keeps %d latent file(s) of images not in this run (e.g. %s); they are not from this codec",
                       out_dir, len(others), others[0].name)


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files of a killed run (``.<stem>.pt.<pid>.tmp``), never read as latents."""
    for path in out_dir.glob(f".*{LATENT_SUFFIX}.*.tmp"):
        path.unlink(missing_ok=True)


def _pca_codec(given: LatentCodec | None, out_dir: Path, scene: Path, image_dir: Path, items: list[ImageItem],
               split: Split | None, protocol: str, refit: bool, workers: int | None, fail_fast: bool) -> PCACodec:
    """The folder's basis when resuming (refused if fitted under another protocol); else fit one (train views
    only when there are poses) and save it."""
    basis = out_dir / BASIS_FILENAME
    if isinstance(given, PCACodec) and given.fitted:
        given.save(basis)
        return given
    if not refit and basis.is_file():
        codec = PCACodec.load(basis)
        fitted = codec.fit_info.get("protocol")  # absent in bases fitted before it was recorded
        if split is None and fitted is not None and fitted != protocol:
            raise LatentError(f"the pca basis in {basis} was fitted on the {fitted} protocol's input views, not "
                              f"{protocol}'s: its test views would be seen; pass --protocol {fitted} to resume, or --overwrite to "
                              f"refit and re-encode")
        logger.info("reusing the pca basis in %s (fitted on %s)", basis, codec.fit_info.get("fitted_on", "?"))
        return codec
    encoded = sorted(out_dir.glob(f"*{LATENT_SUFFIX}")) if not refit else []
    if encoded:  # resuming, basis gone: a refit would not match the latents it encoded (kept as "done")
        raise LatentError(f"{out_dir} holds {len(encoded)} latent file(s) of a pca basis that is gone (no {BASIS_FILENAME}): "
                          f"no other basis decodes them; restore the file, or pass --overwrite to fit a new basis and "
                          f"re-encode them all")
    chosen, how = _fit_images(scene, image_dir, items, split, protocol)
    batches = batches_by_size(chosen, None, PCA_PIXEL_BUDGET)

    def stream():
        for images, _, bad in _loader(chosen, batches, workers, 1, torch.device("cpu")):
            if bad and fail_fast:
                raise LatentError(next(iter(bad.values())))
            if len(images):
                yield torch.from_numpy(images).float().div_(255.0)

    codec = PCACodec.fit(stream(), {"fitted_on": how, **({"protocol": protocol} if split is None else {})})
    logger.info("fitted the pca basis on %s", how)
    codec.save(basis)
    return codec


def _fit_images(scene: Path, image_dir: Path, items: list[ImageItem], split: Split | None,
                protocol: str) -> tuple[list[ImageItem], str]:
    """The images a pca basis is fitted on, and how they were chosen."""
    from splatent_data import find_poses, load_scene, split_scene

    if split is None and find_poses(scene) is not None:  # transforms.json, a COLMAP model or poses_bounds.npy
        posed = load_scene(scene, images=_relative(image_dir, scene))
        split = split_scene(posed, protocol)
    if split is None and protocol != "llff":
        raise LatentError(f"--protocol {protocol} picks input views from the cameras' poses, and {scene} has none; "
                          f"drop it (every image then fits the basis)")
    if split is None:
        return items, f"all {len(items)} images (no poses in {scene}, so no train/test split)"
    train = set(split.train)
    chosen = [item for item in items if item.stem in train]
    if not chosen:
        raise LatentError(f"none of the {len(items)} images in {image_dir} is a training view of the split; "
                          f"check the image names against the poses")
    return chosen, f"the {len(chosen)} training views ({len(items) - len(chosen)} test views stay unseen)"


def _update_manifest(request: LatentManifest, out_dir: Path, items: list[ImageItem],
                     done: list[dict[str, list[int]]]) -> None:
    """Record every latent verified or written (per process); stems of this run's images that failed are dropped."""
    current = {item.stem for item in items}
    sizes = {s: hw for s, hw in request.sizes.items() if s not in current}
    for sizes_of_process in done:
        sizes.update(sizes_of_process)
    request.sizes = dict(sorted(sizes.items()))
    request.count = len(request.sizes)
    request.save(out_dir)


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (``images_4``, ``.``), else absolute."""
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path.resolve())


class _Processes:
    """This process among those ``accelerate launch`` started; a lone process without it."""

    def __init__(self, device: str, distributed: bool = True) -> None:
        self.state = None
        world = int(os.environ.get("WORLD_SIZE", "1")) if distributed else 1
        if world > 1:
            try:
                from accelerate import PartialState
            except ImportError:
                raise LatentError("started as several processes but accelerate is not installed; pip install accelerate") from None
            # Without cpu=True accelerate ignores a CPU-only launch and every process would encode everything.
            self.state = PartialState(cpu=str(device) == "cpu" or not torch.cuda.is_available())
            if self.state.num_processes != world:
                raise LatentError(f"WORLD_SIZE is {world} but accelerate sees {self.state.num_processes} process(es); "
                                  f"start with `accelerate launch --multi_gpu --num_processes N`")

    @property
    def count(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def is_main(self) -> bool:
        return self.state.is_main_process if self.state else True

    @property
    def device(self) -> torch.device:
        return self.state.device if self.state else resolve_device("auto")

    def split(self, items: list) -> list:
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as mine:
            return list(mine)

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def gather(self, value: Any) -> list:
        from accelerate.utils import gather_object

        return gather_object([value])
