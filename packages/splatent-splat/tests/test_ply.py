import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from splatent_data import SplatentError
from splatent_splat import FeatureGaussians, camera_tensors, load_ply, save_ply
from splatent_splat.ply import FORMAT
from splatent_splat.sh import SH_C0


VIEWER_PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def trained_like(kind="latent", sh=2, rgb=None, n=50):
    g = torch.Generator().manual_seed(0)
    dim = 4 if kind == "latent" else 3
    model = FeatureGaussians.create(torch.randn(n, 3, generator=g), torch.rand(n, dim, generator=g),
                                    feature_kind=kind, sh_degree=sh, rgb_sh_degree=rgb,
                                    rgb=torch.rand(n, 3, generator=g) if rgb is not None else None,
                                    feature_mean=torch.tensor([1.0, 2, 3, 4]) if kind == "latent" else None,
                                    feature_scale=torch.tensor([5.0, 6, 7, 8]) if kind == "latent" else None)
    with torch.no_grad():
        for p in model.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("kind,sh,rgb", [("latent", 2, None), ("latent", 2, 3), ("latent", 0, 0), ("rgb", 3, None)])
def test_round_trip_keeps_every_parameter_and_the_renders(tmp_path, kind, sh, rgb, make_ring):
    model = trained_like(kind, sh, rgb)
    save_ply(model, tmp_path / "gaussians.ply", metadata={"scene": "/data/x"})
    loaded, meta = load_ply(tmp_path / "gaussians.ply")
    assert meta == {"scene": "/data/x"}
    assert set(loaded.params) == set(model.params)
    for name, p in model.params.items():
        torch.testing.assert_close(loaded.params[name], p.detach(), rtol=0, atol=0)
    assert loaded.config() == model.config()
    cam = make_ring(4, 16, 12)[1]
    vm, ks = camera_tensors([cam])
    a, _, _ = model.render(vm, ks, 16, 12, backend="torch")
    b, _, _ = loaded.render(vm, ks, 16, 12, backend="torch")
    torch.testing.assert_close(a, b)


def test_file_is_a_standard_3dgs_ply(tmp_path):
    model = trained_like("latent", 2, 3)
    save_ply(model, tmp_path / "g.ply")
    assert (tmp_path / "g.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 50\n")
    vertex = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    names = list(vertex.data.dtype.names)
    assert names[:9] == VIEWER_PROPERTIES[:9]
    assert set(VIEWER_PROPERTIES) <= set(names)
    assert [n for n in names if n.startswith("f_rest_")] == [f"f_rest_{i}" for i in range(45)]
    assert [n for n in names if n.startswith("latent_dc_")] == [f"latent_dc_{i}" for i in range(4)]
    assert len([n for n in names if n.startswith("latent_rest_")]) == 32
    # f_rest is channel-major, as 3DGS writes it: all red coefficients, then green, then blue.
    rest = model.params["rgbN"].detach()
    assert np.allclose(vertex["f_rest_1"], rest[:, 1, 0].numpy()) and np.allclose(vertex["f_rest_15"], rest[:, 0, 1].numpy())
    assert np.allclose(vertex["rot_0"], model.params["quats"].detach()[:, 0].numpy())  # w first


def test_latent_only_model_writes_a_false_colour_preview(tmp_path):
    model = trained_like("latent", 1, None)
    save_ply(model, tmp_path / "g.ply")
    vertex = PlyData.read(str(tmp_path / "g.ply"))["vertex"]
    assert np.allclose(vertex["f_dc_2"], model.params["feat0"].detach()[:, 0, 2].numpy())
    colours = SH_C0 * np.stack([vertex[f"f_dc_{i}"] for i in range(3)], 1) + 0.5
    assert colours.std() > 0.01


def test_plain_3dgs_ply_without_sidecar_loads_as_rgb(tmp_path):
    n = 10
    cols = {name: np.random.rand(n).astype("f4") for name in VIEWER_PROPERTIES}
    cols.update({f"f_rest_{i}": np.zeros(n, "f4") for i in range(9)})
    vertex = np.empty(n, dtype=[(k, "f4") for k in cols])
    for k, v in cols.items():
        vertex[k] = v
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "point_cloud.ply"))
    model, meta = load_ply(tmp_path / "point_cloud.ply")
    assert model.feature_kind == "rgb" and model.sh_degree == 1 and len(model) == n and meta == {}


def test_bad_files_fail_clearly(tmp_path):
    with pytest.raises(SplatentError, match="no Gaussian model"):
        load_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(SplatentError, match="cannot read PLY"):
        load_ply(tmp_path / "junk.ply")
    save_ply(trained_like(), tmp_path / "g.ply")
    (tmp_path / "g.json").write_text("{")
    with pytest.raises(SplatentError, match="not valid JSON"):
        load_ply(tmp_path / "g.ply")
    (tmp_path / "g.json").write_text("[1, 2]")
    with pytest.raises(SplatentError, match="not a splatent Gaussian sidecar"):
        load_ply(tmp_path / "g.ply")
    (tmp_path / "g.json").write_text('{"format": "%s", "version": "1.0"}' % FORMAT)
    with pytest.raises(SplatentError, match="'version' must be a whole number"):
        load_ply(tmp_path / "g.ply")


def test_a_model_without_gaussians_round_trips(tmp_path):
    """A fit that pruned every Gaussian still saves (and loads) its empty model instead of failing in a reshape."""
    some = FeatureGaussians.create(torch.randn(5, 3), torch.randn(5, 4), sh_degree=2)
    empty = FeatureGaussians({k: v[:0] for k, v in some.params.items()}, sh_degree=2)
    save_ply(empty, tmp_path / "empty.ply")
    back, _ = load_ply(tmp_path / "empty.ply")
    assert back.num_gaussians == 0 and back.sh_degree == 2 and back.feature_dim == 4
