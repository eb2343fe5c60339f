"""The eval stage (``splatent eval``): score decoded renders, enhanced renders and the codec's ceiling.

For every test view of a render folder (``nvs/``, ``nvs_gt/`` from ``splatent
render``), against the ground-truth photo resized to the latents' pixel size:

1. **render** — decode(3DGS render latent);
2. **enhanced** — decode(enhanced latent), where ``enhanced/<stem>.pt`` exists;
3. **ceiling** — decode(encode(ground truth)) = decode(``nvs_gt``): the best any latent
   method can do with this codec.

PSNR, SSIM and (optionally) LPIPS per view and mean; writes ``metrics.json``,
``metrics.md``, one contact sheet per view and ``report.html``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from splatent_data import (
    RenderLayout, RunLayout, SplatentError, atomic_write_bytes, atomic_write_json, load_scene, read_dataset_json,
    render_image_folder,
)
from splatent_latents import LatentCodec, ProgressCallback, codec_from_manifest, load_latent, resolve_device
from splatent_model import psnr, ssim
from splatent_train import build_lpips

from .fid import build_fid, fid_scores
from .latent_scene import ground_truth_image
from .report import KINDS, contact_sheet, html_report, markdown_table

logger = logging.getLogger("splatent")


@dataclass
class EvalResult:
    """``means``: kind -> metric -> mean over the ``counts[kind]`` views scored of that kind (of ``views`` in all:
    the enhanced folder may cover part of them)."""

    output: Path
    report: Path
    means: dict[str, dict[str, float]]
    views: int
    counts: dict[str, int] = field(default_factory=dict)


def _to_image(t: torch.Tensor) -> np.ndarray:  # [3, H, W] in [0, 1] -> [H, W, 3]
    return t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def image_scores(pred: torch.Tensor, gt: torch.Tensor, lpips_model=None) -> dict[str, float]:
    """PSNR and SSIM (and LPIPS with ``lpips_model``) of one ``[3, H, W]`` image against the ground truth."""
    p, g = pred[None].float(), gt[None].float()
    out = {"psnr": float(psnr(p, g)), "ssim": float(ssim(p, g))}
    if lpips_model is not None:
        with torch.no_grad():
            out["lpips"] = float(lpips_model(p * 2 - 1, g * 2 - 1).mean())
    return out


def evaluate_results(
    renders: str | Path,
    output: str | Path,
    enhanced: str | Path | None = None,
    dataset: str | Path | None = None,
    lpips: bool = True,
    lpips_net: str = "vgg",
    device: str = "auto",
    title: str | None = None,
    notes: tuple[str, ...] = (),
    codec: LatentCodec | None = None,
    fid: bool | None = None,
    fid_weights: str | Path | None = None,
    fid_metric=None,
    progress: ProgressCallback | None = None,
) -> EvalResult:
    """Score every test view of ``renders`` and write the report into ``output`` (see module doc).

    Args:
        renders: A render folder of ``splatent render`` (holds ``manifest.json``, ``nvs/``, ``nvs_gt/``).
        output: Report folder.
        enhanced: Folder of enhanced latents ``<stem>.pt`` (``splatent enhance`` output).
        dataset: Dataset JSON, to show each view's references on its sheet.
        lpips: Also compute LPIPS (needs the backbone weights; splatent-train's :func:`~splatent_train.build_lpips`).
        codec: The codec that wrote the render's latents, if the caller holds it (the pipeline's run context);
            default: rebuilt from the latents' manifest. Moved to ``device`` and float32 in place (enhance
            may have cast it to half precision).
        fid: FID of render, enhanced and ceiling against the photos (:mod:`splatent_pipeline.fid`): ``None``
            computes it when its Inception weights are cached (else the report says how to get them); ``True``
            requires it and downloads the weights if needed; ``False`` skips it.
        fid_weights, fid_metric: A local copy of the Inception weights, or a ready metric (tests).
        progress: ``progress(done, total)`` after each test view is scored (LPIPS of a capture's full-size views
            on a CPU takes seconds a view).
    """
    renders, output = Path(renders), Path(output)
    layout = RenderLayout(renders)
    manifest_path = layout.manifest
    if not manifest_path.is_file():
        raise SplatentError(f"{renders} has no manifest.json; pass a folder written by `splatent render`")
    info = json.loads(manifest_path.read_text())
    if not info.get("latents"):
        raise SplatentError(f"{renders} holds RGB renders; `splatent eval` scores latent renders")
    dev = resolve_device(device)
    codec = (codec if codec is not None else codec_from_manifest(info["latents"])).to(dev, torch.float32)
    scene = load_scene(info["scene"], images=render_image_folder(layout, Path(info["scene"])))
    stems = layout.stems("nvs")
    if not stems:
        raise SplatentError(f"{layout.nvs} holds no rendered test views")
    unseen = [stem for stem in stems if stem not in scene.stems]
    if unseen:  # its photo is gone (or the scene is another one): nothing to score the render against
        raise SplatentError(f"{scene.root} has no photo of the rendered test view {unseen[0]} ({len(unseen)} of "
                            f"{len(stems)} in {layout.nvs}); restore it, or evaluate the renders of this scene")
    refs: dict[str, list[Path]] = {}
    if dataset is not None and Path(dataset).is_file():
        for e in read_dataset_json(dataset, check_files=False).entries:
            refs[e.feature.stem] = list(e.ref_features)
    lpips_model = build_lpips(lpips_net, off_switch="--no-lpips").to(dev) if lpips else None
    enhanced = Path(enhanced) if enhanced is not None else None
    if enhanced is not None and not any((enhanced / f"{stem}.pt").is_file() for stem in stems):
        raise SplatentError(
            f"{enhanced} holds no enhanced latent of the {len(stems)} test views of {layout.nvs} "
            f"({stems[0]}.pt, ...); pass the folder `splatent enhance` wrote (OUTPUT_DIR/enhanced) or leave out --enhanced")
    (output / "sheets").mkdir(parents=True, exist_ok=True)

    def decode(latent: Path | torch.Tensor) -> torch.Tensor:
        latent = load_latent(latent) if isinstance(latent, Path) else latent
        with torch.no_grad():
            return codec.decode(latent[None].to(dev))[0].float().clamp(0, 1)

    per_view: dict[str, dict[str, dict[str, float]]] = {}
    sheets: dict[str, str] = {}
    collected: dict[str, list[torch.Tensor]] = {}  # for FID: every view's images per kind, and the photos
    lines = list(notes) or [f"Scene {scene.root}, {len(stems)} held-out test views, codec {info.get('codec')}."]
    fid_metric = _fid_metric(fid, fid_weights, fid_metric, dev, lines)
    for done, stem in enumerate(stems, 1):
        render = load_latent(layout.latent("nvs", stem))
        images = {"render": decode(render), "ceiling": decode(layout.latent("nvs_gt", stem))}
        if enhanced is not None and (enhanced / f"{stem}.pt").is_file():
            images["enhanced"] = decode(_enhanced_latent(enhanced / f"{stem}.pt", render, layout.latent("nvs", stem)))
        h, w = images["render"].shape[-2:]
        gt = ground_truth_image(scene.camera(stem), h, w, dev)
        per_view[stem] = {k: image_scores(img, gt, lpips_model) for k, img in images.items()}
        if fid_metric is not None:
            for kind, image in {**images, "photo": gt}.items():
                collected.setdefault(kind, []).append(image.cpu())
        columns = [("ground truth", _to_image(gt)), ("codec ceiling", _to_image(images["ceiling"])),
                   ("render", _to_image(images["render"]))]
        if "enhanced" in images:
            columns.append(("enhanced", _to_image(images["enhanced"])))
        columns += [(f"ref {p.stem}", _to_image(decode(p))) for p in refs.get(stem, []) if p.is_file()]
        sheet_path = output / "sheets" / f"{stem}.png"
        buf = _png_bytes(contact_sheet(columns))
        atomic_write_bytes(sheet_path, buf)
        sheets[stem] = f"sheets/{stem}.png"
        if progress is not None:
            progress(done, len(stems))
    means = {kind: {m: float(np.mean([per_view[v][kind][m] for v in per_view if kind in per_view[v]]))
                    for m in ("psnr", "ssim", "lpips") if any(m in per_view[v].get(kind, {}) for v in per_view)}
             for kind, _, _ in KINDS if any(kind in per_view[v] for v in per_view)}
    covered = sum("enhanced" in scores for scores in per_view.values())
    if 0 < covered < len(per_view):  # the table's means would otherwise read as over the same views
        lines.append(f"Enhanced views: {covered} of the {len(per_view)} test views; the enhanced mean is over those "
                     f"{covered} only.")
    if fid_metric is not None and len(stems) < 2:  # FID compares two distributions: one view makes none
        lines.append(f"FID not computed: it needs at least 2 test views, {layout.nvs} holds {len(stems)}.")
    elif fid_metric is not None:
        photos = collected.pop("photo")
        for kind, value in fid_scores(fid_metric, photos, collected).items():
            means.setdefault(kind, {})["fid"] = value
        lines.append(f"FID over {len(photos)} views against the photos (Inception-v3 pool features; few views "
                     f"make it a noisy number).")
    metrics = {"mean": means, "views": per_view, "lpips": lpips_net if lpips else None,
               "renders": str(renders.resolve()), "enhanced": str(enhanced.resolve()) if enhanced else None}
    atomic_write_json(output / "metrics.json", metrics)
    atomic_write_bytes(output / "metrics.md", markdown_table(means).encode())
    if not lpips:
        lines.append("LPIPS not computed (--no-lpips).")
    html_report(output / "report.html", title or f"Splatent evaluation: {scene.root.name}", metrics, sheets, lines)
    counts = {kind: sum(kind in scores for scores in per_view.values()) for kind in means}
    return EvalResult(output=output, report=output / "report.html", means=means, views=len(stems), counts=counts)


def _enhanced_latent(path: Path, render: torch.Tensor, render_path: Path) -> torch.Tensor:
    """The enhanced latent at ``path``, refused in one line unless it has its render's shape (enhanced from renders
    of another size or codec: it cannot be scored against this render's ground truth)."""
    latent = load_latent(path)
    if latent.shape != render.shape:
        raise SplatentError(f"{path} is a {tuple(latent.shape)} latent, its render {render_path} is "
                            f"{tuple(render.shape)}: the enhanced views are of other renders; enhance these renders "
                            f"again, or pass the --enhanced folder made from them")
    return latent


def _fid_metric(fid: bool | None, weights, metric, device, notes: list[str]):
    """The FID metric to use, or None: ``fid=None`` without cached weights adds a note instead (and the images
    are not kept for it); ``fid=True`` lets the failure through."""
    if fid is False:
        return None
    if metric is not None:
        return metric
    try:
        return build_fid(device, weights, download=bool(fid))
    except SplatentError as exc:
        if fid:
            raise
        notes.append(str(exc))
        return None


def evaluate_folder(
    result_dir: str | Path,
    output: str | Path | None = None,
    enhanced: str | Path | None = None,
    dataset: str | Path | None = None,
    **options: Any,
) -> EvalResult:
    """:func:`evaluate_results` on a pipeline result folder (``renders/<scene>/``, ``enhanced/``,
    ``data/dataset.json``, report into ``eval/``) or on a render folder (``nvs/``, ``nvs_gt/``); the
    arguments given replace what is found. ``options`` go to :func:`evaluate_results`."""
    result_dir = Path(result_dir)
    renders = result_dir
    if not RenderLayout(renders).nvs.is_dir():  # a pipeline folder: renders/<scene>/
        found = [p for p in sorted(RunLayout(result_dir, "").renders_root.glob("*")) if RenderLayout(p).nvs.is_dir()]
        if not found:
            raise SplatentError(f"{result_dir} holds neither nvs/ nor renders/<scene>/nvs/; pass a render or pipeline folder")
        renders = _scene_renders(result_dir, found)
    run = RunLayout(result_dir, renders.name)
    if enhanced is None and any(run.enhanced.glob("*.pt")):  # an empty one: no enhancer ran
        enhanced = run.enhanced if not _older_than_renders(run.enhanced, renders) else None
    dataset = dataset or (run.dataset if run.dataset.is_file() else None)
    return evaluate_results(renders, output or run.eval, enhanced=enhanced, dataset=dataset, **options)


def _older_than_renders(enhanced: Path, renders: Path) -> bool:
    """Whether an enhanced view predates its render: a later run rendered again and stopped before enhancing
    (no enhancer given), so the folder's enhanced views are of other renders; said, and left out."""
    nvs = RenderLayout(renders).nvs
    for view in sorted(enhanced.glob("*.pt")):
        render = nvs / view.name
        if render.is_file() and render.stat().st_mtime_ns > view.stat().st_mtime_ns:
            logger.warning("%s predates its render %s (the renders were made again and not enhanced since): scoring "
                           "the renders without enhanced views; run the enhance stage again, or pass --enhanced",
                           view, render)
            return True
    return False


def _scene_renders(result_dir: Path, found: list[Path]) -> Path:
    """The render folder of the scene ``pipeline.json`` says the folder's last run read (a run over another scene
    leaves the first one's renders beside it); the only one found, else one clear error."""
    record = result_dir / "pipeline.json"
    try:
        scene_path = (json.loads(record.read_text()).get("config") or {}).get("scene_path") if record.is_file() else None
    except (json.JSONDecodeError, AttributeError):
        scene_path = None
    if scene_path:
        name = Path(scene_path).expanduser().resolve().name
        for renders in found:
            if renders.name == name:
                return renders
    if len(found) > 1:
        raise SplatentError(
            f"{RunLayout(result_dir, '').renders_root} holds the renders of {len(found)} scenes "
            f"({', '.join(p.name for p in found)}); pass one of them, with --enhanced and --dataset where they belong to it")
    return found[0]


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
