"""Photos without poses -> a COLMAP model, through pycolmap.

SIFT features, sequential (ordered captures, the default) or exhaustive
matching, incremental mapping; the model with the most registered images is
kept as ``OUTPUT/sparse/0`` beside a copy of the photos in ``OUTPUT/images``,
so ``OUTPUT`` is a scene every stage reads.
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

MATCHERS = ("sequential", "exhaustive")


@dataclass(frozen=True)
class SfmResult:
    """What a reconstruction achieved."""

    output: Path
    images: int
    registered: int
    points: int
    mean_reprojection_error: float


def run_sfm(
    images_dir: str | Path,
    output: str | Path,
    matcher: str = "sequential",
    camera_model: str = "OPENCV",
    single_camera: bool = True,
    max_image_size: int = 1600,
    overwrite: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_registered: Callable[[], None] | None = None,
) -> SfmResult:
    """Reconstruct camera poses and sparse points for the photos in ``images_dir``.

    Args:
        images_dir: Folder of photos.
        output: New scene folder (``images/``, ``database.db``, ``sparse/0``).
        matcher: ``"sequential"`` (ordered captures; also tries loop closures) or ``"exhaustive"``.
        camera_model: COLMAP camera model to estimate.
        single_camera: One shared camera for all photos (one device, one zoom).
        max_image_size: SIFT runs on photos downscaled to this longest side.
        overwrite: Start again when ``output`` already holds a reconstruction.
        on_stage: Called with each stage's name, for progress display.
        on_registered: Called each time the mapper registers an image.
    """
    import pycolmap

    if matcher not in MATCHERS:
        raise SceneError(f"unknown matcher {matcher!r}; use one of {', '.join(MATCHERS)}")
    photos = list_images(Path(images_dir))
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
    stage(f"matching ({matcher})")
    if matcher == "sequential":
        pycolmap.match_sequential(database, device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
    stage("mapping")
    sparse = output / "sparse"
    shutil.rmtree(sparse, ignore_errors=True)
    models = pycolmap.incremental_mapping(database, image_dir, sparse, next_image_callback=on_registered)
    if not models:
        raise SceneError(
            f"structure from motion registered no images of {images_dir}: the photos may overlap too little "
            f"or lack texture; try --matcher exhaustive or more photos"
        )
    best_id = max(models, key=lambda k: models[k].num_reg_images())
    best = models[best_id]
    # incremental_mapping writes each model as sparse/<id>; keep only the best, as sparse/0.
    tmp = output / "sparse_best"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    best.write_binary(str(tmp))
    shutil.rmtree(sparse)
    sparse.mkdir()
    tmp.rename(model_dir)
    result = SfmResult(output=output, images=len(photos), registered=best.num_reg_images(),
                       points=best.num_points3D(), mean_reprojection_error=float(best.compute_mean_reprojection_error()))
    if result.registered < len(photos):
        logger.warning("sfm registered %d of %d photos; the others are left out of the scene",
                       result.registered, len(photos))
    return result
