"""A procedural scene: textured shapes on a textured floor, seen from a ring of cameras.

Deterministic from a seed, ray-cast in numpy, written as ``images/*.png`` +
``transforms.json`` like any captured scene. It is the embedded default of the
offline demo and the scene most tests build, because its ground truth is exact
and it needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import Camera, look_at
from .errors import SceneError
from .images import load_rgb, save_rgb
from .nerf import write_transforms
from .loading import load_scene
from .scene import PointCloud, Scene

LIGHT = np.array([0.4, -0.3, 0.87]) / np.linalg.norm([0.4, -0.3, 0.87])


@dataclass(frozen=True)
class _Sphere:
    center: np.ndarray
    radius: float
    colors: np.ndarray  # [2, 3] stripe colours
    freq: float


@dataclass(frozen=True)
class _Box:
    lo: np.ndarray
    hi: np.ndarray
    colors: np.ndarray  # [2, 3] checker colours
    cell: float


def _layout(rng: np.random.Generator) -> tuple[list[_Sphere], list[_Box]]:
    palette = rng.uniform(0.1, 0.95, size=(8, 3))
    spheres = [
        _Sphere(np.array([0.0, 0.0, 0.8]), 0.8, palette[0:2], 6.0 + rng.uniform(0, 3)),
        _Sphere(np.array([-1.3, 1.1, 0.45]), 0.45, palette[2:4], 10.0),
    ]
    c = np.array([1.4, -0.9, 0.0]) + [rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), 0.0]
    boxes = [_Box(c + [-0.4, -0.4, 0.0], c + [0.4, 0.4, 0.8], palette[4:6], 0.2)]
    return spheres, boxes


def _hit_spheres(o, d, spheres):
    t_best = np.full(d.shape[0], np.inf)
    idx = np.full(d.shape[0], -1)
    for i, s in enumerate(spheres):
        oc = o - s.center
        b = np.sum(oc * d, axis=1)
        disc = b * b - (np.sum(oc * oc, axis=1) - s.radius**2)
        t = -b - np.sqrt(np.maximum(disc, 0.0))
        ok = (disc > 0) & (t > 1e-4) & (t < t_best)
        t_best[ok], idx[ok] = t[ok], i
    return t_best, idx


def _hit_boxes(o, d, boxes):
    t_best = np.full(d.shape[0], np.inf)
    idx = np.full(d.shape[0], -1)
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    for i, b in enumerate(boxes):
        t0, t1 = (b.lo - o) * inv, (b.hi - o) * inv
        tmin = np.max(np.minimum(t0, t1), axis=1)
        tmax = np.min(np.maximum(t0, t1), axis=1)
        ok = (tmax >= tmin) & (tmin > 1e-4) & (tmin < t_best)
        t_best[ok], idx[ok] = tmin[ok], i
    return t_best, idx


def _hit_floor(o: np.ndarray, d: np.ndarray) -> np.ndarray:  # [N, 3] x2 -> [N] distance, inf for a miss
    down = d[:, 2] < -1e-6
    t = np.where(down, -o[:, 2] / np.where(down, d[:, 2], -1.0), np.inf)
    p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    return np.where((np.abs(p[:, 0]) < 3.5) & (np.abs(p[:, 1]) < 3.5), t, np.inf)


def _first_hit(o: np.ndarray, d: np.ndarray, spheres, boxes):
    """Distance ``[N]`` (inf: sky) to the nearest surface, which kind (0 floor, 1 sphere, 2 box) and
    the index of the sphere and box hit."""
    t_sph, i_sph = _hit_spheres(o, d, spheres)
    t_box, i_box = _hit_boxes(o, d, boxes)
    t_all = np.stack([_hit_floor(o, d), t_sph, t_box])
    return np.min(t_all, axis=0), np.argmin(t_all, axis=0), i_sph, i_box


def render_synthetic(camera: Camera, seed: int = 0) -> np.ndarray:
    """``[H, W, 3]`` float image in [0, 1] of the procedural scene seen by ``camera``."""
    spheres, boxes = _layout(np.random.default_rng(seed))
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    dirs_cam = np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u)], -1).reshape(-1, 3)
    d = dirs_cam @ camera.camtoworld[:3, :3].T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(camera.center, d.shape)

    # sky: a vertical gradient
    color = (0.55 + 0.35 * d[:, 2:3]) * np.array([0.55, 0.7, 0.95])
    t, which, i_sph, i_box = _first_hit(o, d, spheres, boxes)
    hit = np.isfinite(t)
    p = o + np.where(hit, t, 0.0)[:, None] * d

    floor = hit & (which == 0)
    checker = ((np.floor(p[:, 0] * 2) + np.floor(p[:, 1] * 2)) % 2)[:, None]
    color[floor] = (0.35 + 0.4 * checker[floor]) * np.array([0.9, 0.85, 0.7])

    for i, s in enumerate(spheres):
        m = hit & (which == 1) & (i_sph == i)
        n = (p[m] - s.center) / s.radius
        stripe = (np.sin(s.freq * np.arctan2(n[:, 1], n[:, 0]) + 4 * n[:, 2]) > 0)[:, None]
        shade = 0.35 + 0.65 * np.clip(n @ LIGHT, 0, 1)[:, None]
        color[m] = np.where(stripe, s.colors[0], s.colors[1]) * shade
    for i, b in enumerate(boxes):
        m = hit & (which == 2) & (i_box == i)
        q = p[m]
        centre, half = (b.lo + b.hi) / 2, (b.hi - b.lo) / 2
        rel = (q - centre) / half
        axis = np.argmax(np.abs(rel), axis=1)
        n = np.zeros_like(q)
        n[np.arange(len(q)), axis] = np.sign(rel[np.arange(len(q)), axis])
        cells = np.floor((q - 1e-6 * n) / b.cell).sum(axis=1) % 2  # step inside: faces sit on cell edges
        shade = 0.35 + 0.65 * np.clip(n @ LIGHT, 0, 1)[:, None]
        color[m] = np.where(cells[:, None] > 0, b.colors[0], b.colors[1]) * shade
    return np.clip(color, 0.0, 1.0).reshape(camera.height, camera.width, 3)


def ring_of_cameras(n: int, width: int, height: int, radius: float = 4.5, seed: int = 0,
                    folder: Path = Path("images")) -> list[Camera]:
    """``n`` cameras on a slightly wavy ring, all looking at the scene's centre."""
    rng = np.random.default_rng(seed + 1)
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + rng.uniform(-0.05, 0.05)
        center = [radius * np.cos(a), radius * np.sin(a), 1.6 + 0.4 * np.sin(2 * a)]
        path = Path(folder) / f"{i:04d}.png"
        f = 0.9 * width
        cams.append(Camera(path.name, path, width, height, f, f, width / 2, height / 2,
                           look_at(center, [0.0, 0.0, 0.5])))
    return cams


def synthetic_points(cameras: list[Camera], seed: int, count: int, draw: int = 0) -> PointCloud:
    """``count`` surface points of the procedural scene of layout ``seed``, as structure from motion
    would give for the photos of ``cameras``: rays through random pixels (drawn from ``draw``)
    intersected with the geometry, coloured by the pixel each ray went through (read from the
    cameras' image files). Only what those cameras see is sampled, so test views can be left out."""
    spheres, boxes = _layout(np.random.default_rng(seed))
    rng = np.random.default_rng([seed, draw])
    images = {cam.name: load_rgb(cam.image_path) for cam in cameras}
    per_view = -(-count // len(cameras))
    xyz, rgb, found = [], [], 0
    for _ in range(16):  # rays into the sky hit nothing: draw again until there are enough
        for cam in cameras:
            u, v = rng.uniform(0, cam.width, per_view), rng.uniform(0, cam.height, per_view)
            d = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u)], -1) @ cam.camtoworld[:3, :3].T
            d /= np.linalg.norm(d, axis=1, keepdims=True)
            o = np.broadcast_to(cam.center, d.shape)
            t = _first_hit(o, d, spheres, boxes)[0]
            hit = np.isfinite(t)
            xyz.append(o[hit] + t[hit, None] * d[hit])
            rgb.append(images[cam.name][v[hit].astype(int), u[hit].astype(int)])
            found += int(hit.sum())
        if found >= count:
            break
    else:
        raise SceneError(f"the {len(cameras)} cameras see too little of the procedural scene for {count} points")
    keep = rng.permutation(found)[:count]
    return PointCloud(xyz=np.concatenate(xyz)[keep], rgb=np.concatenate(rgb)[keep].astype(np.uint8))


def make_synthetic_scene(root: str | Path, n_views: int = 24, width: int = 128, height: int = 96,
                         seed: int = 0) -> Scene:
    """Write the procedural scene to ``root`` (``images/`` + ``transforms.json``) and load it."""
    root = Path(root)
    cams = ring_of_cameras(n_views, width, height, seed=seed, folder=root / "images")
    for cam in cams:
        save_rgb(cam.image_path, render_synthetic(cam, seed))
    write_transforms(cams, root / "transforms.json")
    return load_scene(root)
