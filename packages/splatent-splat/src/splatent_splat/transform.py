"""Move Gaussians into another world by a rigid transform: centres, orientations and view-dependent colour.

A Gaussian's SH coefficients describe its colour as a function of the viewing direction in its world; when the
world turns by ``R`` the same colour is seen from ``R d``, so every band's coefficients turn by the matrix that
maps the basis at ``R^T d`` to the basis at ``d``. That matrix is solved for exactly by least squares on a
handful of directions (the SH bands of one degree span a space closed under rotation), not tabulated.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from splatent_data import SplatentError

from .gaussians import FeatureGaussians
from .sh import sh_bases


def sh_rotation(degree: int, rotation: np.ndarray) -> Tensor:  # [K, K], K = (degree + 1) ** 2
    """``M`` with ``Y(R^T d) = Y(d) M`` for every unit ``d``: coefficients ``c`` of a world become ``M c``."""
    dirs = torch.from_numpy(Rotation.random(64, random_state=0).apply([0.0, 0.0, 1.0])).double()
    turned_back = dirs @ torch.from_numpy(np.asarray(rotation, dtype=np.float64))  # rows: R^T d
    basis = sh_bases(degree, dirs)  # [64, K]
    return torch.linalg.lstsq(basis, sh_bases(degree, turned_back)).solution


def rigidly_moved(gaussians: FeatureGaussians, transform: np.ndarray) -> FeatureGaussians:
    """``gaussians`` in the world that ``transform`` (``[4, 4]``, a rotation and translation) maps theirs to."""
    transform = np.asarray(transform, dtype=np.float64)
    rotation, translation = transform[:3, :3], transform[:3, 3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-5) or np.linalg.det(rotation) < 0:
        raise SplatentError("the transform is not a rotation and translation (it scales or mirrors the world); "
                            "Gaussians can only be moved rigidly")
    p = {k: v.detach().clone() for k, v in gaussians.params.items()}
    device = p["means"].device
    r = torch.from_numpy(rotation).float().to(device)
    p["means"] = p["means"] @ r.T + torch.from_numpy(translation).float().to(device)
    wxyz = p["quats"].double().cpu().numpy()
    turned = Rotation.from_matrix(rotation) * Rotation.from_quat(wxyz[:, [1, 2, 3, 0]])
    p["quats"] = torch.from_numpy(turned.as_quat()[:, [3, 0, 1, 2]]).float().to(device)
    for head in ("feat", "rgb"):  # the DC term is direction-free; the rest turn band by band
        rest = p.get(f"{head}N")
        if rest is not None:
            degree = round((rest.shape[1] + 1) ** 0.5) - 1
            m = sh_rotation(degree, rotation).float().to(device)  # [K, K]
            p[f"{head}N"] = torch.einsum("jk,nkd->njd", m[1:, 1:], rest)
    return FeatureGaussians(p, feature_kind=gaussians.feature_kind, sh_degree=gaussians.sh_degree,
                            rgb_sh_degree=gaussians.rgb_sh_degree, feature_mean=gaussians.feature_mean,
                            feature_scale=gaussians.feature_scale)
