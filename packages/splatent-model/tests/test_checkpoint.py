from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file

from splatent_model import (
    CheckpointError, SplatentEnhancer, WeightsUnavailableError, convert_original_checkpoint, load_enhancer,
    load_original_checkpoint, read_original_checkpoint, save_enhancer,
)


def _trained(seed: int = 5) -> SplatentEnhancer:
    """The tiny enhancer with a few layers changed, as fine-tuning would."""
    model = SplatentEnhancer.tiny().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.unet.conv_in.weight.add_(torch.randn(model.unet.conv_in.weight.shape, generator=g) * 0.1)
        model.unet.conv_out.bias.add_(0.05)
    return model


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_saved_then_loaded_gives_identical_outputs(tmp_path, latents):
    model = _trained()
    model.encode_prompts([model.config.prompt])
    save_enhancer(model, tmp_path / "ckpt")
    loaded = load_enhancer(tmp_path / "ckpt")
    assert torch.equal(_outputs(model, latents), _outputs(loaded, latents))
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert {"base_model", "timestep", "top_k", "layout", "prompt", "scale"} <= set(config)
    assert config["timestep"] == 300 and config["top_k"] == 3 and config["layout"] == "grid"
    assert config["weights"]["delta"] is False
    # the prompt embedding travels with the checkpoint: no text encoder needed
    assert torch.equal(loaded.prompt_cache[model.config.prompt], model.prompt_cache[model.config.prompt])


def test_delta_checkpoint_holds_only_changed_weights(tmp_path, latents):
    model = _trained()
    model.save_pretrained(tmp_path / "delta", delta=True)
    stored = load_file(str(tmp_path / "delta" / "unet.safetensors"))
    assert set(stored) == {"conv_in.weight", "conv_out.bias"}
    loaded = SplatentEnhancer.from_pretrained(tmp_path / "delta")
    assert torch.equal(_outputs(model, latents), _outputs(loaded, latents))


def test_overrides_and_dtype(tmp_path):
    model = _trained()
    save_enhancer(model, tmp_path / "c", dtype=torch.bfloat16)
    loaded = load_enhancer(tmp_path / "c", timestep=199, top_k=1, scale=False)
    assert loaded.config.timestep == 199 and loaded.config.top_k == 1 and loaded.config.scale is False
    assert loaded.dtype == torch.bfloat16
    with pytest.raises(CheckpointError, match="outside the schedule"):
        load_enhancer(tmp_path / "c", timestep=1000)
    with pytest.raises(Exception, match="rectangle"):
        load_enhancer(tmp_path / "c", top_k=2)


def test_original_style_pkl_loads(tmp_path, latents):
    model = _trained()
    pkl = tmp_path / "model_1000.pkl"
    optimizer = torch.optim.AdamW(model.unet.parameters(), lr=1e-5)
    torch.save({"state_dict_unet": model.unet.state_dict(), "optimizer": optimizer.state_dict()}, pkl)
    loaded = load_original_checkpoint(pkl, base_model="tiny")
    assert torch.equal(_outputs(model, latents), _outputs(loaded, latents))
    # the original pipeline's settings are the defaults
    assert loaded.config.timestep == 300 and loaded.config.scale is True and loaded.config.top_k == 3


def test_partial_and_flat_pkls_apply_over_the_base(tmp_path, latents):
    model = _trained()
    sd = model.unet.state_dict()
    partial = {f"module.{k}": v for k, v in sd.items() if k.startswith(("conv_in", "conv_out"))}
    torch.save({"state_dict_unet": partial}, tmp_path / "partial.pkl")
    torch.save(partial, tmp_path / "flat.pkl")
    for name in ("partial.pkl", "flat.pkl"):
        loaded = load_original_checkpoint(tmp_path / name, base_model="tiny")
        assert torch.equal(_outputs(model, latents), _outputs(loaded, latents))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pkl_holding_an_arbitrary_object_is_refused(tmp_path, capsys):
    evil = tmp_path / "evil.pkl"
    torch.save({"state_dict_unet": {"conv_in.bias": torch.zeros(32)}, "extra": Payload()}, evil)
    with pytest.raises(CheckpointError, match="refusing to load .*arbitrary code"):
        read_original_checkpoint(evil)
    assert "must never run" not in capsys.readouterr().out


def test_bad_checkpoints_fail_with_one_line(tmp_path):
    torch.save({"optimizer": {}}, tmp_path / "no_unet.pkl")
    with pytest.raises(CheckpointError, match="state_dict_unet"):
        read_original_checkpoint(tmp_path / "no_unet.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_original_checkpoint(tmp_path / "junk.pkl")
    (tmp_path / "empty.pkl").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pkl: the file is empty or cut short"):
        read_original_checkpoint(tmp_path / "empty.pkl")
    torch.save({0: torch.zeros(1), "epoch": 3}, tmp_path / "mixed_keys.pkl")  # keys of two types: no sort order
    with pytest.raises(CheckpointError, match=r"state_dict_unet' \(found \[0, 'epoch'\]\)"):
        read_original_checkpoint(tmp_path / "mixed_keys.pkl")
    torch.save({"state_dict_unet": {"not_a_layer.weight": torch.zeros(1)}}, tmp_path / "other.pkl")
    with pytest.raises(CheckpointError, match="does not have"):
        load_original_checkpoint(tmp_path / "other.pkl", base_model="tiny")
    torch.save({"state_dict_unet": {"conv_in.bias": torch.zeros(7)}}, tmp_path / "shape.pkl")
    with pytest.raises(CheckpointError, match="shape"):
        load_original_checkpoint(tmp_path / "shape.pkl", base_model="tiny")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_enhancer(tmp_path / "missing")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="neither a checkpoint folder"):
        load_enhancer(tmp_path / "folder")


def test_damaged_config_is_named(tmp_path):
    save_enhancer(_trained(), tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_enhancer(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_bytes(b"\xff\xfe\x00{")  # overwritten with binary data
    with pytest.raises(CheckpointError, match="config.json is not UTF-8 text"):
        load_enhancer(tmp_path / "c")


def test_convert_writes_a_folder_that_loads_offline(tmp_path, latents):
    model = _trained()
    torch.save({"state_dict_unet": model.unet.state_dict()}, tmp_path / "ckpt.pkl")
    out = convert_original_checkpoint(tmp_path / "ckpt.pkl", tmp_path / "new", base_model="tiny", prompt="a fox")
    assert (out / "prompt_embeds.safetensors").is_file()
    loaded = load_enhancer(out)
    assert loaded.config.prompt == "a fox" and "a fox" in loaded.prompt_cache
    with torch.no_grad():
        assert torch.equal(model(latents, model.prompt_embeds("a fox")), loaded(latents))
        assert not torch.allclose(model(latents), loaded(latents))


def test_offline_base_model_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        load_enhancer("stabilityai/sd-turbo")
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "\n" not in message and "huggingface-cli download" in message and "--base-model" in message


@pytest.fixture
def base_folder(tmp_path):
    """A diffusers-layout base model (as `huggingface-cli download stabilityai/sd-turbo` gives), tiny-sized."""
    from splatent_model import make_scheduler, sd_turbo_scheduler_config, tiny_prompt_encoder

    root = tmp_path / "sd-tiny"
    SplatentEnhancer.tiny(seed=3).unet.save_pretrained(root / "unet")
    make_scheduler(sd_turbo_scheduler_config()).save_pretrained(root / "scheduler")
    encoder = tiny_prompt_encoder(seed=3)
    encoder.tokenizer.save_pretrained(root / "tokenizer")
    encoder.text_encoder.save_pretrained(root / "text_encoder")
    return root


def test_base_model_folder_loads_through_the_hub_path(tmp_path, base_folder, latents):
    model = load_enhancer(base_folder)
    assert model.config.base_model == str(base_folder)
    assert torch.equal(model.unet.conv_in.weight, SplatentEnhancer.tiny(seed=3).unet.conv_in.weight)
    embeds = model.prompt_embeds()  # tokenizer and text encoder come from the folder
    assert embeds.shape == (1, 77, 32)
    with torch.no_grad():
        model.unet.conv_out.bias.add_(0.1)
        expected = model(latents)
    model.save_pretrained(tmp_path / "delta", delta=True)
    assert set(load_file(str(tmp_path / "delta" / "unet.safetensors"))) == {"conv_out.bias"}
    reloaded = load_enhancer(tmp_path / "delta")
    with torch.no_grad():
        assert torch.equal(reloaded(latents), expected)
    with pytest.raises(WeightsUnavailableError, match="has no unet/ folder"):
        load_enhancer(tmp_path / "delta", base_model=str(tmp_path))


# --------------------------------------------------------------------------- codecs of other channel counts


def _latents(channels: int) -> torch.Tensor:  # [B=2, V=4, C, 8, 8]
    return torch.randn(2, 4, channels, 8, 8, generator=torch.Generator().manual_seed(1))


def test_tiny_enhancer_for_32_channel_latents_records_them(tmp_path):
    model = SplatentEnhancer.tiny(channels=32).eval()
    assert model.channels == 32
    out = _outputs(model, _latents(32))
    assert out.shape == (2, 32, 8, 8) and torch.isfinite(out).all()
    save_enhancer(model, tmp_path / "c32")
    config = json.loads((tmp_path / "c32" / "config.json").read_text())
    assert config["unet_config"]["in_channels"] == 32 and config["unet_config"]["out_channels"] == 32
    loaded = load_enhancer(tmp_path / "c32")
    assert loaded.channels == 32
    assert torch.equal(_outputs(loaded, _latents(32)), out)


def test_base_unet_adapted_to_32_channels_keeps_its_pretrained_middle(tmp_path, base_folder):
    base = load_enhancer(base_folder)
    model = SplatentEnhancer.from_base(str(base_folder), channels=32)
    assert model.channels == 32 and model.unet.conv_in.in_channels == 32 and model.unet.conv_out.out_channels == 32
    assert torch.count_nonzero(model.unet.conv_out.weight) == 0  # zero-initialised output projection
    for name, weight in base.unet.state_dict().items():
        if not name.startswith(("conv_in.", "conv_out.")):
            assert torch.equal(model.unet.state_dict()[name], weight), name
    x = _latents(32)
    with torch.no_grad():
        model.unet.conv_out.weight.normal_(0, 0.01)
        expected = model(x)
    # a delta stores the new convolutions (their shapes differ from the base's) and loads back exactly
    model.save_pretrained(tmp_path / "delta32", delta=True)
    stored = load_file(str(tmp_path / "delta32" / "unet.safetensors"))
    assert {"conv_in.weight", "conv_in.bias", "conv_out.weight", "conv_out.bias"} <= set(stored)
    reloaded = load_enhancer(tmp_path / "delta32")
    with torch.no_grad():
        assert torch.equal(reloaded(x), expected)


class _Codec:
    name, channels = "taef2", 32


def test_a_4_channel_enhancer_refuses_32_channel_latents_in_one_line():
    from splatent_model import EnhanceInputError

    model = SplatentEnhancer.tiny()
    with pytest.raises(EnhanceInputError) as info:
        model.check_codec(_Codec(), source="checkpoint ckpt/enhancer")
    message = str(info.value)
    assert "\n" not in message and "4-channel" in message and "32-channel" in message and "taef2" in message
    with pytest.raises(EnhanceInputError, match="32 channels but the enhancer's UNet takes 4"):
        model(_latents(32))


def test_a_folder_written_before_residual_loads_as_the_plain_update(tmp_path):
    """0.4 checkpoints have no ``residual`` key: they load with the plain one-step update, also for the ``small``
    preset whose new default is residual (its delta is stored against the non-zeroed output convolution)."""
    import json

    from splatent_model import SplatentEnhancer

    old = SplatentEnhancer.preset("small", channels=4, residual=False)
    folder = old.save_pretrained(tmp_path / "old", delta=True)
    config = json.loads((folder / "config.json").read_text())
    del config["residual"]
    (folder / "config.json").write_text(json.dumps(config))
    again = SplatentEnhancer.from_pretrained(folder)
    assert again.config.residual is False
    state, expected = again.unet.state_dict(), old.unet.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_a_full_checkpoint_is_a_diffusers_unet_folder_too(tmp_path):
    """``UNet2DConditionModel.from_pretrained(CKPT, subfolder="unet")`` loads the enhancer's UNet as saved; a
    delta keeps the single file (not a UNet on its own); re-saving in the other form leaves no stale weights;
    folders of 0.4 (``unet.safetensors`` beside ``config.json``) still load."""
    from diffusers import UNet2DConditionModel

    from splatent_model import SplatentEnhancer

    model = SplatentEnhancer.tiny(seed=3)
    folder = model.save_pretrained(tmp_path / "ckpt")
    assert (folder / "unet" / "config.json").is_file() and not (folder / "unet.safetensors").exists()
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
    expected = model.unet.state_dict()
    assert all(torch.equal(unet.state_dict()[k], expected[k]) for k in expected)
    assert torch.equal(SplatentEnhancer.from_pretrained(folder).unet.conv_out.weight, model.unet.conv_out.weight)
    model.save_pretrained(folder, delta=True)
    assert (folder / "unet.safetensors").is_file() and not (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()
    assert torch.equal(SplatentEnhancer.from_pretrained(folder).unet.conv_out.weight, model.unet.conv_out.weight)
    old = tmp_path / "old"  # the 0.4 layout
    old.mkdir()
    (old / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()),
                                                 "weights": {"file": "unet.safetensors", "delta": False}}))
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in expected.items()}, str(old / "unet.safetensors"))
    assert torch.equal(SplatentEnhancer.from_pretrained(old).unet.conv_out.weight, model.unet.conv_out.weight)
