"""Save and load :class:`FeatureGaussians` as a standard 3DGS PLY plus a JSON sidecar.

The PLY has the properties every 3DGS viewer reads (``x y z nx ny nz f_dc_* f_rest_*
opacity scale_* rot_*``, log scales, logit opacity, ``rot_0`` = w, ``f_rest``
channel-major as in the original 3DGS) and the latent feature as extra
properties ``latent_dc_*`` / ``latent_rest_*`` (same layout), which viewers
ignore. ``f_dc`` holds the RGB features or RGB head when the model has one;
a latent-only model writes its first three standardised latent channels there,
a false-colour preview that shows the scene's structure in a viewer.

``<name>.json`` beside the PLY records the feature kind, SH degrees, latent
standardisation and whatever the fitter adds (scene, latents, codec). A PLY
without a sidecar is read as an ordinary RGB 3DGS model.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from splatent_data import SplatentError, atomic_write_bytes, atomic_write_json

from .gaussians import FeatureGaussians
from .sh import SH_C0, num_sh_bases

FORMAT = "splatent-gaussians"
FORMAT_VERSION = 1


def _flatten_sh(dc: torch.Tensor, rest: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """``[N, 1, D]``, ``[N, K-1, D]`` -> ``([N, D], [N, D*(K-1)])`` channel-major like 3DGS."""
    dc_np = dc[:, 0, :].detach().cpu().numpy()
    if rest is None or rest.shape[1] == 0:
        return dc_np, np.zeros((dc_np.shape[0], 0), dtype=np.float32)
    # explicit width: reshape(N, -1) cannot infer it when N is 0 (a model that pruned every Gaussian)
    return dc_np, rest.detach().transpose(1, 2).reshape(rest.shape[0], rest.shape[1] * rest.shape[2]).cpu().numpy()


def _unflatten_sh(dc: np.ndarray, rest: np.ndarray, dim: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    n = dc.shape[0]
    dc_t = torch.from_numpy(np.ascontiguousarray(dc, dtype=np.float32)).reshape(n, 1, dim)
    if rest.shape[1] == 0:
        return dc_t, None
    rest_t = torch.from_numpy(np.ascontiguousarray(rest, dtype=np.float32)).reshape(n, dim, rest.shape[1] // dim)
    rest_t = rest_t.transpose(1, 2)
    return dc_t, rest_t.contiguous()


def sidecar_path(path: Path) -> Path:
    """The JSON metadata file that goes with a PLY."""
    return Path(path).with_suffix(".json")


def save_ply(gaussians: FeatureGaussians, path: Path, metadata: dict | None = None) -> None:
    """Write ``gaussians`` to ``path`` (PLY) and ``path.with_suffix('.json')``, atomically.

    Args:
        metadata: Extra JSON-able information stored in the sidecar under ``"metadata"``.
    """
    p = gaussians.params
    n = gaussians.num_gaussians
    if gaussians.feature_kind == "rgb":
        rgb_source, rgb_dc, rgb_rest = "features", p["feat0"], p["featN"] if "featN" in p else None
    elif gaussians.rgb_sh_degree is not None:
        rgb_source, rgb_dc, rgb_rest = "rgb_head", p["rgb0"], p["rgbN"] if "rgbN" in p else None
    else:
        preview = torch.zeros(n, 1, 3, device=p["feat0"].device)
        k = min(3, gaussians.feature_dim)
        preview[:, :, :k] = p["feat0"][:, :, :k].detach()
        rgb_source, rgb_dc, rgb_rest = "latent_preview", preview, None
    f_dc, f_rest = _flatten_sh(rgb_dc, rgb_rest)
    columns: list[tuple[str, np.ndarray]] = []
    xyz = p["means"].detach().cpu().numpy()
    columns += [(name, xyz[:, i]) for i, name in enumerate("xyz")]
    columns += [(name, np.zeros(n, dtype=np.float32)) for name in ("nx", "ny", "nz")]
    columns += [(f"f_dc_{i}", f_dc[:, i]) for i in range(f_dc.shape[1])]
    columns += [(f"f_rest_{i}", f_rest[:, i]) for i in range(f_rest.shape[1])]
    columns.append(("opacity", p["opacities"].detach().cpu().numpy()))
    scales = p["scales"].detach().cpu().numpy()
    quats = p["quats"].detach().cpu().numpy()
    columns += [(f"scale_{i}", scales[:, i]) for i in range(3)]
    columns += [(f"rot_{i}", quats[:, i]) for i in range(4)]
    if gaussians.feature_kind == "latent":
        l_dc, l_rest = _flatten_sh(p["feat0"], p["featN"] if "featN" in p else None)
        columns += [(f"latent_dc_{i}", l_dc[:, i]) for i in range(l_dc.shape[1])]
        columns += [(f"latent_rest_{i}", l_rest[:, i]) for i in range(l_rest.shape[1])]
    vertex = np.empty(n, dtype=[(name, "f4") for name, _ in columns])
    for name, values in columns:
        vertex[name] = values
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(buffer)
    sidecar = {"format": FORMAT, "version": FORMAT_VERSION, "ply_rgb": rgb_source, **gaussians.config(),
               "metadata": metadata or {}}
    atomic_write_bytes(Path(path), buffer.getvalue())
    atomic_write_json(sidecar_path(path), sidecar)


def read_sidecar(path: Path) -> dict | None:
    """The JSON sidecar of a PLY, or ``None`` when it has none."""
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        info = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise SplatentError(f"{side} is not valid JSON ({exc.msg}); re-save the model or delete the file") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise SplatentError(f"{side} is not a splatent Gaussian sidecar (format {found!r}); re-save the model or "
                            f"delete the file")
    if not isinstance(info.get("version", 0), int):
        raise SplatentError(f"{side}: 'version' must be a whole number, got {info['version']!r}; re-save the model")
    if info.get("version", 0) > FORMAT_VERSION:
        raise SplatentError(f"{side} was written by a newer splatent (format version {info['version']}); upgrade")
    return info


def _columns(vertex, prefix: str) -> np.ndarray:
    names = sorted((n for n in vertex.data.dtype.names if n.startswith(prefix)), key=lambda n: int(n.rsplit("_", 1)[1]))
    if not names:
        return np.zeros((len(vertex.data), 0), dtype=np.float32)
    return np.stack([np.asarray(vertex[n], dtype=np.float32) for n in names], axis=1)


def _degree_of(rest_count: int, dim: int, path: Path) -> int:
    k = rest_count // dim + 1 if dim else 1
    degree = round(math.sqrt(k)) - 1
    if rest_count % max(dim, 1) or num_sh_bases(max(0, min(degree, 3))) != k:
        raise SplatentError(f"{path}: {rest_count} SH rest coefficients do not fit {dim} channels of SH degree 0-3")
    return degree


def load_ply(path: Path, device: torch.device | str = "cpu") -> tuple[FeatureGaussians, dict]:
    """Read a PLY written by :func:`save_ply` (or any 3DGS PLY) -> ``(gaussians, sidecar metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise SplatentError(f"no Gaussian model at {path}; fit one with `splatent fit`")
    try:
        ply = PlyData.read(str(path))
        vertex = ply["vertex"]
    except Exception as exc:  # plyfile raises several exception types for corrupt files
        raise SplatentError(f"cannot read PLY {path}: {exc}".splitlines()[0]) from None
    names = set(vertex.data.dtype.names)
    required = {"x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "f_dc_0"}
    if not required <= names:
        raise SplatentError(f"{path} is not a 3DGS PLY: it lacks {', '.join(sorted(required - names))}")
    info = read_sidecar(path) or {"ply_rgb": "features", "feature_kind": "rgb", "metadata": {}}
    xyz = np.stack([np.asarray(vertex[a], dtype=np.float32) for a in "xyz"], axis=1)
    params = {
        "means": torch.from_numpy(xyz),
        "quats": torch.from_numpy(_columns(vertex, "rot_")),
        "scales": torch.from_numpy(_columns(vertex, "scale_")),
        "opacities": torch.from_numpy(np.asarray(vertex["opacity"], dtype=np.float32)),
    }
    f_dc, f_rest = _columns(vertex, "f_dc_"), _columns(vertex, "f_rest_")
    kind = info.get("feature_kind", "rgb")
    rgb_sh_degree = None
    if kind == "latent":
        l_dc, l_rest = _columns(vertex, "latent_dc_"), _columns(vertex, "latent_rest_")
        if l_dc.shape[1] == 0:
            raise SplatentError(f"{path} has no latent_dc_* properties but its sidecar says it holds latents")
        sh_degree = _degree_of(l_rest.shape[1], l_dc.shape[1], path)
        params["feat0"], rest = _unflatten_sh(l_dc, l_rest, l_dc.shape[1])
        if rest is not None:
            params["featN"] = rest
        if info.get("ply_rgb") == "rgb_head":
            rgb_sh_degree = _degree_of(f_rest.shape[1], 3, path)
            params["rgb0"], rest = _unflatten_sh(f_dc, f_rest, 3)
            if rest is not None:
                params["rgbN"] = rest
    else:
        sh_degree = _degree_of(f_rest.shape[1], f_dc.shape[1], path)
        params["feat0"], rest = _unflatten_sh(f_dc, f_rest, f_dc.shape[1])
        if rest is not None:
            params["featN"] = rest
    gaussians = FeatureGaussians(
        params, feature_kind=kind, sh_degree=sh_degree, rgb_sh_degree=rgb_sh_degree,
        feature_mean=torch.tensor(info["feature_mean"]) if "feature_mean" in info else None,
        feature_scale=torch.tensor(info["feature_scale"]) if "feature_scale" in info else None,
    )
    return gaussians.to(device), info.get("metadata", {})


#: INRIA 3DGS's PLY, property for property (``GaussianModel.save_ply`` at SH degree 3): 62 float32 properties, a
#: 248-byte row, the layout its ``load_ply`` asserts (45 ``f_rest``) and fixed-row viewers (SIBR) read.
INRIA_PROPERTIES = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)]
                    + [f"f_rest_{i}" for i in range(45)] + ["opacity"] + [f"scale_{i}" for i in range(3)]
                    + [f"rot_{i}" for i in range(4)])


def save_inria_ply(gaussians: FeatureGaussians, path: Path, rgb: torch.Tensor | None = None) -> None:
    """Write ``gaussians`` as INRIA's exact 62-property PLY (:data:`INRIA_PROPERTIES`), atomically, no sidecar.

    Colour: an RGB model's (or RGB head's) SH coefficients, padded or cut to degree 3; otherwise ``rgb``
    (``[N, 3]`` in [0, 1], e.g. :func:`decoded_colours`) as the DC term with no view dependence.
    """
    p = gaussians.params
    n = gaussians.num_gaussians
    if gaussians.feature_kind == "rgb" or gaussians.rgb_sh_degree is not None:
        head = "feat" if gaussians.feature_kind == "rgb" else "rgb"
        dc, rest = p[f"{head}0"].detach(), p.get(f"{head}N")
        rest = torch.zeros(n, 0, 3, device=dc.device) if rest is None else rest.detach()
        rest = torch.cat([rest, torch.zeros(n, 15, 3, device=dc.device)], dim=1)[:, :15]
    elif rgb is not None:
        if tuple(rgb.shape) != (n, 3):
            raise SplatentError(f"colours for the INRIA PLY must be [{n}, 3], got {tuple(rgb.shape)}")
        dc = ((rgb.detach().float().clamp(0, 1) - 0.5) / SH_C0)[:, None, :]
        rest = torch.zeros(n, 15, 3, device=dc.device)
    else:
        raise SplatentError("a latent model needs colours for an INRIA PLY: decode them (decoded_colours) first")
    f_dc, f_rest = _flatten_sh(dc.to(p["means"].device), rest.to(p["means"].device))
    xyz = p["means"].detach().cpu().numpy()
    scales, quats = p["scales"].detach().cpu().numpy(), p["quats"].detach().cpu().numpy()
    values = {**{a: xyz[:, i] for i, a in enumerate("xyz")}, **{a: np.zeros(n, np.float32) for a in ("nx", "ny", "nz")},
              **{f"f_dc_{i}": f_dc[:, i] for i in range(3)}, **{f"f_rest_{i}": f_rest[:, i] for i in range(45)},
              "opacity": p["opacities"].detach().cpu().numpy(), **{f"scale_{i}": scales[:, i] for i in range(3)},
              **{f"rot_{i}": quats[:, i] for i in range(4)}}
    vertex = np.empty(n, dtype=[(name, "f4") for name in INRIA_PROPERTIES])
    for name in INRIA_PROPERTIES:
        vertex[name] = values[name]
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


@torch.no_grad()
def decoded_colours(gaussians: FeatureGaussians, codec, batch: int = 4096) -> torch.Tensor:  # [N, 3] in [0, 1]
    """Each latent Gaussian's view-independent colour: its DC latent (un-standardised) decoded by ``codec`` as a
    uniform 4x4 latent patch, the mean of the decoded patch's centre (the borders see the decoder's padding)."""
    dc = gaussians.params["feat0"][:, 0, :].detach()
    latents = dc * SH_C0 * gaussians.feature_scale + gaussians.feature_mean  # what a view of it alone renders
    out = []
    for start in range(0, latents.shape[0], batch):
        chunk = latents[start:start + batch].to(codec.device, codec.dtype)
        image = codec.decode(chunk[:, :, None, None].expand(-1, -1, 4, 4).contiguous()).float()
        h, w = image.shape[-2:]
        out.append(image[:, :, h // 4:3 * h // 4, w // 4:3 * w // 4].mean((2, 3)).clamp(0, 1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3)
