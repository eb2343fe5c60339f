"""``FeatureGaussians``: 3D Gaussians whose colour is an N-channel feature.

Parameters live in a ``ParameterDict`` under gsplat's names, so gsplat's
densification strategies edit them in place:

* ``means [N, 3]``, ``quats [N, 4]`` (wxyz), ``scales [N, 3]`` (log), ``opacities [N]`` (logit);
* ``feat0 [N, 1, D]`` and, with SH degree > 0, ``featN [N, K - 1, D]``: the
  feature (latents, D = 4, or RGB, D = 3) as SH coefficients;
* optionally ``rgb0 [N, 1, 3]`` / ``rgbN``: an RGB head for joint RGB supervision.

Latent features are stored standardised, ``latent = mean + scale * feature``,
with ``scale`` = 4 x the per-channel standard deviation of the scene's latents:
features then span roughly the range RGB values do in 3DGS, so 3DGS's learning
rates and densification thresholds apply unchanged, and an empty pixel renders
as the scene's mean latent. RGB features use gsplat's ``clamp(SH + 0.5, 0)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splatent_data import Camera, SplatentError

from .cameras import camera_tensors
from .backends import camera_positions, rasterize, resolve_backend
from .sh import SH_C0, eval_sh, num_sh_bases, rgb_to_sh

FEATURE_KINDS = ("latent", "rgb")
GEOMETRY = ("means", "quats", "scales", "opacities")
LATENT_SCALE_STDS = 4.0


class FeatureGaussians(torch.nn.Module):
    """3D Gaussians with ``feature_dim``-channel, optionally view-dependent, features.

    Args:
        params: Raw parameters (see module doc); ``featN``/``rgbN`` only with SH degree > 0.
        feature_kind: ``"latent"`` (standardised, no activation) or ``"rgb"``.
        sh_degree: Degree of the feature SH (0-3).
        rgb_sh_degree: Degree of the RGB head, or ``None`` without one.
        feature_mean, feature_scale: ``[D]`` standardisation of latent features.
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        feature_kind: str = "latent",
        sh_degree: int = 0,
        rgb_sh_degree: int | None = None,
        feature_mean: Tensor | None = None,
        feature_scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        if feature_kind not in FEATURE_KINDS:
            raise SplatentError(f"feature kind must be one of {', '.join(FEATURE_KINDS)}, got {feature_kind!r}")
        num_sh_bases(sh_degree)
        if rgb_sh_degree is not None:
            num_sh_bases(rgb_sh_degree)
        self.feature_kind = feature_kind
        self.sh_degree = sh_degree
        self.rgb_sh_degree = rgb_sh_degree
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone()) for k, v in params.items()})
        dim = self.params["feat0"].shape[-1]
        mean = torch.zeros(dim) if feature_mean is None else torch.as_tensor(feature_mean, dtype=torch.float32)
        scale = torch.ones(dim) if feature_scale is None else torch.as_tensor(feature_scale, dtype=torch.float32)
        self.register_buffer("feature_mean", mean.reshape(dim).clone())
        self.register_buffer("feature_scale", scale.reshape(dim).clone())
        self._check()

    def _check(self) -> None:
        n = self.params["means"].shape[0]
        dim = self.feature_dim
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,),
                    "feat0": (n, 1, dim)}
        if self.sh_degree > 0:
            expected["featN"] = (n, num_sh_bases(self.sh_degree) - 1, dim)
        if self.rgb_sh_degree is not None:
            expected["rgb0"] = (n, 1, 3)
            if self.rgb_sh_degree > 0:
                expected["rgbN"] = (n, num_sh_bases(self.rgb_sh_degree) - 1, 3)
        for name, shape in expected.items():
            if name not in self.params or tuple(self.params[name].shape) != shape:
                got = tuple(self.params[name].shape) if name in self.params else "missing"
                raise SplatentError(f"Gaussian parameter {name} should have shape {shape}, got {got}")
        extra = set(self.params) - set(expected)
        if extra:
            raise SplatentError(f"unexpected Gaussian parameters {sorted(extra)}")

    # -- properties ------------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def feature_dim(self) -> int:
        return int(self.params["feat0"].shape[-1])

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    @property
    def has_rgb(self) -> bool:
        """True when the model can render RGB (RGB features or an RGB head)."""
        return self.feature_kind == "rgb" or self.rgb_sh_degree is not None

    def config(self) -> dict:
        """JSON-able description: enough, with the parameters, to rebuild the model."""
        return {
            "feature_kind": self.feature_kind, "feature_dim": self.feature_dim, "sh_degree": self.sh_degree,
            "rgb_sh_degree": self.rgb_sh_degree, "num_gaussians": self.num_gaussians,
            "feature_mean": [float(v) for v in self.feature_mean], "feature_scale": [float(v) for v in self.feature_scale],
        }

    def coefficients(self, head: str = "feat") -> Tensor:
        """``[N, K, D]`` SH coefficients of ``head`` (``"feat"`` or ``"rgb"``)."""
        rest = self.params.get(f"{head}N") if f"{head}N" in self.params else None
        dc = self.params[f"{head}0"]
        return dc if rest is None else torch.cat([dc, rest], dim=1)

    # -- rendering -------------------------------------------------------------------
    def render(
        self,
        viewmats: Tensor,  # [C, 4, 4]
        Ks: Tensor,  # [C, 3, 3]
        width: int,
        height: int,
        channel: str = "feature",
        sh_degree: int | None = None,
        background: Tensor | None = None,  # [D]
        backend: str = "auto",
        standardised: bool = False,
        **options,
    ) -> tuple[Tensor, Tensor, dict]:
        """Render ``[C, H, W, D]`` features (data space: unscaled latents, or RGB) and ``[C, H, W, 1]`` alphas.

        Args:
            channel: ``"feature"`` (the model's feature) or ``"rgb"`` (RGB features or head).
            sh_degree: SH degree to use (progressive training); default: all bands.
            background: Data-space value behind the Gaussians; latents default to
                the scene's mean latent, RGB to black.
            standardised: Latent features as the Gaussians hold them, ``(latent - feature_mean) / feature_scale``
                (what the fit's loss compares), not mapped back to data space.
            options: Passed to :func:`splatent_splat.rasterize` (``packed``, ``rasterize_mode``, ...).
        """
        p = self.params
        means, quats = p["means"], p["quats"]
        scales, opacities = torch.exp(p["scales"]), torch.sigmoid(p["opacities"])
        num_cams = viewmats.shape[0]
        if channel == "rgb" or (channel == "feature" and self.feature_kind == "rgb"):
            head = "rgb" if channel == "rgb" and self.feature_kind == "latent" else "feat"
            if head == "rgb" and self.rgb_sh_degree is None:
                raise SplatentError("this model has no RGB head; fit it with --rgb-weight > 0 to render RGB")
            max_degree = self.rgb_sh_degree if head == "rgb" else self.sh_degree
            degree = max_degree if sh_degree is None else min(sh_degree, max_degree)
            bg = None if background is None else background.reshape(1, 3).expand(num_cams, 3).to(means)
            return rasterize(means, quats, scales, opacities, self.coefficients(head), viewmats, Ks, width, height,
                             sh_degree=degree, backgrounds=bg, backend=backend, **options)
        if channel != "feature":
            raise ValueError(f"channel must be 'feature' or 'rgb', got {channel!r}")
        degree = self.sh_degree if sh_degree is None else min(sh_degree, self.sh_degree)
        coeffs = self.coefficients("feat")
        if degree == 0:
            colors = eval_sh(0, None, coeffs)  # [N, D]
        else:
            dirs = means[None] - camera_positions(viewmats)[:, None]
            colors = eval_sh(degree, dirs, coeffs, backend=resolve_backend(backend, means.device))  # [C, N, D]
        bg = None
        if background is not None:
            bg = ((background.to(means) - self.feature_mean) / self.feature_scale).reshape(1, -1).expand(num_cams, -1)
        image, alpha, meta = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                                       backgrounds=bg, backend=backend, **options)
        if standardised:
            return image, alpha, meta
        return image * self.feature_scale + self.feature_mean, alpha, meta

    @torch.no_grad()
    def render_cameras(
        self, cameras: list[Camera], channel: str = "feature", backend: str = "auto", **options,
    ) -> list[Tensor]:
        """Render each camera at its own size: a list of ``[D, H, W]`` tensors (no gradients)."""
        out = []
        for cam in cameras:
            viewmats, ks = camera_tensors([cam], self.device)
            image, _, _ = self.render(viewmats, ks, cam.width, cam.height, channel=channel, backend=backend, **options)
            out.append(image[0].permute(2, 0, 1).contiguous())
        return out

    # -- construction ----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        xyz: Tensor,  # [N, 3]
        features: Tensor,  # [N, D] data space
        feature_kind: str = "latent",
        sh_degree: int = 0,
        rgb: Tensor | None = None,  # [N, 3] in [0, 1], for an RGB head
        rgb_sh_degree: int | None = None,
        feature_mean: Tensor | None = None,
        feature_scale: Tensor | None = None,
        init_opacity: float = 0.1,
        init_scale: float = 1.0,
    ) -> "FeatureGaussians":
        """Isotropic Gaussians at ``xyz`` sized by the mean distance to their 3 nearest
        neighbours (as 3DGS), opacity ``init_opacity``, identity rotations, and
        SH DC set from ``features`` (higher bands zero)."""
        xyz = torch.as_tensor(xyz, dtype=torch.float32)
        n = xyz.shape[0]
        if n == 0:
            raise SplatentError("cannot initialise Gaussians from an empty point set")
        features = torch.as_tensor(features, dtype=torch.float32, device=xyz.device)
        dim = features.shape[-1]
        if feature_kind == "latent":
            mean = torch.zeros(dim) if feature_mean is None else torch.as_tensor(feature_mean, dtype=torch.float32)
            scale = torch.ones(dim) if feature_scale is None else torch.as_tensor(feature_scale, dtype=torch.float32)
            dc = (features - mean.to(xyz)) / scale.to(xyz) / SH_C0
        else:
            mean = scale = None
            dc = rgb_to_sh(features.clamp(0.0, 1.0))
        dist = nearest_neighbour_distance(xyz, k=3).clamp(min=1e-7)
        params = {
            "means": xyz,
            "quats": torch.tensor([1.0, 0.0, 0.0, 0.0], device=xyz.device).repeat(n, 1),
            "scales": torch.log(dist * init_scale)[:, None].repeat(1, 3),
            "opacities": torch.full((n,), math.log(init_opacity / (1.0 - init_opacity)), device=xyz.device),
            "feat0": dc[:, None, :],
        }
        if sh_degree > 0:
            params["featN"] = torch.zeros(n, num_sh_bases(sh_degree) - 1, dim, device=xyz.device)
        if rgb_sh_degree is not None:
            base = torch.full((n, 3), 0.5, device=xyz.device) if rgb is None else torch.as_tensor(rgb).to(xyz)
            params["rgb0"] = rgb_to_sh(base.clamp(0.0, 1.0))[:, None, :]
            if rgb_sh_degree > 0:
                params["rgbN"] = torch.zeros(n, num_sh_bases(rgb_sh_degree) - 1, 3, device=xyz.device)
        return cls(params, feature_kind=feature_kind, sh_degree=sh_degree, rgb_sh_degree=rgb_sh_degree,
                   feature_mean=mean, feature_scale=scale).to(xyz.device)


def nearest_neighbour_distance(xyz: Tensor, k: int = 3) -> Tensor:
    """``[N]`` mean distance of each point to its ``k`` nearest other points, on ``xyz``'s device.

    scipy's k-d tree on the CPU (all cores): 100 000 points in well under a second, where the all-pairs
    distances it replaced took about 90 s; the initialisation scale of 3DGS (``distCUDA2``) up to its square.
    """
    from scipy.spatial import cKDTree

    n = xyz.shape[0]
    if n <= 1:
        return torch.ones(n, device=xyz.device)
    k = min(k, n - 1)
    points = xyz.detach().to("cpu", torch.float64).numpy()
    distances, _ = cKDTree(points).query(points, k=k + 1, workers=-1)  # the first is the point itself (0)
    return torch.from_numpy(distances[:, 1:].mean(axis=1)).to(device=xyz.device, dtype=xyz.dtype)


def kept_pixels(images: list[Tensor], masks: list[Tensor | None] | None = None) -> Tensor:  # [D, K]
    """Every pixel of ``images`` (each ``[D, h, w]``) that its mask (``[1, h, w]``, or ``None``: all) keeps."""
    masks = masks or [None] * len(images)
    return torch.cat([im.reshape(im.shape[0], -1) if m is None else im.reshape(im.shape[0], -1)[:, m.reshape(-1) > 0]
                      for im, m in zip(images, masks)], dim=1)


def standardisation(latents: list[Tensor], masks: list[Tensor | None] | None = None) -> tuple[Tensor, Tensor]:
    """``(mean [D], scale [D])`` for latent features: per-channel mean and 4 x std over all (kept) pixels."""
    flat = kept_pixels(latents, masks)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1).clamp(min=1e-6)
    return mean, LATENT_SCALE_STDS * std


def features_from_views(
    xyz: Tensor,  # [N, 3]
    cameras: list[Camera],
    images: list[Tensor],  # each [D, h, w] at its camera's size
    max_views: int = 16,
    masks: list[Tensor | None] | None = None,  # each [1, h, w] or None
) -> Tensor:
    """``[N, D]``: each point's feature averaged over the views it projects into.

    Bilinear samples of the target maps (latents or RGB) at the point's projection
    in up to ``max_views`` evenly chosen views, ignoring occlusion; points seen
    by no view get the mean over all pixels. A cheap, good start for SH DC. A view's
    mask takes the pixels it leaves out away from the average (and from the fallback).
    """
    dim = images[0].shape[0]
    pick = np.unique(np.linspace(0, len(cameras) - 1, min(max_views, len(cameras))).round().astype(int))
    total = torch.zeros(xyz.shape[0], dim, device=xyz.device)
    count = torch.zeros(xyz.shape[0], 1, device=xyz.device)
    for i in pick:
        cam, image = cameras[i], images[i].to(xyz.device, torch.float32)
        viewmats, ks = camera_tensors([cam], xyz.device)
        pc = xyz @ viewmats[0, :3, :3].T + viewmats[0, :3, 3]
        z = pc[:, 2].clamp(min=1e-6)
        u = (ks[0, 0, 0] * pc[:, 0] / z + ks[0, 0, 2]) / cam.width * 2 - 1
        v = (ks[0, 1, 1] * pc[:, 1] / z + ks[0, 1, 2]) / cam.height * 2 - 1
        seen = (pc[:, 2] > 1e-6) & (u.abs() <= 1) & (v.abs() <= 1)
        grid = torch.stack([u, v], dim=-1)[None, :, None, :]
        sampled = F.grid_sample(image[None], grid, mode="bilinear", align_corners=False)[0, :, :, 0].T
        mask = masks[i] if masks else None
        if mask is not None:  # every bilinear tap kept, or the sample mixes in a left-out pixel
            taps = F.grid_sample(mask[None].to(xyz.device, torch.float32), grid, mode="bilinear", align_corners=False)
            seen &= taps[0, 0, :, 0] > 0.999
        total += sampled * seen[:, None]
        count += seen[:, None]
    fallback = kept_pixels(images, masks).mean(dim=1).to(xyz.device)
    return torch.where(count > 0, total / count.clamp(min=1), fallback)


def random_points_in_frustums(
    cameras: list[Camera],
    num_points: int,
    min_views: int = 2,
    generator: torch.Generator | None = None,
    depth_range: tuple[float, float] | None = None,
) -> Tensor:
    """``[num_points, 3]`` uniform points in the bounding box of the cameras' frustums,
    kept only where at least ``min_views`` cameras see them.

    The frustums span ``depth_range`` (``(near, far)`` along each camera's axis) when
    the scene knows it (LLFF's bounds); otherwise they are cut at a far depth of twice
    the median distance from the cameras to the point nearest all optical axes (the
    object the capture circles), or, for outward-looking and forward-facing captures
    (whose axes meet nowhere ahead), twice the cameras' spread, and start at 2% of it.
    """
    centres = np.stack([c.center for c in cameras])
    forwards = np.stack([c.forward for c in cameras])
    proj = np.eye(3)[None] - forwards[:, :, None] * forwards[:, None, :]
    focus = np.linalg.lstsq(proj.sum(0), np.einsum("cij,cj->i", proj, centres), rcond=None)[0]
    ahead = np.einsum("ci,ci->c", focus[None] - centres, forwards) > 0
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) or 1.0
    if depth_range is not None:
        near, far = float(depth_range[0]), float(depth_range[1])
        if not 0.0 < near < far:
            raise SplatentError(f"depth range must be 0 < near < far, got {depth_range}")
    else:
        if ahead.mean() >= 0.5:
            far = 2.0 * float(np.median(np.linalg.norm(centres - focus, axis=1)))
        else:
            far = 2.0 * spread
        near = 0.02 * far
    corners = []
    for cam in cameras:
        for depth in (near, far):
            for px, py in ((0, 0), (cam.width, 0), (0, cam.height), (cam.width, cam.height)):
                ray = np.array([(px - cam.cx) / cam.fx, (py - cam.cy) / cam.fy, 1.0]) * depth
                corners.append(cam.camtoworld[:3, :3] @ ray + cam.camtoworld[:3, 3])
    corners = np.stack(corners)
    lo = torch.tensor(corners.min(0), dtype=torch.float32)
    hi = torch.tensor(corners.max(0), dtype=torch.float32)
    viewmats, ks = camera_tensors(cameras)
    sizes = torch.tensor([[c.width, c.height] for c in cameras], dtype=torch.float32)
    need = min(min_views, len(cameras))
    kept: list[Tensor] = []
    found = 0
    for _ in range(200):
        cand = lo + (hi - lo) * torch.rand(max(4 * num_points, 1024), 3, generator=generator)
        seen = torch.zeros(len(cand), dtype=torch.int32)
        for c in range(len(cameras)):
            pc = cand @ viewmats[c, :3, :3].T + viewmats[c, :3, 3]
            z = pc[:, 2]
            uv = pc[:, :2] / z.clamp(min=1e-6)[:, None] @ ks[c, :2, :2].T + ks[c, :2, 2]
            seen += ((z > near) & (z < far) & (uv >= 0).all(-1) & (uv < sizes[c]).all(-1)).int()
        good = cand[seen >= need]
        kept.append(good)
        found += len(good)
        if found >= num_points:
            break
    points = torch.cat(kept)[:num_points]
    if len(points) == 0:
        raise SplatentError("no point in the cameras' frustums is seen by two cameras; check the poses")
    return points
