"""The PyTorch rasteriser against a per-pixel brute-force reference (with gsplat's own
pure-PyTorch projection), finite-difference gradients, and the meta gsplat's strategies read."""


import pytest
import torch

from splatent_splat.torch_backend import (
    ALPHA_THRESHOLD, project_gaussians, quat_scale_to_covar, quat_to_rotmat, rasterize_torch,
)

W, H = 14, 10


def random_gaussians(n=40, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([2.0, 1.6, 1.0])
    quats = torch.randn(n, 4, generator=g)
    scales = 0.05 + 0.25 * torch.rand(n, 3, generator=g)
    opacities = 0.05 + 0.9 * torch.rand(n, generator=g)
    colors = torch.randn(n, 4, generator=g)
    return [t.to(dtype) for t in (means, quats, scales, opacities, colors)]


def cameras(dtype=torch.float32):
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[:, 2, 3] = 3.0
    viewmats[1, :3, :3] = quat_to_rotmat(torch.tensor([0.98, 0.1, -0.15, 0.05]))
    viewmats[1, :3, 3] = torch.tensor([0.2, -0.1, 3.2])
    ks = torch.tensor([[12.0, 0, W / 2 + 0.3], [0, 12.5, H / 2 - 0.2], [0, 0, 1]]).repeat(2, 1, 1)
    return viewmats.to(dtype), ks.to(dtype)


def brute_force(means, quats, scales, opacities, colors, viewmats, ks, antialiased=False, background=None):
    """Per pixel, every Gaussian in depth order: gsplat's alpha, threshold and exclusive stop."""
    from gsplat.cuda._torch_impl import _fully_fused_projection

    covars = quat_scale_to_covar(quats, scales)
    _, means2d, depths, conics, comp = _fully_fused_projection(
        means, covars, viewmats, ks, W, H, calc_compensations=antialiased)
    out = torch.zeros(len(viewmats), H, W, colors.shape[-1], dtype=colors.dtype)
    alphas = torch.zeros(len(viewmats), H, W, 1, dtype=colors.dtype)
    for c in range(len(viewmats)):
        opac = opacities * (comp[c] if antialiased else 1.0)
        order = [int(i) for i in torch.argsort(depths[c]) if 0.01 < depths[c, i]]
        for i in range(H):
            for j in range(W):
                t, acc = 1.0, torch.zeros(colors.shape[-1], dtype=colors.dtype)
                for g in order:
                    dx, dy = means2d[c, g, 0] - (j + 0.5), means2d[c, g, 1] - (i + 0.5)
                    a, b, cc = conics[c, g]
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    alpha = min(0.999, float(opac[g] * torch.exp(-sigma)))
                    if sigma < 0 or alpha < ALPHA_THRESHOLD:
                        continue
                    if t * (1 - alpha) <= 1e-4:
                        break
                    acc += colors[g] * alpha * t
                    t *= 1 - alpha
                if background is not None:
                    acc += t * background[c]
                out[c, i, j], alphas[c, i, j, 0] = acc, 1 - t
    return out, alphas


@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_matches_brute_force(mode):
    means, quats, scales, opacities, colors = random_gaussians()
    viewmats, ks = cameras()
    background = torch.randn(2, 4)
    image, alpha, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmats, ks, W, H,
                                      rasterize_mode=mode, backgrounds=background)
    ref_image, ref_alpha = brute_force(means, quats, scales, opacities, colors, viewmats, ks,
                                       antialiased=mode == "antialiased", background=background)
    assert alpha.max() > 0.9  # the scene covers the image: the test is not vacuous
    torch.testing.assert_close(image, ref_image, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(alpha, ref_alpha, atol=2e-5, rtol=1e-5)


def test_transmittance_stop_is_exclusive_and_chunking_changes_nothing():
    n = 30  # a stack of nearly opaque, wide Gaussians along the optical axis
    means = torch.zeros(n, 3)
    means[:, 2] = torch.linspace(-0.5, 0.5, n)
    quats = torch.tensor([1.0, 0, 0, 0]).repeat(n, 1)
    scales = torch.full((n, 3), 2.0)
    opacities = torch.full((n,), 0.95)
    colors = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4)
    viewmats, ks = cameras()
    image, alpha, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmats[:1], ks[:1], W, H)
    # ~0.95 per layer: after 3 layers T = 1.25e-4, the 4th would cross 1e-4 and is left out
    # (an inclusive stop would add 3 * 0.95 * 1.25e-4 more and reach alpha 1 - 6e-6).
    expected = sum(k * 0.95 * 0.05 ** k for k in range(3))
    centre = float(image[0, H // 2, W // 2, 0])
    assert float(alpha[0, H // 2, W // 2, 0]) == pytest.approx(1 - 0.05 ** 3, abs=3e-5)
    assert centre == pytest.approx(expected, abs=0.01)
    chunked, chunked_alpha, _ = rasterize_torch(means, quats, scales, opacities, colors, viewmats[:1], ks[:1], W, H,
                                                chunk_pairs=16)
    torch.testing.assert_close(chunked, image)
    torch.testing.assert_close(chunked_alpha, alpha)


def test_culls_behind_camera_and_outside_image():
    means = torch.tensor([[0.0, 0.0, -4.0], [50.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    quats = torch.tensor([1.0, 0, 0, 0]).repeat(3, 1)
    scales = torch.full((3, 3), 0.1)
    opacities = torch.full((3,), 0.9)
    viewmats, ks = cameras()
    _, _, meta = rasterize_torch(means, quats, scales, opacities, torch.ones(3, 4), viewmats[:1], ks[:1], W, H)
    visible = (meta["radii"][0] > 0).all(-1)
    assert visible.tolist() == [False, False, True]


def test_projection_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection

    means, quats, scales, opacities, _ = random_gaussians(60, seed=3)
    viewmats, ks = cameras()
    covars = quat_scale_to_covar(quats, scales)
    ours = project_gaussians(means, covars, opacities, viewmats, ks, W, H)
    _, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmats, ks, W, H)
    valid = (ours["radii"] > 0).all(-1)
    assert valid.sum() > 30
    torch.testing.assert_close(ours["means2d"][valid], means2d[valid])
    torch.testing.assert_close(ours["conics"][valid], conics[valid], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["depths"], depths)


def test_gradients_match_finite_differences():
    means, quats, scales, opacities, colors = random_gaussians(12, seed=5, dtype=torch.float64)
    viewmats, ks = cameras(torch.float64)
    weights = torch.randn(2, H, W, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    log_scales = scales.log()

    def loss(m, q, ls, o, c):
        image, _, _ = rasterize_torch(m, q, ls.exp(), o, c, viewmats, ks, W, H)
        return (image * weights).sum()

    params = [p.clone().requires_grad_() for p in (means, quats, log_scales, opacities, colors)]
    loss(*params).backward()
    eps = 1e-6
    checked = 0
    for k, p in enumerate(params):
        for idx in [(0, 0), (3, 1), (7, 2)] if p.dim() == 2 else [(0,), (3,), (7,)]:
            base = [q.detach().clone() for q in params]
            up, down = [b.clone() for b in base], [b.clone() for b in base]
            up[k][idx] += eps
            down[k][idx] -= eps
            numeric = (loss(*up) - loss(*down)) / (2 * eps)
            analytic = p.grad[idx]
            assert float(analytic) == pytest.approx(float(numeric), rel=1e-4, abs=1e-6), (k, idx)
            checked += abs(float(analytic)) > 1e-6
    assert checked >= 10  # most checked entries have a real gradient


def test_meta_feeds_gsplat_default_strategy():
    means, quats, scales, opacities, colors = random_gaussians()
    viewmats, ks = cameras()
    means.requires_grad_()
    image, _, meta = rasterize_torch(means, quats, scales, opacities, colors, viewmats, ks, W, H)
    meta["means2d"].retain_grad()
    image.sum().backward()
    assert meta["means2d"].shape == (2, 40, 2) and meta["radii"].shape == (2, 40, 2)
    assert meta["gaussian_ids"] is None and meta["packed"] is False
    assert (meta["width"], meta["height"], meta["n_cameras"]) == (W, H, 2)
    seen = (meta["radii"] > 0).all(-1)
    assert meta["means2d"].grad[seen].abs().sum() > 0
    assert meta["means2d"].grad[~seen].abs().sum() == 0
