import numpy as np
import pytest
import torch

from splatent_data import SplatentError
from splatent_splat import FeatureGaussians, camera_tensors, features_from_views, random_points_in_frustums
from splatent_splat.gaussians import nearest_neighbour_distance, standardisation



def test_create_sets_dc_so_an_opaque_gaussian_renders_its_feature():
    feats = torch.tensor([[3.0, -2.0, 7.0, 0.5]])
    mean, scale = torch.tensor([1.0, 0.0, 2.0, 0.0]), torch.tensor([8.0, 4.0, 12.0, 2.0])
    g = FeatureGaussians.create(torch.zeros(1, 3), feats, sh_degree=2, feature_mean=mean, feature_scale=scale,
                                init_opacity=0.999)
    with torch.no_grad():
        g.params["scales"].fill_(np.log(5.0))  # covers the whole view
    assert g.params["featN"].shape == (1, 8, 4) and g.feature_dim == 4 and len(g) == 1
    viewmats = torch.eye(4)[None]
    viewmats[0, 2, 3] = 3.0
    ks = torch.tensor([[[8.0, 0, 4], [0, 8.0, 3], [0, 0, 1]]])
    image, alpha, _ = g.render(viewmats, ks, 8, 6, backend="torch")
    centre = image[0, 3, 4]
    a = float(alpha.detach()[0, 3, 4, 0])
    torch.testing.assert_close(centre.detach(), a * feats[0] + (1 - a) * mean, atol=1e-4, rtol=1e-4)


def test_empty_pixels_render_the_background_and_rgb_head_needs_one():
    g = FeatureGaussians.create(torch.tensor([[0.0, 0.0, 50.0]]), torch.ones(1, 4), feature_mean=torch.full((4,), 2.0),
                                feature_scale=torch.ones(4))
    viewmats = torch.eye(4)[None]
    ks = torch.tensor([[[8.0, 0, 4], [0, 8.0, 3], [0, 0, 1]]])
    viewmats[0, 2, 3] = -60.0  # the Gaussian is behind the camera
    image, alpha, _ = g.render(viewmats, ks, 8, 6, backend="torch")
    assert torch.all(alpha == 0) and torch.allclose(image, torch.full_like(image, 2.0))
    image, _, _ = g.render(viewmats, ks, 8, 6, background=torch.tensor([1.0, 2, 3, 4]), backend="torch")
    assert torch.allclose(image[0, 0, 0], torch.tensor([1.0, 2, 3, 4]))
    with pytest.raises(SplatentError, match="no RGB head"):
        g.render(viewmats, ks, 8, 6, channel="rgb", backend="torch")


def test_rgb_models_and_heads_use_gsplat_activation():
    rgb = torch.tensor([[0.2, 0.6, 0.9]])
    g = FeatureGaussians.create(torch.zeros(1, 3), torch.zeros(1, 4), rgb=rgb, rgb_sh_degree=1, init_opacity=0.999)
    r = FeatureGaussians.create(torch.zeros(1, 3), rgb, feature_kind="rgb", sh_degree=3, init_opacity=0.999)
    assert r.params["featN"].shape == (1, 15, 3) and g.params["rgbN"].shape == (1, 3, 3) and g.has_rgb and r.has_rgb
    viewmats = torch.eye(4)[None]
    viewmats[0, 2, 3] = 3.0
    ks = torch.tensor([[[8.0, 0, 4], [0, 8.0, 3], [0, 0, 1]]])
    for model, channel in ((g, "rgb"), (r, "feature")):
        with torch.no_grad():
            model.params["scales"].fill_(np.log(5.0))
        image, alpha, _ = model.render(viewmats, ks, 8, 6, channel=channel, backend="torch")
        torch.testing.assert_close(image.detach()[0, 3, 4], float(alpha.detach()[0, 3, 4, 0]) * rgb[0], atol=1e-4, rtol=1e-4)


def test_parameter_shapes_are_checked():
    g = FeatureGaussians.create(torch.zeros(2, 3), torch.zeros(2, 4), sh_degree=1)
    params = {k: v.detach() for k, v in g.params.items()}
    params["featN"] = torch.zeros(2, 8, 4)
    with pytest.raises(SplatentError, match="featN"):
        FeatureGaussians(params, sh_degree=1)
    with pytest.raises(SplatentError, match="feature kind"):
        FeatureGaussians(params, feature_kind="depth")


def test_nearest_neighbour_distance_and_standardisation():
    grid = torch.stack(torch.meshgrid(*[torch.arange(5.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.5
    d = nearest_neighbour_distance(grid, k=3)
    assert torch.allclose(d[62], torch.tensor(0.5))  # an interior point: 6 neighbours at 0.5
    assert torch.allclose(d[0], torch.tensor(0.5))  # a corner: 3 neighbours at 0.5
    cloud = torch.randn(500, 3, generator=torch.Generator().manual_seed(0))
    brute = torch.cdist(cloud, cloud).topk(4, largest=False).values[:, 1:].mean(1)  # the all-pairs definition
    assert torch.allclose(nearest_neighbour_distance(cloud), brute, atol=1e-6)
    lat = [torch.randn(4, 6, 5) * 3 + 1, torch.randn(4, 6, 5) * 3 + 1]
    mean, scale = standardisation(lat)
    assert torch.allclose(mean, torch.cat([x.reshape(4, -1) for x in lat], 1).mean(1))
    assert torch.all((scale > 8) & (scale < 16))  # 4 x std(3)


def test_random_points_lie_in_two_frustums_and_are_reproducible(make_ring):
    cams = make_ring(8, 32, 24)
    pts = random_points_in_frustums(cams, 500, generator=torch.Generator().manual_seed(1))
    again = random_points_in_frustums(cams, 500, generator=torch.Generator().manual_seed(1))
    assert pts.shape == (500, 3) and torch.equal(pts, again)
    viewmats, ks = camera_tensors(cams)
    pc = torch.einsum("cij,nj->cni", viewmats[:, :3, :3], pts) + viewmats[:, None, :3, 3]
    uv = torch.einsum("cij,cnj->cni", ks[:, :2, :2], pc[..., :2] / pc[..., 2:]) + ks[:, None, :2, 2]
    inside = (pc[..., 2] > 0) & (uv >= 0).all(-1) & (uv[..., 0] < 32) & (uv[..., 1] < 24)
    assert (inside.sum(0) >= 2).all()
    # The ring looks at the origin from radius 3: points stay within the frustums' reach.
    assert pts.norm(dim=1).max() < 7


def test_random_points_keep_to_a_known_depth_range(make_ring):
    """LLFF scenes carry near/far bounds: the initial points lie between them in the cameras that see them."""
    cams = make_ring(8, 32, 24)
    pts = random_points_in_frustums(cams, 400, generator=torch.Generator().manual_seed(2), depth_range=(2.5, 3.5))
    viewmats, _ = camera_tensors(cams)
    z = (torch.einsum("cij,nj->cni", viewmats[:, :3, :3], pts) + viewmats[:, None, :3, 3])[..., 2]
    in_range = (z > 2.5) & (z < 3.5)
    assert (in_range.sum(0) >= 2).all()  # every point: inside the depth range of at least two cameras
    with pytest.raises(SplatentError, match="near < far"):
        random_points_in_frustums(cams, 10, depth_range=(3.0, 1.0))


def test_features_from_views_samples_what_each_point_projects_to(make_ring):
    cams = make_ring(4, 16, 12)
    maps = [torch.full((2, 12, 16), float(i)) for i in range(4)]
    pts = torch.zeros(1, 3)  # the origin is seen by all four: the mean of 0..3
    assert torch.allclose(features_from_views(pts, cams, maps), torch.tensor([[1.5, 1.5]]))
    far = torch.tensor([[0.0, 0.0, 100.0]])  # seen by none: the global mean
    assert torch.allclose(features_from_views(far, cams, maps), torch.tensor([[1.5, 1.5]]))


def test_random_points_on_fox_fill_the_room_the_cameras_look_into(fox):
    import dataclasses

    from splatent_data import load_scene

    cams = [dataclasses.replace(c, model="PINHOLE", distortion=()) for c in load_scene(fox).cameras]
    pts = random_points_in_frustums(cams, 2000, generator=torch.Generator().manual_seed(0)).numpy()
    centres = np.stack([c.center for c in cams])
    forwards = np.stack([c.forward for c in cams])
    proj = np.eye(3)[None] - forwards[:, :, None] * forwards[:, None, :]
    focus = np.linalg.lstsq(proj.sum(0), np.einsum("cij,cj->i", proj, centres), rcond=None)[0]  # the fox
    reach = np.median(np.linalg.norm(centres - focus, axis=1))
    d = np.linalg.norm(pts - focus, axis=1)
    assert (pts.min(0) < focus).all() and (pts.max(0) > focus).all()
    assert np.percentile(d, 90) < 2 * reach and (d < reach).mean() > 0.2
