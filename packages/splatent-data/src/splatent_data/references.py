"""Camera-aware reference selection: for each target view, its top-k training views.

Score of a candidate ``r`` for a target ``t`` (lower is better)::

    score(t, r) = ||c_t - c_r|| / D  +  w * angle(f_t, f_r)

with ``c`` the camera centres, ``f`` the unit viewing directions, ``angle`` in
radians, ``D`` the mean distance of all cameras' centres to their centroid
(the scene's camera radius, so the score does not depend on the scene's unit)
and ``w`` (``angle_weight``, default 1) trading one radian of rotation for one
camera radius of translation.

Why both terms: two views share content when they are near each other *and*
look the same way. Distance alone picks a neighbour facing elsewhere (a camera
turned around on the spot); angle alone picks a parallel camera across the
room. Ties are broken by name, so the result is deterministic. A target is
never its own reference.
"""

from __future__ import annotations

import logging

import numpy as np

from .camera import Camera
from .errors import SceneError

logger = logging.getLogger("splatent")


def camera_radius(cameras: list[Camera]) -> float:
    """Mean distance of the camera centres to their centroid (1 when they coincide)."""
    centers = np.stack([c.center for c in cameras])
    radius = float(np.linalg.norm(centers - centers.mean(axis=0), axis=1).mean())
    return radius if radius > 1e-12 else 1.0


def reference_scores(target: Camera, candidates: list[Camera], radius: float, angle_weight: float = 1.0) -> np.ndarray:
    """``[len(candidates)]`` scores of each candidate for ``target`` (see module doc)."""
    centers = np.stack([c.center for c in candidates])
    forwards = np.stack([c.forward for c in candidates])
    dist = np.linalg.norm(centers - target.center, axis=1) / radius
    angle = np.arccos(np.clip(forwards @ target.forward, -1.0, 1.0))
    return dist + angle_weight * angle


def select_references(
    targets: list[Camera],
    candidates: list[Camera],
    k: int,
    angle_weight: float = 1.0,
    radius: float | None = None,
) -> dict[str, list[str]]:
    """Top-``k`` candidate stems for each target stem, best first.

    Args:
        targets: Views that need references (rendered test views, say).
        candidates: Views references may come from (training views).
        k: How many references per target (>= 1). With fewer candidates, all are
            used and a warning says so.
        angle_weight: ``w`` in the score.
        radius: ``D`` in the score; defaults to the radius of targets and candidates together.
    """
    if k < 1:
        raise SceneError(f"--top_k must be at least 1, got {k}")
    if not candidates:
        raise SceneError("no training views to take references from; render train_gt/ first")
    radius = radius if radius is not None else camera_radius(list(targets) + list(candidates))
    names = np.array([c.stem for c in candidates])
    out: dict[str, list[str]] = {}
    short: list[int] = []  # how many each short target got
    for target in targets:
        keep = names != target.stem
        scores = reference_scores(target, candidates, radius, angle_weight)[keep]
        order = np.lexsort((names[keep], scores))  # by score, then name
        picked = names[keep][order[:k]].tolist()
        if len(picked) < k:
            short.append(len(picked))
        out[target.stem] = picked
    if short:
        got = f"{min(short)}" if min(short) == max(short) else f"{min(short)}-{max(short)}"
        logger.warning("%d view(s) have fewer than %d candidate references; they get all they have (%s)",
                       len(short), k, got)
    return out
