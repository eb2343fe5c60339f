"""INRIA 3DGS's PLY, written for a latent model, read back as INRIA's own loader reads it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from plyfile import PlyData

from splatent_data import SplatentError
from splatent_splat import INRIA_PROPERTIES, FeatureGaussians, decoded_colours, save_inria_ply
from splatent_splat.sh import SH_C0


def inria_load_ply(path) -> dict[str, np.ndarray]:
    """INRIA's ``GaussianModel.load_ply`` (gaussian-splatting/scene/gaussian_model.py), minus the torch parameters:
    by property name, with its assertion that there are 3 (3 + 1)^2 - 3 = 45 ``f_rest``."""
    el = PlyData.read(str(path)).elements[0]
    xyz = np.stack([np.asarray(el[a]) for a in "xyz"], axis=1)
    opacities = np.asarray(el["opacity"])[..., np.newaxis]
    features_dc = np.stack([np.asarray(el[f"f_dc_{i}"]) for i in range(3)], axis=1)[..., np.newaxis]
    extra = sorted([p.name for p in el.properties if p.name.startswith("f_rest_")], key=lambda x: int(x.split("_")[-1]))
    assert len(extra) == 3 * (3 + 1) ** 2 - 3
    features_extra = np.stack([np.asarray(el[n]) for n in extra], axis=1).reshape(xyz.shape[0], 3, 15)
    scales = np.stack([np.asarray(el[n]) for n in sorted((p.name for p in el.properties if p.name.startswith("scale_")),
                                                          key=lambda x: int(x.split("_")[-1]))], axis=1)
    rots = np.stack([np.asarray(el[n]) for n in sorted((p.name for p in el.properties if p.name.startswith("rot")),
                                                        key=lambda x: int(x.split("_")[-1]))], axis=1)
    return {"xyz": xyz, "opacity": opacities, "f_dc": features_dc, "f_rest": features_extra, "scale": scales, "rot": rots}


@pytest.fixture
def latent_model() -> FeatureGaussians:
    g = torch.Generator().manual_seed(0)
    return FeatureGaussians.create(torch.randn(50, 3, generator=g), torch.randn(50, 4, generator=g), sh_degree=1,
                                   feature_mean=torch.full((4,), 0.2), feature_scale=torch.full((4,), 2.0))


def test_a_latent_model_exports_as_the_exact_inria_layout(latent_model, tmp_path):
    from splatent_latents import load_codec

    codec = load_codec("tiny-random")
    colours = decoded_colours(latent_model, codec)
    assert colours.shape == (50, 3) and 0 <= float(colours.min()) and float(colours.max()) <= 1
    save_inria_ply(latent_model, tmp_path / "point_cloud.ply", colours)
    ply = PlyData.read(str(tmp_path / "point_cloud.ply"))
    vertex = ply.elements[0]
    assert [p.name for p in vertex.properties] == list(INRIA_PROPERTIES) and len(INRIA_PROPERTIES) == 62
    assert vertex.data.dtype.itemsize == 248  # fixed-row readers (SIBR) step 62 float32s per Gaussian
    model = inria_load_ply(tmp_path / "point_cloud.ply")
    p = latent_model.params
    assert np.allclose(model["xyz"], p["means"].detach().numpy())
    assert np.allclose(model["scale"], p["scales"].detach().numpy()) and np.allclose(model["rot"], p["quats"].detach().numpy())
    assert np.allclose(model["opacity"][:, 0], p["opacities"].detach().numpy())
    assert np.allclose(SH_C0 * model["f_dc"][..., 0] + 0.5, colours.numpy(), atol=1e-6)  # 3DGS's DC colour
    assert not model["f_rest"].any()
    # the colour is what a view of the Gaussian's DC latent alone decodes to
    dc = p["feat0"][:1, 0] * SH_C0 * latent_model.feature_scale + latent_model.feature_mean
    patch = codec.decode(dc[:, :, None, None].expand(-1, -1, 4, 4))
    assert torch.allclose(colours[0], patch[0, :, 8:24, 8:24].mean((1, 2)).clamp(0, 1), atol=1e-5)
    with pytest.raises(SplatentError, match="needs colours"):
        save_inria_ply(latent_model, tmp_path / "x.ply")


def test_an_rgb_model_keeps_its_sh_padded_to_degree_3(tmp_path):
    g = torch.Generator().manual_seed(1)
    rgb = FeatureGaussians.create(torch.randn(20, 3, generator=g), torch.rand(20, 3, generator=g), feature_kind="rgb",
                                  sh_degree=1)
    with torch.no_grad():
        rgb.params["featN"].normal_()
    save_inria_ply(rgb, tmp_path / "rgb.ply")
    model = inria_load_ply(tmp_path / "rgb.ply")
    assert np.allclose(model["f_dc"][..., 0], rgb.params["feat0"][:, 0].detach().numpy())
    rest = rgb.params["featN"].detach().numpy()  # [N, 3 coefficients, 3 channels] -> channel-major [N, 3, 15]
    assert np.allclose(model["f_rest"][:, :, :3], rest.transpose(0, 2, 1)) and not model["f_rest"][:, :, 3:].any()
