"""``splatent export-ply``: a fitted model's Gaussians as a PLY other tools read.

* ``inria``: INRIA 3DGS's exact layout (:data:`~splatent_splat.ply.INRIA_PROPERTIES`: 62 properties, SH degree 3),
  loadable by its ``load_ply`` and by fixed-row viewers; a latent model's colours are its DC latents decoded by
  the codec it was fitted on (:func:`~splatent_splat.ply.decoded_colours`), without view dependence.
* ``latent``: the model's own file (the 3DGS properties, a false-colour ``f_dc`` preview and every latent channel
  as ``latent_dc_*`` / ``latent_rest_*``, with its JSON sidecar): what ``splatent render`` reads in a fit folder.

The model may also be any 3DGS model (:func:`~splatent_splat.sources.open_model`: INRIA's output folder,
nerfstudio's ``splat.ply``), written as INRIA's layout (``f_rest`` padded to degree 3). A ``splat.ply`` is first
brought out of nerfstudio's normalised world (its ``dataparser_transforms.json`` undone) into the poses' world
(``frame="scene"``); ``frame="original"`` then moves the Gaussians back into the original capture's world when the
scene records nerfstudio's ``applied_transform`` (:func:`~splatent_splat.transform.rigidly_moved`), so they line up
with its COLMAP model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splatent_data import SplatentError
from splatent_latents import resolve_device

from .ply import decoded_colours, load_ply, save_inria_ply, save_ply
from .sources import open_model
from .transform import rigidly_moved

FORMATS = ("inria", "latent")
FRAMES = ("scene", "original")


def export_ply(model_dir: str | Path, output: str | Path, format: str = "inria", latents: str | Path | None = None,
               device: str = "auto", frame: str = "scene", scene: str | Path | None = None,
               images: str | None = None) -> Path:
    """Write the Gaussians of ``model_dir`` (a ``splatent fit`` folder or any 3DGS model) to ``output`` in
    ``format``; returns it.

    Args:
        latents: The latents folder whose codec decodes the colours (default: the one ``fit.json`` records).
        frame: ``scene`` (the poses' world; a nerfstudio ``splat.ply`` is brought out of nerfstudio's normalised
            world, its ``dataparser_transforms.json`` undone) or ``original`` (then the scene's ``applied_transform``
            undone too).
        scene, images: The scene of a model without ``fit.json``.
    """
    if format not in FORMATS:
        raise SplatentError(f"unknown PLY format {format!r}; use one of {', '.join(FORMATS)}")
    if frame not in FRAMES:
        raise SplatentError(f"unknown frame {frame!r}; use one of {', '.join(FRAMES)}")
    model_dir, output = Path(model_dir), Path(output)
    if output.suffix.lower() != ".ply":
        raise SplatentError(f"{output}: the output must be a .ply file")
    # only --frame original needs a foreign model's scene (its applied_transform); an INRIA export of it does not
    source = open_model(model_dir, scene=scene, images=images, require_scene=frame == "original")
    info = source.info
    dev = resolve_device(device)
    gaussians, sidecar = load_ply(source.ply, device=dev)
    applied = info.get("applied_transform")
    if frame == "original" and applied is None:
        raise SplatentError(f"the scene of {model_dir} records no applied_transform: its world is the original "
                            f"one; drop --frame original")
    to_scene = np.eye(4)
    if source.world_to_model is not None:  # nerfstudio's splat.ply lives in its normalised (scaled) world
        gaussians, to_scene = _out_of_model_world(gaussians, source.world_to_model)
    if frame == "original":
        to_scene = np.linalg.inv(np.asarray(applied, dtype=np.float64)) @ to_scene
    if not np.allclose(to_scene, np.eye(4)):
        gaussians = rigidly_moved(gaussians, to_scene)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "latent":
        if gaussians.feature_kind != "latent":
            raise SplatentError(f"{source.ply} is an RGB model: it has no latent channels; use --format inria")
        save_ply(gaussians, output, metadata=sidecar or None)  # load_ply gives the sidecar's metadata itself
        return output
    colours = None
    if gaussians.feature_kind == "latent" and gaussians.rgb_sh_degree is None:
        from splatent_latents import codec_from_manifest

        latents_dir = Path(latents) if latents else Path(info["latents"]) if info.get("latents") else None
        if latents_dir is None or not latents_dir.is_dir():
            raise SplatentError(f"the latents {latents_dir} recorded in {model_dir / 'fit.json'} are gone; their codec "
                                f"decodes the colours: pass --latents DIR")
        colours = decoded_colours(gaussians, codec_from_manifest(latents_dir).to(dev))
    save_inria_ply(gaussians, output, colours)
    return output


def _out_of_model_world(gaussians, world_to_model: np.ndarray):
    """``world_to_model`` (a rotation and translation, then a uniform scale: nerfstudio's dataparser transform)
    split: ``(gaussians with the scale undone, the rigid map from there to the scene's world)``."""
    import torch

    from .gaussians import FeatureGaussians

    scale = float(np.cbrt(np.linalg.det(world_to_model[:3, :3])))
    rigid = np.diag([1 / scale, 1 / scale, 1 / scale, 1.0]) @ world_to_model
    p = {k: v.detach().clone() for k, v in gaussians.params.items()}
    with torch.no_grad():
        p["means"] = p["means"] / scale
        p["scales"] = p["scales"] - float(np.log(scale))  # log scales
    unscaled = FeatureGaussians(p, feature_kind=gaussians.feature_kind, sh_degree=gaussians.sh_degree,
                                rgb_sh_degree=gaussians.rgb_sh_degree, feature_mean=gaussians.feature_mean,
                                feature_scale=gaussians.feature_scale)
    return unscaled, np.linalg.inv(rigid)
