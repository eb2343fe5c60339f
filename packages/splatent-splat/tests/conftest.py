"""Small scenes built in code: a ring of pinhole cameras around ground-truth
Gaussians whose latents (and photos) are rendered with the torch rasteriser,
so a fit has an exact, multi-view-consistent target."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from splatent_data import Camera, PointCloud, look_at, save_rgb, write_transforms
from splatent_splat import FeatureGaussians, camera_tensors

REPO = Path(__file__).resolve().parents[3]
FOX = REPO.parent / "shared" / "data" / "fox"

LATENT_SIZE = (32, 24)  # (w, h)


def ring(n: int, width: int, height: int, radius: float = 3.0, distortion: tuple = ()) -> list[Camera]:
    """``n`` cameras on a slightly wavy ring, looking at the origin."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        centre = [radius * np.cos(a), radius * np.sin(a), 0.8 + 0.3 * np.sin(2 * a)]
        cams.append(Camera(
            name=f"{i:04d}.png", image_path=Path(f"{i:04d}.png"), width=width, height=height,
            fx=0.9 * width, fy=0.9 * width, cx=width / 2, cy=height / 2, camtoworld=look_at(centre, [0, 0, 0.1]),
            model="OPENCV" if distortion else "PINHOLE", distortion=distortion,
        ))
    return cams


def ground_truth(num: int = 300, seed: int = 0, channels: int = 4) -> FeatureGaussians:
    """Anisotropic, fairly opaque Gaussians in a unit ball with latent-like features
    (channel offsets and spreads of a few units, as unscaled VAE latents have) and an RGB head.
    ``channels`` other than 4 mixes the four base features into that many (a 32-channel codec's latents)."""
    g = torch.Generator().manual_seed(seed)
    xyz = torch.randn(num, 3, generator=g)
    xyz = xyz / xyz.norm(dim=1, keepdim=True) * torch.rand(num, 1, generator=g) ** (1 / 3)
    offsets = torch.tensor([2.0, -1.0, 0.5, 3.0])
    spreads = torch.tensor([4.0, 3.0, 5.0, 2.0])
    feats = offsets + spreads * torch.tanh(torch.stack([
        torch.sin(3 * xyz[:, 0]) + xyz[:, 1], torch.cos(2 * xyz[:, 1]) * xyz[:, 2],
        xyz[:, 0] * xyz[:, 2] * 2, torch.sin(4 * xyz[:, 2]),
    ], dim=1))
    rgb = torch.sigmoid(feats[:, :3] / 3)
    mean, scale = offsets, 4 * spreads / 2
    if channels != 4:
        mix = torch.randn(4, channels, generator=g) / 2
        feats = feats @ mix
        mean, scale = feats.mean(0), 4 * feats.std(0)
    model = FeatureGaussians.create(xyz, feats, sh_degree=0, rgb=rgb, rgb_sh_degree=0,
                                    feature_mean=mean, feature_scale=scale, init_opacity=0.8)
    with torch.no_grad():
        model.params["scales"].copy_(torch.log(0.06 + 0.1 * torch.rand(num, 3, generator=g)))
        model.params["quats"].copy_(torch.randn(num, 4, generator=g))
    return model


def build_scene(
    root: Path, n_views: int = 16, latent_size: tuple[int, int] = LATENT_SIZE, distortion: tuple = (),
    codec: str = "tiny-random", seed: int = 0, points: bool = True, photos: bool = True, channels: int = 4,
) -> Path:
    """A scene with 8x-latent-size photos and ``features_sd_turbo/`` latents: a transforms.json
    with nerfstudio's ``sparse_pc.ply`` (the ground-truth centres, jittered, as SfM would give)
    when ``points``, else without points. (Not a COLMAP model: pycolmap, a 38 MB wheel, is not
    on the GPU machine, and splatent-data's own tests cover COLMAP parsing.) ``photos=False`` writes
    flat grey photos (faster) for tests that never look at them."""
    from splatent_latents import LatentManifest, save_latent

    w, h = latent_size
    gt = ground_truth(seed=seed, channels=channels)
    cams = ring(n_views, 8 * w, 8 * h, distortion=distortion)
    latents_dir = root / "features_sd_turbo"
    written = []
    for cam in cams:
        path = root / "images" / cam.name
        with torch.no_grad():
            if photos:
                vm, ks = camera_tensors([dataclasses.replace(cam, model="PINHOLE", distortion=())])
                rgb, _, _ = gt.render(vm, ks, cam.width, cam.height, channel="rgb", backend="torch")
            else:
                rgb = torch.full((1, cam.height, cam.width, 3), 0.5)
            vm, ks = camera_tensors([dataclasses.replace(cam, model="PINHOLE", distortion=()).scaled(w, h)])
            lat, _, _ = gt.render(vm, ks, w, h, backend="torch")
        save_rgb(path, rgb[0].clamp(0, 1).numpy())
        save_latent(latents_dir / f"{cam.stem}.pt", lat[0].permute(2, 0, 1))
        written.append(dataclasses.replace(cam, image_path=path))
    cloud = None
    if points:
        g = torch.Generator().manual_seed(seed + 1)
        xyz = gt.params["means"].detach() + 0.02 * torch.randn(gt.num_gaussians, 3, generator=g)
        rgb = (gt.params["rgb0"].detach()[:, 0] * 0.28209479177387814 + 0.5).clamp(0, 1)
        cloud = PointCloud(xyz=xyz.double().numpy(), rgb=(rgb * 255).round().byte().numpy())
    write_transforms(written, root / "transforms.json", points=cloud)
    LatentManifest(
        codec=codec, codec_config={"name": codec, "seed": 0}, dtype="float32", count=n_views,
        sizes={c.stem: [8 * h, 8 * w] for c in cams}, images="images", channels=channels,
    ).save(latents_dir)
    return root


@pytest.fixture(scope="session")
def latent_scene(tmp_path_factory) -> Path:
    """One scene shared by the tests that only read it."""
    return build_scene(tmp_path_factory.mktemp("scene"))


@pytest.fixture
def fox() -> Path:
    if not (FOX / "transforms.json").is_file():
        pytest.skip(f"the fox capture is not at {FOX} (it ships with the CI machine's shared/ folder)")
    return FOX


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """These tensors are tiny: intra-op threads only add OpenMP overhead, and on a
    busy 2-core runner spin-waiting threads make each op ~100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (gsplat's kernels); run on the device machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_ring():
    """The ring-of-cameras builder (test modules cannot import conftest)."""
    return ring


@pytest.fixture
def make_scene():
    """The scene builder, for tests that need their own scene."""
    return build_scene


@pytest.fixture
def scene_gaussians() -> FeatureGaussians:
    """The ground-truth Gaussians that ``latent_scene``'s photos and latents were rendered from."""
    return ground_truth(seed=0)
