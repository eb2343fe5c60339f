"""One frame of the live viewer (``splatent view``), without the server: the browser's camera as a
:class:`splatent_data.Camera`, the frame function (render → enhance → decode) and the scores of a test view.

The browser (viser) reports its camera as ``wxyz``, ``position`` and a vertical field of view: ``wxyz`` rotates
camera to world in OpenCV axes (x right, y down, z the viewing direction), ``position`` is the camera centre,
exactly the project's camera-to-world convention. The frame is rendered at the browser canvas' aspect (the
canvas stretches whatever it is sent), square pixels, principal point at the centre.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from splatent_data import Camera, SplatentError, camera_radius, reference_scores

from .latent_scene import LatentScene, ground_truth_image

MODES = ("decoded", "enhanced", "side by side")
ENHANCED_MODES = MODES[1:]
LATENT_STRIDE = 8  # image pixels per latent pixel, every codec's
MIN_LATENT_SIDE = 8  # the UNet's three downsamplings need a few latent pixels per side


def browser_camera(wxyz, position, fov: float, width: int, height: int, name: str = "viewer") -> Camera:
    """The camera of a ``width x height`` image seen from the browser's pose (``fov``: vertical, radians)."""
    from scipy.spatial.transform import Rotation

    w, x, y, z = (float(v) for v in wxyz)
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    focal = height / (2.0 * math.tan(fov / 2.0))
    return Camera(name=name, image_path=Path(name), width=int(width), height=int(height), fx=focal, fy=focal,
                  cx=width / 2.0, cy=height / 2.0, camtoworld=c2w)


def browser_pose(camera: Camera) -> tuple[np.ndarray, np.ndarray, float]:
    """``(wxyz, position, vertical fov)`` that put the browser's camera where ``camera`` is."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(camera.camtoworld[:3, :3]).as_quat()
    return np.array([w, x, y, z]), camera.center, 2.0 * math.atan(camera.height / (2.0 * camera.fy))


def frame_size(canvas_width: int, canvas_height: int, scale: float = 1.0, max_side: int = 512) -> tuple[int, int]:
    """``(width, height)`` in image pixels of the frame for a browser canvas: the canvas times ``scale``, shrunk
    to fit ``max_side``, in whole latent pixels (multiples of 8, at least 8 latent pixels a side)."""
    w, h = max(1.0, canvas_width * scale), max(1.0, canvas_height * scale)
    shrink = min(1.0, max_side / max(w, h))
    latent_w, latent_h = (max(MIN_LATENT_SIDE, round(v * shrink / LATENT_STRIDE)) for v in (w, h))
    return latent_w * LATENT_STRIDE, latent_h * LATENT_STRIDE


def latent_resolution(camera: Camera) -> Camera:
    """``camera`` (an image camera whose sides are multiples of 8) at its latent size."""
    return camera.scaled(camera.width // LATENT_STRIDE, camera.height // LATENT_STRIDE)


def nearest_view(camera: Camera, candidates: list[Camera]) -> Camera:
    """The candidate nearest ``camera`` by the reference score (camera-centre distance plus viewing angle)."""
    scores = reference_scores(camera, candidates, camera_radius(candidates))
    return candidates[int(np.argmin(scores))]


def matching_view(camera: Camera, candidates: list[Camera], tolerance: float = 1e-3) -> Camera | None:
    """The candidate ``camera`` stands at, if any: centres within ``tolerance`` camera radii and orientations
    within ``tolerance`` radians (a browser camera snapped to a view comes back with rounding noise)."""
    if not candidates:
        return None
    radius = camera_radius(candidates)
    for candidate in candidates:
        if np.linalg.norm(candidate.center - camera.center) > tolerance * radius:
            continue
        relative = candidate.camtoworld[:3, :3].T @ camera.camtoworld[:3, :3]
        angle = math.acos(max(-1.0, min(1.0, (float(np.trace(relative)) - 1.0) / 2.0)))
        if angle <= tolerance:
            return candidate
    return None


@dataclass
class ViewFrame:
    """A drawn frame: ``image`` ``[H, W, 3]`` uint8, how long each step took (seconds) and the references used."""

    image: np.ndarray
    mode: str
    seconds: dict[str, float] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def render_frame(scene: LatentScene, camera: Camera, mode: str = "decoded", top_k: int | None = None) -> ViewFrame:
    """The viewer's frame of ``camera`` (a latent-resolution camera, :func:`latent_resolution`).

    ``mode``: ``decoded`` (the render's latents through the codec's decoder), ``enhanced`` (through the enhancer
    first, with the ``top_k`` nearest training views as references; default: the enhancer's own ``top_k``) or
    ``side by side`` (the centre half of the decoded frame beside the centre half of the enhanced one: both at
    the canvas' scale, one enhancer pass on the whole view).
    """
    from splatent_model import to_uint8

    if mode not in MODES:
        raise SplatentError(f"unknown view mode {mode!r}; use one of: {', '.join(MODES)}")
    if mode in ENHANCED_MODES and scene.enhancer is None:
        raise SplatentError(f"the {mode} view needs an enhancer; pass --enhancer CKPT")
    device = scene.device
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    rendered = scene.render(camera)
    _sync(device)
    seconds["render"] = time.perf_counter() - start
    references: list[str] = []
    latents = [rendered]
    if mode in ENHANCED_MODES:
        t = time.perf_counter()
        references = scene.references(camera, scene.top_k if top_k is None else top_k)
        enhanced = scene.enhance(rendered, references)
        latents = [rendered, enhanced] if mode == "side by side" else [enhanced]
        _sync(device)
        seconds["enhance"] = time.perf_counter() - t
    t = time.perf_counter()
    images = scene.decode(torch.stack(latents))
    if mode == "side by side":
        width = images.shape[-1]
        half = width // 2
        left = (width - half) // 2
        images = torch.cat([images[:1, ..., left:left + half], images[1:, ..., left:left + half]], dim=-1)
    image = to_uint8(images)[0].cpu().numpy()
    seconds["decode"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    return ViewFrame(image=image, mode=mode, seconds=seconds, references=references)


@torch.inference_mode()
def view_scores(scene: LatentScene, stem: str, top_k: int | None = None) -> dict[str, dict[str, float]]:
    """PSNR and SSIM of view ``stem``'s decoded render (and, with an enhancer, of its enhanced render) against
    its photo, rendered at the view's own latent size: the numbers the eval stage reports for a test view."""
    from .evaluate import image_scores

    camera = scene.latent_camera(stem)
    rendered = scene.render(camera)
    latents, kinds = [rendered], ["decoded"]
    if scene.enhancer is not None:
        references = scene.references(camera, scene.top_k if top_k is None else top_k)
        latents.append(scene.enhance(rendered, references))
        kinds.append("enhanced")
    images = scene.decode(torch.stack(latents))
    truth = ground_truth_image(scene.cameras[stem], images.shape[-2], images.shape[-1], images.device)
    return {kind: image_scores(image, truth) for kind, image in zip(kinds, images)}
