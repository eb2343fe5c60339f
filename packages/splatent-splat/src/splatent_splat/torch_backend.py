"""A pure-PyTorch 3D Gaussian rasteriser with gsplat's conventions, for CPUs.

gsplat's own ``_torch_impl`` needs its CUDA extension for tile intersection, so
this module is self-contained. It follows gsplat 1.5 (``fully_fused_projection``
+ ``rasterize_to_pixels``) step by step, so that both backends render the same
image from the same Gaussians:

* ``viewmats`` are world-to-camera ``[C, 4, 4]`` (OpenCV axes), ``Ks`` are
  ``[C, 3, 3]``; pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``.
* EWA splatting: ``cov2d = J W Σ Wᵀ Jᵀ`` with gsplat's clamped Jacobian, plus
  ``eps2d`` (0.3) on the diagonal as a low-pass filter; ``antialiased`` mode
  multiplies opacity by ``sqrt(det(cov2d) / det(cov2d + eps2d I))``.
* Culling as in gsplat: depth outside ``[near, far]``, non-positive determinant,
  opacity below 1/255, or an opacity-aware 3-sigma box outside the image.
* ``alpha = min(0.999, opacity * exp(-0.5 dᵀ Σ⁻¹ d))``; contributions with
  ``alpha < 1/255`` are skipped; front-to-back compositing (sorted by camera
  depth) stops *before* the Gaussian that would bring transmittance to 1e-4.

Instead of tiles it enumerates the (Gaussian, pixel) pairs inside each
Gaussian's 1/255 iso-ellipse (row by row), sorts them by pixel then depth, and composites every pixel's run with a
segmented cumulative sum of ``log(1 - alpha)`` (float64). Gaussians go in
depth chunks, and pixels whose transmittance has stopped leave the later
chunks, which bounds the work as gsplat's early exit does. Everything is plain
autograd, so gradients reach means, quaternions, scales, opacities and colours.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
TRANSMITTANCE_STOP = 1e-4
EXTEND_MAX = 3.33


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """``[..., 4]`` quaternions (w, x, y, z; normalised here) to ``[..., 3, 3]`` rotations."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1)
    return rot.reshape(quats.shape[:-1] + (3, 3))


def quat_scale_to_covar(quats: Tensor, scales: Tensor) -> Tensor:
    """``Σ = R S Sᵀ Rᵀ`` from ``[..., 4]`` quaternions and ``[..., 3]`` (activated) scales."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> dict[str, Tensor]:
    """Project 3D Gaussians into ``C`` pinhole cameras (gsplat's fully fused projection).

    Returns a dict of per-camera tensors: ``means2d [C, N, 2]``, ``conics [C, N, 3]``
    (upper triangle of the inverse blurred 2D covariance), ``depths [C, N]``,
    ``radii [C, N, 2]`` (int32, 0 for culled Gaussians) and ``opacities [C, N]``
    (times the antialiasing compensation when ``antialiased``).
    """
    rot, trans = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", rot, means) + trans[:, None, :]  # [C, N, 3]
    covars_c = torch.einsum("cij,njk,clk->cnil", rot, covars, rot)  # [C, N, 3, 3]
    x, y, z = means_c.unbind(-1)
    in_depth = (z >= near_plane) & (z <= far_plane)
    # Culled Gaussians still flow through autograd (with zero weight); keep their
    # arithmetic finite so that 0 * inf never turns a gradient into NaN.
    z = torch.where(in_depth, z, torch.ones_like(z))

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    tx = z * torch.minimum(torch.maximum(x / z, -lim_x_neg), lim_x_pos)
    ty = z * torch.minimum(torch.maximum(y / z, -lim_y_neg), lim_y_pos)
    zeros = torch.zeros_like(z)
    jac = torch.stack([fx / z, zeros, -fx * tx / (z * z), zeros, fy / z, -fy * ty / (z * z)], dim=-1)
    jac = jac.reshape(z.shape + (2, 3))
    cov2d = jac @ covars_c @ jac.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # [C, N, 2]

    a, b, c = cov2d[..., 0, 0], 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]), cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    opac = opacities[None, :].expand(z.shape)
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det_safe, min=0.0))

    with torch.no_grad():
        valid = valid & (opac >= ALPHA_THRESHOLD)
        # Opacity-aware box (gsplat, after arXiv:2402.00525 B.2): beyond this
        # Mahalanobis radius alpha is below 1/255 anyway.
        extend = torch.clamp(2.0 * torch.log(torch.clamp(opac, min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD), min=0.0)
        extend = torch.clamp(torch.sqrt(extend), max=EXTEND_MAX)
        radius_x = torch.ceil(extend * torch.sqrt(torch.clamp(a, min=0.0)))
        radius_y = torch.ceil(extend * torch.sqrt(torch.clamp(c, min=0.0)))
        valid = valid & ~((radius_x <= radius_clip) & (radius_y <= radius_clip))
        mx, my = means2d[..., 0], means2d[..., 1]
        valid = valid & ~((mx + radius_x <= 0) | (mx - radius_x >= width) | (my + radius_y <= 0) | (my - radius_y >= height))
        radii = torch.stack([radius_x, radius_y], dim=-1)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)
    return {"means2d": means2d, "conics": conics, "depths": means_c[..., 2], "radii": radii, "opacities": opac}


def _pairs_in_ellipses(
    means2d: Tensor,  # [G, 2]
    conics: Tensor,  # [G, 3]
    opacities: Tensor,  # [G]
    y0: Tensor,  # [G] first row to scan
    y1: Tensor,  # [G] last row to scan (inclusive)
    width: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """(Gaussian, pixel) pairs where alpha can reach 1/255, grouped by Gaussian.

    Row by row, the pixels whose centres satisfy ``0.5 dᵀ Σ⁻¹ d <= log(255 opacity)``
    form one interval, found from a quadratic in x; a hundredth of a pixel of
    slack keeps rounding on the safe side (the exact alpha test follows).

    Returns ``(gaussian index [M], x [M], y [M])``.
    """
    device = means2d.device
    rows_per = (y1 - y0 + 1).clamp(min=0)
    g_row = torch.repeat_interleave(torch.arange(len(rows_per), device=device), rows_per)
    first = torch.cumsum(rows_per, 0) - rows_per
    y = y0[g_row] + torch.arange(len(g_row), device=device) - first[g_row]
    a, b, c = conics[g_row].unbind(-1)
    dy = y.to(means2d.dtype) + 0.5 - means2d[g_row, 1]
    limit = 2.0 * torch.log(torch.clamp(opacities[g_row] / ALPHA_THRESHOLD, min=1.0))
    disc = (b * dy) ** 2 - a * (c * dy * dy - limit)
    root = torch.sqrt(torch.clamp(disc, min=0.0))
    a_safe = torch.where(a > 0, a, torch.ones_like(a))
    mx = means2d[g_row, 0]
    x0 = torch.ceil(mx + (-b * dy - root) / a_safe - 0.5 - 0.01).clamp(min=0).long()
    x1 = torch.floor(mx + (-b * dy + root) / a_safe - 0.5 + 0.01).clamp(max=width - 1).long()
    cols = torch.where((disc >= 0) & (a > 0), (x1 - x0 + 1).clamp(min=0), torch.zeros_like(x0))
    row = torch.repeat_interleave(torch.arange(len(cols), device=device), cols)
    first = torch.cumsum(cols, 0) - cols
    x = x0[row] + torch.arange(len(row), device=device) - first[row]
    return g_row[row], x, y[row]


def _composite_image(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    depths: Tensor,  # [N]
    radii: Tensor,  # [N, 2]
    width: int,
    height: int,
    chunk_pairs: int,
) -> tuple[Tensor, Tensor]:
    """One camera: ``([H, W, D], [H, W, 1])``.

    Gaussians are composited front to back in depth chunks of about
    ``chunk_pairs`` pairs; pixels that reached the transmittance stop drop out
    of later chunks, as a gsplat tile stops reading its list.
    """
    num_pixels = width * height
    log_t = torch.zeros(num_pixels, dtype=torch.float64, device=means2d.device)
    out = colors.new_zeros(num_pixels, colors.shape[-1])
    done = torch.zeros(num_pixels, dtype=torch.bool, device=means2d.device)
    visible = torch.nonzero((radii > 0).all(dim=-1)).squeeze(-1)
    visible = visible[torch.argsort(depths[visible].detach(), stable=True)]
    with torch.no_grad():
        r = radii[visible].to(means2d.dtype)
        centre = means2d[visible].detach() - 0.5
        # Rows (and, for the chunk sizes, columns) of gsplat's opacity-aware box.
        y0 = torch.ceil(centre[:, 1] - r[:, 1]).clamp(min=0).long()
        y1 = torch.floor(centre[:, 1] + r[:, 1]).clamp(max=height - 1).long()
        x0 = torch.ceil(centre[:, 0] - r[:, 0]).clamp(min=0)
        x1 = torch.floor(centre[:, 0] + r[:, 0]).clamp(max=width - 1)
        area = ((x1 - x0 + 1).clamp(min=0) * (y1 - y0 + 1).clamp(min=0)).long()
        cum = torch.cumsum(area, 0)
        total = int(cum[-1]) if len(cum) else 0
        marks = torch.arange(chunk_pairs, max(total, chunk_pairs), chunk_pairs, device=cum.device)
        bounds = torch.searchsorted(cum, marks, right=True).tolist()
    starts = [0] + sorted({b for b in bounds if 0 < b < len(visible)})
    ends = starts[1:] + [len(visible)]
    log_stop = math.log(TRANSMITTANCE_STOP)
    for lo, hi in zip(starts, ends, strict=True):
        if lo >= hi:
            continue
        ids = visible[lo:hi]
        # One gather per pair (and one scatter in backward) instead of one per attribute.
        packed = torch.cat([means2d[ids], conics[ids], opacities[ids, None], colors[ids]], dim=-1)
        with torch.no_grad():
            gid, px, py = _pairs_in_ellipses(packed[:, 0:2].detach(), packed[:, 2:5].detach(), packed[:, 5].detach(),
                                             y0[lo:hi], y1[lo:hi], width)
            pix = py * width + px
            live = ~done[pix]
            gid, px, py, pix = gid[live], px[live], py[live], pix[live]
            if len(gid) == 0:
                continue
            # Unique keys: sorting them orders pairs by pixel, then front to back.
            order = torch.argsort(pix * len(ids) + gid)
            gid, px, py, pix = gid[order], px[order], py[order], pix[order]
            _, run_lengths = torch.unique_consecutive(pix, return_counts=True)
            run_starts = torch.cumsum(run_lengths, 0) - run_lengths
            first_of_run = torch.repeat_interleave(run_starts, run_lengths)
        pair = packed[gid]
        dx = px.to(pair.dtype) + 0.5 - pair[:, 0]
        dy = py.to(pair.dtype) + 0.5 - pair[:, 1]
        sigma = 0.5 * (pair[:, 2] * dx * dx + pair[:, 4] * dy * dy) + pair[:, 3] * dx * dy
        alpha = torch.clamp(pair[:, 5] * torch.exp(-sigma), max=MAX_ALPHA)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, torch.zeros_like(alpha))
        log_keep = torch.log1p(-alpha.double())
        cum = torch.cumsum(log_keep, 0)
        before = cum - log_keep
        offset = before[first_of_run]
        log_t_before = log_t[pix] + (before - offset)
        with torch.no_grad():
            included = (log_t_before + log_keep) > log_stop
            done[pix[~included & (alpha > 0)]] = True
        weights = alpha * torch.exp(log_t_before).to(alpha.dtype) * included
        out = out.index_add(0, pix, weights[:, None] * pair[:, 6:])
        log_t = log_t.index_add(0, pix, log_keep * included)
    alpha_out = (1.0 - torch.exp(log_t)).to(out.dtype)
    return out.reshape(height, width, -1), alpha_out.reshape(height, width, 1)


def rasterize_torch(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] or [C, N, D]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    backgrounds: Tensor | None = None,  # [C, D]
    rasterize_mode: str = "classic",
    chunk_pairs: int = 1 << 18,
) -> tuple[Tensor, Tensor, dict]:
    """Render ``C`` images of post-activation colours; see the module doc for conventions.

    Returns:
        ``(colors [C, H, W, D], alphas [C, H, W, 1], meta)``; ``meta`` carries the
        projection in gsplat's unpacked layout (``means2d [C, N, 2]``, ``radii [C, N, 2]``,
        ``depths``, ``conics``, ``opacities``) plus ``width``, ``height``,
        ``n_cameras``, ``gaussian_ids=None`` and ``packed=False``, which is what
        gsplat's densification strategies read.
    """
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")
    num_cams = viewmats.shape[0]
    covars = quat_scale_to_covar(quats, scales)
    proj = project_gaussians(
        means, covars, opacities, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
        far_plane=far_plane, radius_clip=radius_clip, antialiased=rasterize_mode == "antialiased",
    )
    images, alphas = [], []
    for c in range(num_cams):
        cam_colors = colors[c] if colors.dim() == 3 else colors
        image, alpha = _composite_image(
            proj["means2d"][c], proj["conics"][c], proj["opacities"][c], cam_colors, proj["depths"][c],
            proj["radii"][c], width, height, chunk_pairs,
        )
        if backgrounds is not None:
            image = image + (1.0 - alpha) * backgrounds[c]
        images.append(image)
        alphas.append(alpha)
    meta = dict(proj, width=width, height=height, n_cameras=num_cams, gaussian_ids=None, packed=False)
    return torch.stack(images), torch.stack(alphas), meta
