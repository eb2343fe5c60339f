"""``splatent export-ply``: a fitted model's Gaussians as a PLY other tools read.

* ``inria``: INRIA 3DGS's exact layout (:data:`~splatent_splat.ply.INRIA_PROPERTIES`: 62 properties, SH degree 3),
  loadable by its ``load_ply`` and by fixed-row viewers; a latent model's colours are its DC latents decoded by
  the codec it was fitted on (:func:`~splatent_splat.ply.decoded_colours`), without view dependence.
* ``latent``: the model's own file (the 3DGS properties, a false-colour ``f_dc`` preview and every latent channel
  as ``latent_dc_*`` / ``latent_rest_*``, with its JSON sidecar): what ``splatent render`` reads.
"""

from __future__ import annotations

from pathlib import Path

from splatent_data import SplatentError
from splatent_latents import resolve_device

from .fit import MODEL_FILE, read_fit_manifest
from .ply import decoded_colours, load_ply, save_inria_ply, save_ply

FORMATS = ("inria", "latent")


def export_ply(model_dir: str | Path, output: str | Path, format: str = "inria", latents: str | Path | None = None,
               device: str = "auto") -> Path:
    """Write the Gaussians of ``model_dir`` (a ``splatent fit`` folder) to ``output`` in ``format``; returns it.

    Args:
        latents: The latents folder whose codec decodes the colours (default: the one ``fit.json`` records).
    """
    if format not in FORMATS:
        raise SplatentError(f"unknown PLY format {format!r}; use one of {', '.join(FORMATS)}")
    model_dir, output = Path(model_dir), Path(output)
    if output.suffix.lower() != ".ply":
        raise SplatentError(f"{output}: the output must be a .ply file")
    info = read_fit_manifest(model_dir)
    dev = resolve_device(device)
    gaussians, sidecar = load_ply(model_dir / info.get("model", MODEL_FILE), device=dev)
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "latent":
        save_ply(gaussians, output, metadata=(sidecar or {}).get("metadata"))
        return output
    colours = None
    if gaussians.feature_kind == "latent" and gaussians.rgb_sh_degree is None:
        from splatent_latents import codec_from_manifest

        latents_dir = Path(latents) if latents else Path(info["latents"])
        if not latents_dir.is_dir():
            raise SplatentError(f"the latents {latents_dir} recorded in {model_dir / 'fit.json'} are gone; their codec "
                                f"decodes the colours: pass --latents DIR")
        colours = decoded_colours(gaussians, codec_from_manifest(latents_dir).to(dev))
    save_inria_ply(gaussians, output, colours)
    return output
