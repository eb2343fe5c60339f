"""The enhancer's checkpoint formats, as a mixin the model class inherits (diffusers' ``ModelMixin`` pattern).

diffusers keeps ``save_pretrained`` / ``from_pretrained`` in ``models/modeling_utils.py``, written against
``cls`` and ``self``, and every model class inherits them; the model modules import the base, never the
reverse. Here :class:`PretrainedMixin` plays that part: ``enhancer.py`` imports this module, this module
imports no model class, and :mod:`splatent_model.checkpoint` (the function API: ``load_enhancer``,
``save_enhancer``, ``convert_original_checkpoint``) imports ``enhancer.py``. So the arrows are
``checkpoint -> enhancer -> pretrained`` and no import hides inside a method.

A checkpoint folder holds::

    config.json                 # SplatentEnhancer config + {"weights": {"file", "delta"}}
    unet/config.json, unet/diffusion_pytorch_model.safetensors   # the UNet as diffusers saves it (full checkpoints)
    unet.safetensors            # only the weights differing from the base (delta; full ones before 0.5)
    prompt_embeds.safetensors   # optional: cached prompt embeddings, so inference needs no text encoder

An original checkpoint is a ``torch.save``'d dict ``{"state_dict_unet": {...}, "optimizer": {...}}``;
it is read with ``torch.load(weights_only=True)`` only, never unpickled freely (diffusers' counterpart is
``from_single_file``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from splatent_data import atomic_write_json

from .base import is_preset
from .configs import DEFAULT_PROMPT, DEFAULT_TIMESTEP, SD_SCALING_FACTOR, SD_TURBO, sd_turbo_unet_config
from .errors import CheckpointError
from .grid import grid_shape
from .step import alpha_bar

logger = logging.getLogger("splatent")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "unet.safetensors"  # delta checkpoints, and full ones written before 0.5
# Full checkpoints keep the UNet as diffusers does: UNet2DConditionModel.from_pretrained(CKPT, subfolder="unet")
UNET_FOLDER = "unet"
DIFFUSERS_WEIGHTS = f"{UNET_FOLDER}/diffusion_pytorch_model.safetensors"
PROMPTS_FILE = "prompt_embeds.safetensors"
ORIGINAL_SUFFIXES = (".pkl", ".pt", ".pth", ".ckpt", ".bin")
_STRIP_PREFIXES = ("module.", "_orig_mod.", "unet.")
# keys that configure a SplatentEnhancer, as opposed to file bookkeeping in config.json
CONFIG_KEYS = ("unet_config", "scheduler_config", "base_model", "timestep", "top_k", "layout", "prompt", "scale",
               "scaling_factor", "codec", "residual")


@contextlib.contextmanager
def on_meta():
    """Build modules without allocating or initialising weights that are about to be replaced."""
    with torch.device("meta"):
        yield


def _is_hub_id(text: str, path: Path) -> bool:
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.parent.is_dir()


def check_checkpoint_source(source: str | os.PathLike) -> None:
    """Raise the :class:`CheckpointError` of :meth:`PretrainedMixin.from_pretrained` for a source that names
    nothing (a mistyped path), without loading anything: a command checks its enhancer before hours of fitting
    and rendering rather than after them."""
    text = str(source)
    path = Path(text).expanduser()
    if is_preset(text) or path.is_file() or path.is_dir() or _is_hub_id(text, path):
        return
    raise CheckpointError(f"checkpoint {source} does not exist; pass a checkpoint folder, an original .pkl, "
                          f"a base model id such as {SD_TURBO}, or 'tiny'")


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``from_original`` for the enhancer.

    The class mixing it in provides ``unet``, ``prompt_cache``, ``config``, ``base_unet_state()`` and the
    constructors ``cls(**config)``, ``cls.tiny(**config)`` and ``cls.from_base(base_model, **config)``.
    """

    # ----------------------------------------------------------------- saving

    def save_pretrained(self, save_directory: str | os.PathLike, delta: bool = False,  # type: ignore[override]
                        dtype: torch.dtype | None = None, **_: Any) -> Path:
        """Write a checkpoint folder (each file atomically): ``config.json``, ``unet/`` (diffusers' layout; ``unet.safetensors`` for a delta) and the
        cached prompt embeddings.

        Args:
            save_directory: Folder to write (created).
            delta: Store only the UNet weights that differ from the base model's (needs the base weights).
            dtype: Store weights in this dtype (default: as they are).
        """
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        # fused projections (splatent_model.runtime) are a runtime layout, not weights of the model
        state = {k: v.detach() for k, v in self.unet.state_dict().items() if ".to_qkv." not in k and ".to_kv." not in k}
        if delta:
            base = self.base_unet_state()
            state = {k: v for k, v in state.items() if k not in base or not _same(v, base[k])}
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        # A full UNet goes where diffusers looks (unet/config.json + diffusion_pytorch_model.safetensors); a delta
        # is not a loadable UNet on its own and keeps the single file beside config.json.
        weights_file = WEIGHTS_FILE if delta else DIFFUSERS_WEIGHTS
        if not delta:
            (directory / UNET_FOLDER).mkdir(exist_ok=True)
            atomic_write_json(directory / UNET_FOLDER / CONFIG_FILE, {
                "_class_name": type(self.unet).__name__, "_diffusers_version": _diffusers_version(),
                **{k: _plain(v) for k, v in self.unet.config.items() if not k.startswith("_")}})
        _save_safetensors(directory / weights_file, state, {"delta": str(bool(delta)).lower(), "format": "pt"})
        # a folder re-saved in the other form must not keep the old weights beside the new ones
        (directory / (DIFFUSERS_WEIGHTS if delta else WEIGHTS_FILE)).unlink(missing_ok=True)
        if self.prompt_cache:
            prompts = sorted(self.prompt_cache)
            tensors = {f"embeds.{i}": self.prompt_cache[p].float() for i, p in enumerate(prompts)}
            _save_safetensors(directory / PROMPTS_FILE, tensors, {"prompts": json.dumps(prompts)})
        config = {"_class_name": type(self).__name__, **{k: _plain(self.config[k]) for k in CONFIG_KEYS}}
        config["weights"] = {"file": weights_file, "delta": bool(delta), "tensors": len(state)}
        atomic_write_json(directory / CONFIG_FILE, config)
        return directory

    # ----------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike,  # type: ignore[override]
                        base_model: str | None = None, torch_dtype: torch.dtype | None = None, **overrides: Any):
        """The enhancer in ``pretrained_model_name_or_path``, whatever it is:

        * ``tiny`` / ``small``: a seeded, untrained preset;
        * a checkpoint folder (``config.json`` + ``unet/`` or ``unet.safetensors``);
        * an original checkpoint file (``.pkl``: ``{"state_dict_unet": ...}``), on SD-Turbo's architecture;
        * a base model (hub id or diffusers folder with ``unet/``): untrained, SD-Turbo's own weights.

        Args:
            base_model: Where base weights come from (delta checkpoints, partial ``.pkl``s, the text
                encoder); default: the checkpoint's own ``base_model``, else SD-Turbo.
            torch_dtype: Cast the UNet to this dtype.
            overrides: Config values to change (``timestep``, ``top_k``, ``prompt``, ``scale``, ...).
        """
        source = pretrained_model_name_or_path
        text = str(source)
        path = Path(text).expanduser()
        if is_preset(text):
            model = cls.preset(text)
        elif path.is_dir() and (path / CONFIG_FILE).is_file() and _is_enhancer_folder(path):
            model = cls._from_folder(path, base_model)
        elif path.is_file():
            if path.name == CONFIG_FILE:
                return cls.from_pretrained(path.parent, base_model, torch_dtype, **overrides)
            if path.suffix.lower() == ".safetensors":
                raise CheckpointError(f"{path} is a bare weights file; pass its folder (with config.json) instead")
            model = cls.from_original(path, base_model=base_model or SD_TURBO)
        elif path.is_dir() and (path / "unet").is_dir():
            model = cls.from_base(str(path))
        elif path.is_dir():
            raise CheckpointError(
                f"{path} is neither a checkpoint folder (config.json + {DIFFUSERS_WEIGHTS} or {WEIGHTS_FILE}) nor a base model "
                f"(unet/, text_encoder/, ...); pass the folder `splatent train` or `splatent convert-ckpt` wrote")
        elif _is_hub_id(text, path):
            model = cls.from_base(text)
        else:
            check_checkpoint_source(source)
        if overrides:
            apply_overrides(model, **overrides)
        if torch_dtype is not None:
            torch.nn.Module.to(model, dtype=torch_dtype)
        return model.eval()

    @classmethod
    def _from_folder(cls, folder: Path, base_model: str | None):
        config = _read_config(folder, cls.__name__)
        weights = config.pop("weights", {}) or {}
        kwargs = {k: config[k] for k in CONFIG_KEYS if k in config}
        kwargs.setdefault("residual", False)  # written before 0.5: the plain one-step update, whatever the preset's default
        if base_model is not None:
            kwargs["base_model"] = str(base_model)
        weights_path = folder / weights.get("file", WEIGHTS_FILE)
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"cannot read {weights_path}: {exc}; the file is damaged, re-save it") from None
        if weights.get("delta", False):
            base = kwargs.get("base_model", SD_TURBO)
            settings = _without(kwargs, "unet_config", "base_model")
            channels = (kwargs.get("unet_config") or {}).get("in_channels")
            if channels is not None:  # a base UNet adapted to another codec's channel count
                settings["channels"] = int(channels)
            model = cls.preset(str(base), **settings) if is_preset(base) else cls.from_base(base, **settings)
            load_unet_state(model, state, weights_path, partial=True)
        else:
            with on_meta():
                model = cls(**kwargs)
            load_unet_state(model, state, weights_path, partial=False)
        model.prompt_cache.update(read_prompt_embeds(folder))
        return model

    @classmethod
    def from_original(cls, path: str | os.PathLike, base_model: str = SD_TURBO,
                      unet_config: dict[str, Any] | None = None, **config: Any):
        """An enhancer from an original ``.pkl``.

        A complete UNet state dict needs no base weights (SD-Turbo's architecture is
        built in code); a partial one (e.g. the original's ``save_model``, which keeps only
        some layers) is applied over the base model's weights, as the original's
        ``load_state_dict(strict=False)`` does.

        Args:
            unet_config: The UNet architecture (default: SD-Turbo's; ``tiny`` preset's for base ``tiny``).
            config: Enhancer settings; defaults are the original's pipeline (timestep 300, 3 references,
                ``--scale``).
        """
        path = Path(path)
        state = read_original_checkpoint(path)
        config = {"timestep": DEFAULT_TIMESTEP, "top_k": 3, "prompt": DEFAULT_PROMPT, "scale": True,
                  "scaling_factor": SD_SCALING_FACTOR, **config}
        if is_preset(base_model):
            model = cls.preset(str(base_model), **config)
            load_unet_state(model, state, path, partial=True)
            return model
        architecture = dict(unet_config or sd_turbo_unet_config())
        with on_meta():
            probe = cls(unet_config=architecture, base_model=str(base_model), **config)
        expected = set(probe.unet.state_dict())
        if expected <= set(state):
            load_unet_state(probe, state, path, partial=False)
            return probe
        missing = len(expected - set(state))
        logger.info("%s holds %d of %d UNet weights; the other %d come from %s",
                    path.name, len(expected & set(state)), len(expected), missing, base_model)
        model = cls.from_base(base_model, **config)
        load_unet_state(model, state, path, partial=True)
        return model


# --------------------------------------------------------------------------- helpers on any enhancer


def apply_overrides(model: Any, **overrides: Any) -> Any:
    """Change inference settings (``timestep``, ``top_k``, ``prompt``, ``scale``, ``scaling_factor``, ``codec``);
    ``None`` values are ignored. Architecture keys cannot change."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    fixed = {"unet_config", "scheduler_config", "base_model", "layout"} & set(overrides)
    unknown = set(overrides) - set(CONFIG_KEYS)
    if fixed or unknown:
        raise CheckpointError(f"cannot override {sorted(fixed | unknown)[0]!r} of a loaded enhancer")
    if "timestep" in overrides:
        alpha_bar(model.scheduler, int(overrides["timestep"]))
    if "top_k" in overrides:
        grid_shape(int(overrides["top_k"]) + 1)
    model.register_to_config(**overrides)
    return model


def read_prompt_embeds(folder: str | os.PathLike) -> dict[str, Tensor]:
    """``{prompt: [1, L, D] embedding}`` stored in a checkpoint folder (empty when there is none)."""
    path = Path(folder) / PROMPTS_FILE
    if not path.is_file():
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            prompts = json.loads((f.metadata() or {}).get("prompts", "[]"))
            return {p: f.get_tensor(f"embeds.{i}") for i, p in enumerate(prompts)}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; delete it and the prompt is re-encoded") from None


def read_original_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """The UNet weights of an original Splatent checkpoint, read without arbitrary unpickling.

    Accepts ``{"state_dict_unet": {name: tensor}, "optimizer": ...}`` (the original's
    ``save_ckpt``) or a plain ``{name: tensor}`` dict; ``module.``/``unet.`` prefixes are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((line for line in lines if "global" in line.lower()), None)
        if detail is None:  # not a disallowed class: the bytes are not a pickle at all
            raise CheckpointError(f"cannot read checkpoint {path}: a weights-only load refused it (not a file torch.save "
                                  f"wrote, or objects that a full load would run as code); re-save the weights with "
                                  f"torch.save on a machine you trust") from None
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain containers "
            f"({detail.strip()[:160]}), and unpickling them could run arbitrary code; re-save just "
            f"{{'state_dict_unet': unet.state_dict()}} with torch.save on a machine you trust") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "the file is empty or cut short"  # EOFError()
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}; is it a torch.save file?") from None
    if isinstance(obj, dict) and "state_dict_unet" in obj:
        state = obj["state_dict_unet"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        state = obj
    else:
        keys = sorted(obj, key=str)[:5] if isinstance(obj, dict) else type(obj).__name__  # keys may mix types
        raise CheckpointError(f"{path} is not a Splatent checkpoint: expected a dict with 'state_dict_unet' "
                              f"(found {keys})")
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'state_dict_unet' must be a non-empty dict of tensors")
    return _strip_prefixes({str(k): v for k, v in state.items()})


def load_unet_state(model: Any, state: dict[str, Tensor], source: Path, partial: bool) -> None:
    """Put ``state`` into the UNet, checking names and shapes; ``partial`` allows missing keys."""
    state = _strip_prefixes(state)
    expected = {k: v.shape for k, v in model.unet.state_dict().items()}
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{source} has {len(unexpected)} weights the UNet does not have (e.g. {unexpected[0]!r}); "
            f"it was trained on another architecture than {model.config.base_model}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k]):
            raise CheckpointError(f"{source}: weight {k!r} has shape {tuple(v.shape)}, the UNet expects "
                                  f"{tuple(expected[k])}; it was trained on another architecture")
    missing = sorted(set(expected) - set(state))
    if missing and not partial:
        raise CheckpointError(f"{source} lacks {len(missing)} UNet weights (e.g. {missing[0]!r}); "
                              f"the file is incomplete or is a delta checkpoint without its config")
    if not partial:
        model.unet.load_state_dict(state, strict=True, assign=True)
        return
    model.unet.load_state_dict(state, strict=False)


def _read_config(folder: Path, class_name: str) -> dict[str, Any]:
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not UTF-8 text, so not a checkpoint config; the file is "
                              f"damaged: re-save the checkpoint") from None
    if not isinstance(config, dict) or config.get("_class_name") != class_name:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not a Splatent enhancer config "
                              f"(_class_name {config.get('_class_name') if isinstance(config, dict) else None!r})")
    return config


def _strip_prefixes(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for k, v in state.items():
        for prefix in _STRIP_PREFIXES:
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.to(b.device, b.dtype), b)


def _plain(value: Any) -> Any:
    """Config values as plain JSON (diffusers' FrozenDict and tuples included)."""
    return json.loads(json.dumps(value, default=lambda o: dict(o) if hasattr(o, "items") else list(o)))


def _is_enhancer_folder(path: Path) -> bool:
    """A checkpoint folder of ours: its weights in the diffusers layout (0.5) or the single file (deltas, 0.4)."""
    return (path / DIFFUSERS_WEIGHTS).is_file() or (path / WEIGHTS_FILE).is_file()


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def _save_safetensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "CONFIG_FILE", "CONFIG_KEYS", "DIFFUSERS_WEIGHTS", "PROMPTS_FILE", "UNET_FOLDER", "PretrainedMixin", "WEIGHTS_FILE", "apply_overrides", "load_unet_state",
    "on_meta", "read_original_checkpoint", "read_prompt_embeds",
]
