"""Which Gaussians a command reads, and what is known of them.

A ``splatent fit`` folder says everything in its ``fit.json``. Any other 3DGS
model is read as an RGB model of a scene the user names (``--scene``):

* INRIA 3DGS's output folder (``point_cloud/iteration_N/point_cloud.ply``, the
  highest N; its ``cfg_args`` names the scene and image folder, read as text,
  never evaluated) or any ``.ply`` file with the 3DGS properties;
* nerfstudio's ``ns-export gaussian-splat`` file (``splat.ply``): its Gaussians
  live in nerfstudio's normalised world, so the ``dataparser_transforms.json``
  of its run (beside the PLY or one folder up) maps the scene's cameras there.

Such a model's split is the scene's LLFF split (every 8th view a test view:
INRIA's ``--eval`` and ours).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splatent_data import Camera, Scene, SplatentError, load_scene, split_scene

from .fit import MANIFEST_FILE, MODEL_FILE, read_fit_manifest

logger = logging.getLogger("splatent")

DATAPARSER_TRANSFORMS = "dataparser_transforms.json"


def rasterize_options(info: dict[str, Any]) -> dict[str, str]:
    """The rasterizer options a model is seen with: those its fit trained and scored with (``fit.json``'s
    ``config.antialiased``); classic for a model without them (a foreign PLY)."""
    return {"rasterize_mode": "antialiased" if (info.get("config") or {}).get("antialiased") else "classic"}


@dataclass
class ModelSource:
    """A model's PLY, its ``fit.json`` (or what stands for it), and the map from the scene's world to the model's.

    ``info`` has the keys later stages read: ``scene``, ``images``, ``split`` (``train`` / ``test`` stems),
    ``target`` (``"rgb"`` for a foreign model), ``config`` (``rgb_scale``), ``latents``, ``applied_transform``.
    ``world_to_model`` is ``[4, 4]`` (``None``: the same world).
    """

    ply: Path
    info: dict[str, Any]
    fitted: bool
    world_to_model: np.ndarray | None = None
    scene: Scene | None = None  # the scene already parsed (a foreign model's), cameras in the model's world

    @property
    def path(self) -> Path:
        """What names the model: the fit folder, else the PLY."""
        return self.ply.parent if self.fitted else self.ply

    def load_scene(self, scene: str | Path | None = None) -> Scene:
        """The model's scene (``scene`` overrides the recorded path), its cameras in the model's world."""
        if scene is None and self.scene is not None:
            return self.scene
        path = Path(scene) if scene else Path(self.info["scene"])
        if not path.exists():
            where = f"recorded in {self.ply.parent / MANIFEST_FILE}" if self.fitted else "given"
            raise SplatentError(f"the scene {path} {where} is gone; pass --scene PATH")
        loaded = load_scene(path, images=self.info.get("images"))
        if self.world_to_model is not None:
            loaded.cameras = [in_world(c, self.world_to_model) for c in loaded.cameras]
        return loaded


def in_world(camera: Camera, transform: np.ndarray) -> Camera:
    """``camera`` in another world: ``transform`` (``[4, 4]``, a rotation, translation and uniform scale) maps
    the old world's points to the new one's."""
    c2w = transform @ camera.camtoworld
    scale = np.cbrt(np.linalg.det(transform[:3, :3]))
    c2w[:3, :3] /= scale  # the camera's axes stay unit length: the scale only moves its centre
    return dataclasses.replace(camera, camtoworld=c2w)


def _inria_ply(folder: Path) -> Path | None:
    runs = sorted(folder.glob("point_cloud/iteration_*/point_cloud.ply"),
                  key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    return runs[-1] if runs else None


def _cfg_args(folder: Path) -> dict[str, str]:
    """``source_path`` and ``images`` from INRIA's ``cfg_args`` (a printed argparse Namespace), by pattern."""
    path = folder / "cfg_args"
    if not path.is_file():
        return {}
    text = path.read_text(errors="replace")
    return {key: m.group(1) for key in ("source_path", "images")
            if (m := re.search(rf"\b{key}=['\"]([^'\"]*)['\"]", text))}


def _dataparser_transform(ply: Path) -> np.ndarray | None:
    for folder in (ply.parent, ply.parent.parent):
        path = folder / DATAPARSER_TRANSFORMS
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                matrix = np.vstack([np.asarray(data["transform"], dtype=np.float64).reshape(3, 4), [0, 0, 0, 1]])
                scale = float(data["scale"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise SplatentError(f"{path} is not nerfstudio's dataparser transform ({exc}); fix or remove it") from None
            logger.info("nerfstudio model: the scene's cameras go into its world through %s", path)
            return np.diag([scale, scale, scale, 1.0]) @ matrix
    return None


def open_model(model: str | Path, scene: str | Path | None = None, images: str | None = None,
               require_scene: bool = True) -> ModelSource:
    """The Gaussians at ``model`` (a fit folder, INRIA's output folder or a 3DGS ``.ply``) with their scene.

    Args:
        scene: The scene folder; needed for a model without ``fit.json`` (INRIA's ``cfg_args`` may name it).
        images: Image folder inside the scene (``images_4``) for a model without ``fit.json``.
        require_scene: ``False`` for a use of the Gaussians alone: a foreign model without a scene then has
            ``info["scene"]`` ``None`` and no split.
    """
    model = Path(model)
    if model.is_file() and (model.parent / MANIFEST_FILE).is_file():  # a fit folder's own PLY: the folder says more
        model = model.parent
    if model.is_dir() and (model / MANIFEST_FILE).is_file():
        info = read_fit_manifest(model)
        if scene:
            info = {**info, "scene": str(scene)}
        return ModelSource(ply=model / info.get("model", MODEL_FILE), info=info, fitted=True)
    if model.is_file() and model.suffix.lower() == ".ply":
        ply, cfg = model, _cfg_args(model.parent.parent.parent)
    elif model.is_dir() and (ply := _inria_ply(model)) is not None:
        cfg = _cfg_args(model)
    elif model.is_dir():
        raise SplatentError(f"{model} holds neither fit.json (a `splatent fit` folder) nor INRIA's "
                            f"point_cloud/iteration_N/point_cloud.ply; pass a model folder or a 3DGS .ply file")
    else:
        raise SplatentError(f"no model at {model}; pass a `splatent fit` folder, INRIA's output folder or a .ply")
    scene_path = Path(scene) if scene else (Path(cfg["source_path"]) if "source_path" in cfg else None)
    if scene_path is None and not require_scene:
        return ModelSource(ply=ply, info={"stage": "external", "scene": None, "target": "rgb", "latents": None,
                                          "applied_transform": None}, fitted=False,
                           world_to_model=_dataparser_transform(ply))
    if scene_path is None:
        raise SplatentError(f"{ply} has no fit.json: pass the scene it was trained on with --scene SCENE")
    images = images or cfg.get("images")
    if not scene_path.exists():
        raise SplatentError(f"the scene {scene_path} of {ply} does not exist; pass --scene SCENE")
    scn = load_scene(scene_path, images=images)
    split = split_scene(scn, "llff", 8)
    info = {"stage": "external", "scene": str(scene_path), "images": images, "target": "rgb",
            "split": {"mode": "llff", "every": 8, "train": list(split.train), "test": list(split.test)},
            "config": {"rgb_scale": 1.0}, "latents": None, "codec": None,
            "applied_transform": None if scn.applied_transform is None else scn.applied_transform.tolist()}
    world = _dataparser_transform(ply)
    if world is not None:
        scn.cameras = [in_world(c, world) for c in scn.cameras]
    return ModelSource(ply=ply, info=info, fitted=False, world_to_model=world, scene=scn)
