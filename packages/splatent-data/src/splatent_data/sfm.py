"""Photos without poses -> a COLMAP model, through pycolmap.

SIFT features, matching (``auto``: every pair up to :data:`EXHAUSTIVE_MAX_IMAGES`
photos, sequential beyond), incremental mapping (COLMAP's options but for
:data:`ABS_POSE_MIN_NUM_INLIERS`); the model with the most
registered images is kept as ``OUTPUT/sparse/0`` beside a copy of the photos in
``OUTPUT/images``, so ``OUTPUT`` is a scene every stage reads.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import SceneError
from .images import list_images

logger = logging.getLogger("splatent")

MATCHERS = ("auto", "sequential", "exhaustive")

EXHAUSTIVE_MAX_IMAGES = 200
"""Up to this many photos ``matcher="auto"`` matches every pair.

COLMAP's documentation recommends exhaustive matching for up to a few hundred images. It finds
the overlaps of unordered photo sets that sequential matching (each photo against the next few by
file name) misses: on three unordered captures of 25, 29 and 97 photos sequential matching
registered 5, 2 and 92 of them, exhaustive 19, 2 to 21 (from run to run) and 97. Its n(n-1)/2
pairs grow quadratically: the 4,656 pairs of 97 photos took 32 s on 2 CPU cores at 448 px, so
200 photos (19,900 pairs) take a few minutes there, more with full-size photos; beyond that
sequential matching, linear in the photo count, is the one that finishes.
"""

ABS_POSE_MIN_NUM_INLIERS = 15
"""Inlier matches a photo needs to be registered into a model (COLMAP's default is 30).

Measured with exhaustive matching on three small unordered captures at 448 px, over several
mapping seeds: 15 registers 19 of 25 kitchen_subset photos instead of 17 and 97 of 97 snow_miku
photos instead of 96, at the same mean reprojection error, and 11.6 of 29 lund_street photos on
average instead of 6.0. The other mapper options tried (fewer initial-pair inliers, smaller or
single models, refining the principal point, fixed distortion) registered no more; the numbers
are in this package's CHANGELOG.
"""

MAX_FOCAL_ASPECT = 1.25
"""Largest ``fx / fy`` (or ``fy / fx``) of a plausible estimated camera; see :func:`camera_warnings`."""
MAX_DISTORTION = 1.0
"""Largest magnitude of a plausible distortion parameter (COLMAP's own ``max_extra_param``)."""


def choose_matcher(matcher: str, num_images: int) -> tuple[str, str]:
    """The matcher to run for ``num_images`` photos, and why (for the log line).

    ``"sequential"`` and ``"exhaustive"`` are kept as given; ``"auto"`` becomes
    ``"exhaustive"`` up to :data:`EXHAUSTIVE_MAX_IMAGES` photos, ``"sequential"`` beyond.
    """
    if matcher not in MATCHERS:
        raise SceneError(f"unknown matcher {matcher!r}; use one of {', '.join(MATCHERS)}")
    if matcher != "auto":
        return matcher, "as asked"
    if num_images <= EXHAUSTIVE_MAX_IMAGES:
        return "exhaustive", (f"auto chose it for {num_images} photos (<= {EXHAUSTIVE_MAX_IMAGES}): every pair is "
                              f"matched, which finds the overlaps of unordered photos")
    return "sequential", (f"auto chose it for {num_images} photos (> {EXHAUSTIVE_MAX_IMAGES}): too many pairs to "
                          f"match all, so each photo is matched with the next ones by file name, which suits "
                          f"ordered captures; pass --matcher exhaustive for an unordered set")


def camera_warnings(reconstruction) -> list[str]:
    """Signs that a model's estimated cameras are degenerate, one line per such camera.

    Pixels are square on practically every camera, so focal lengths ``fx`` and ``fy`` more than
    :data:`MAX_FOCAL_ASPECT` apart, or a distortion parameter beyond :data:`MAX_DISTORTION`,
    mean the poses fit the matches only through a warped camera (as with photos taken walking
    straight ahead, from which the focal length is hard to recover).
    """
    out = []
    for cam in reconstruction.cameras.values():
        fx, fy = cam.focal_length_x, cam.focal_length_y
        reasons = []
        if max(fx, fy) > MAX_FOCAL_ASPECT * min(fx, fy):
            reasons.append(f"fx {fx:.1f} and fy {fy:.1f} px ({max(fx, fy) / max(min(fx, fy), 1e-9):.1f}x apart)")
        extra = [float(cam.params[i]) for i in cam.extra_params_idxs()]
        if any(abs(k) > MAX_DISTORTION for k in extra):
            reasons.append(f"distortion {', '.join(f'{k:.3g}' for k in extra)} (beyond +-{MAX_DISTORTION:g})")
        if reasons:
            out.append(f"camera {cam.camera_id} has {' and '.join(reasons)}; the model is probably degenerate: "
                       f"add photos with more sideways motion or try --camera_model SIMPLE_RADIAL")
    return out


@dataclass(frozen=True)
class SfmResult:
    """What a reconstruction achieved: counts are those of the kept (largest) model."""

    output: Path
    images: int
    registered: int
    points: int
    mean_reprojection_error: float
    matcher: str = ""
    models: int = 1
    unregistered: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the user: ``registered/total``, points, error, and how many models there were."""
        line = (f"registered {self.registered}/{self.images} images, {self.points} points, "
                f"mean reprojection error {self.mean_reprojection_error:.3f} px")
        if self.models > 1:
            line += f"; {self.models} separate models were reconstructed, the largest was kept"
        return line


class MappingProgress:
    """Turns pycolmap's argument-less mapping callbacks into a registered count.

    pycolmap calls ``initial_pair`` when a new model starts from two images and
    ``next_image`` for each further image it registers into that model. Models
    that stay small are discarded, and only one is kept, so the count reported is
    that of the largest model so far, not the sum over models.
    """

    def __init__(self, on_registered: Callable[[int], None] | None = None,
                 on_model: Callable[[int], None] | None = None) -> None:
        self.on_registered = on_registered
        self.on_model = on_model
        self.models = 0
        self.current = 0
        self.largest = 0

    def initial_pair(self) -> None:
        self.models += 1
        self.current = 2
        if self.on_model is not None:
            self.on_model(self.models)
        self._report()

    def next_image(self) -> None:
        self.current += 1
        self._report()

    def _report(self) -> None:
        if self.current > self.largest:
            self.largest = self.current
            if self.on_registered is not None:
                self.on_registered(self.largest)


def run_sfm(
    images_dir: str | Path,
    output: str | Path,
    matcher: str = "auto",
    camera_model: str = "OPENCV",
    single_camera: bool = True,
    max_image_size: int = 1600,
    overwrite: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_registered: Callable[[int], None] | None = None,
) -> SfmResult:
    """Reconstruct camera poses and sparse points for the photos in ``images_dir``.

    Args:
        images_dir: Folder of photos.
        output: New scene folder (``images/``, ``database.db``, ``sparse/0``).
        matcher: ``"auto"`` (exhaustive up to :data:`EXHAUSTIVE_MAX_IMAGES` photos, else
            sequential), ``"sequential"`` (ordered captures; also tries loop closures) or ``"exhaustive"``.
        camera_model: COLMAP camera model to estimate.
        single_camera: One shared camera for all photos (one device, one zoom).
        max_image_size: SIFT runs on photos downscaled to this longest side.
        overwrite: Start again when ``output`` already holds a reconstruction.
        on_stage: Called with each stage's name, for progress display.
        on_registered: Called with the registered count of the largest model so far while
            mapping, then once with the kept model's count.
    """
    import pycolmap

    photos = list_images(Path(images_dir))
    chosen, why = choose_matcher(matcher, len(photos))
    if len(photos) < 2:
        raise SceneError(f"{images_dir} holds {len(photos)} photo(s); structure from motion needs at least 2")
    output = Path(output)
    model_dir = output / "sparse" / "0"
    if model_dir.is_dir() and not overwrite:
        raise SceneError(f"{output} already holds a reconstruction; pass --overwrite to redo it")
    database = output / "database.db"
    database.unlink(missing_ok=True)
    image_dir = output / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for p in photos:
        if not (image_dir / p.name).exists():
            shutil.copy2(p, image_dir / p.name)

    stage = on_stage or (lambda name: logger.info("sfm: %s", name))
    stage("features")
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    extraction = pycolmap.FeatureExtractionOptions()
    # pycolmap 4 keeps the size limit on the extraction options, 3.x on the SIFT options
    (extraction if hasattr(extraction, "max_image_size") else extraction.sift).max_image_size = max_image_size
    pycolmap.extract_features(
        database, image_dir, image_names=[p.name for p in photos],
        camera_mode=pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.AUTO,
        reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu,
    )
    logger.info("sfm: %s matching, %s", chosen, why)
    stage(f"matching ({chosen})")
    if chosen == "sequential":
        pycolmap.match_sequential(database, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
    stage("mapping")
    sparse = output / "sparse"
    shutil.rmtree(sparse, ignore_errors=True)
    progress = MappingProgress(on_registered, on_model=lambda k: stage(f"mapping (model {k})"))
    options = pycolmap.IncrementalPipelineOptions()
    options.mapper.abs_pose_min_num_inliers = ABS_POSE_MIN_NUM_INLIERS
    models = pycolmap.incremental_mapping(database, image_dir, sparse, options=options,
                                          initial_image_pair_callback=progress.initial_pair,
                                          next_image_callback=progress.next_image)
    if not models:
        raise SceneError(
            f"structure from motion registered no images of {images_dir}: the photos may overlap too little "
            f"or lack texture; try more photos" + ("" if chosen == "exhaustive" else " or --matcher exhaustive")
        )
    result = keep_largest_model(models, output, [p.name for p in photos], matcher=chosen)
    for warning in camera_warnings(_largest(models)):
        logger.warning("sfm: %s", warning)
    if on_registered is not None:
        on_registered(result.registered)
    if result.models > 1:
        sizes = sorted((m.num_reg_images() for m in models.values()), reverse=True)
        logger.info("sfm: %d separate models were reconstructed (%s registered images); kept the largest",
                    result.models, ", ".join(map(str, sizes)))
    if result.registered < len(photos):
        shown = ", ".join(result.unregistered[:5]) + (", ..." if len(result.unregistered) > 5 else "")
        logger.warning("sfm registered %d/%d photos; %d are left out of the scene (%s)",
                       result.registered, len(photos), len(result.unregistered), shown)
    return result


def keep_largest_model(models: dict, output: Path, photos: list[str], matcher: str = "") -> SfmResult:
    """Write the model with the most registered images as ``output/sparse/0``; drop the others.

    Args:
        models: pycolmap reconstructions by id, as ``incremental_mapping`` returns them (it has
            also written each as ``output/sparse/<id>``).
        output: The scene folder.
        photos: Names of all photos given to SfM, to list the unregistered ones.
        matcher: The matcher that ran, for the result.
    """
    output = Path(output)
    best = _largest(models)
    tmp = output / "sparse_best"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    best.write_binary(str(tmp))
    sparse = output / "sparse"
    shutil.rmtree(sparse, ignore_errors=True)
    sparse.mkdir()
    tmp.rename(sparse / "0")
    registered = {best.images[i].name for i in best.reg_image_ids()}
    return SfmResult(
        output=output, images=len(photos), registered=len(registered), points=best.num_points3D(),
        mean_reprojection_error=float(best.compute_mean_reprojection_error()), matcher=matcher,
        models=len(models), unregistered=tuple(n for n in photos if n not in registered),
    )


def _largest(models: dict):
    return max(models.values(), key=lambda m: m.num_reg_images())
