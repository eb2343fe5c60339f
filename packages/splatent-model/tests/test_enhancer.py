from __future__ import annotations

import pytest
import torch

from splatent_model import (
    SD_SCALING_FACTOR, EnhanceInputError, SplatentEnhancer, alpha_bar, tile_views,
)


def test_output_is_the_target_tile(tiny_model, latents):
    with torch.no_grad():
        out = tiny_model(latents)
        every = tiny_model(latents, all_views=True)
    assert out.shape == (2, 4, 8, 8) and out.dtype == torch.float32
    assert every.shape == latents.shape
    assert torch.equal(every[:, 0], out)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("ref", [1, 2, 3])
def test_target_output_depends_on_each_reference(tiny_model, latents, ref):
    changed = latents.clone()
    changed[:, ref] += torch.randn_like(changed[:, ref])
    with torch.no_grad():
        before, after = tiny_model(latents), tiny_model(changed)
    assert (before - after).abs().max() > 1e-3


def test_far_reference_reaches_the_target_through_attention(tiny_model):
    # 2x3 grid of 8x8 tiles: the bottom-right tile is 16 latent pixels from the target;
    # with attention removed the UNet's convolutions alone would not see it.
    x = torch.randn(1, 6, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[:, 5] = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        delta = (tiny_model(x) - tiny_model(y)).abs()
    assert delta.max() > 1e-3
    assert (delta > 1e-4).float().mean() > 0.5  # global: most of the target tile changes, not a border strip


def test_batching_does_not_mix_samples(tiny_model, latents):
    with torch.no_grad():
        both = tiny_model(latents)
        first = tiny_model(latents[:1])
        other = latents.clone()
        other[1] = torch.randn_like(other[1])
        changed_second = tiny_model(other)
    assert torch.allclose(both[0], first[0], atol=1e-5)
    assert torch.allclose(changed_second[0], both[0], atol=1e-5)


def test_tiny_preset_is_seeded():
    a, b = SplatentEnhancer.tiny(), SplatentEnhancer.tiny()
    for (ka, va), (kb, vb) in zip(a.unet.state_dict().items(), b.unet.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.unet.conv_in.weight, SplatentEnhancer.tiny(seed=1).unet.conv_in.weight)


def test_views_that_make_no_rectangle_are_a_clear_error(tiny_model):
    with pytest.raises(EnhanceInputError, match="top_k 1, 3 or 5"):
        tiny_model(torch.randn(1, 3, 4, 8, 8))
    with pytest.raises(EnhanceInputError, match="channels"):
        tiny_model(torch.randn(1, 2, 3, 8, 8))


class _Recorder(torch.nn.Module):
    """Stands in for the UNet: records its input and predicts zero noise."""

    def __init__(self, unet):
        super().__init__()
        self.inner, self.seen = unet, []
        self.config = unet.config

    def forward(self, sample, t, encoder_hidden_states=None, return_dict=True):
        self.seen.append((sample.clone(), int(t)))
        return (torch.zeros_like(sample),)


@pytest.mark.parametrize("scale", [True, False])
def test_scale_multiplies_inputs_and_divides_outputs(fresh_tiny, latents, scale):
    fresh_tiny.register_to_config(scale=scale)
    fresh_tiny.unet = _Recorder(fresh_tiny.unet)
    with torch.no_grad():
        out = fresh_tiny(latents, all_views=True)
    factor = SD_SCALING_FACTOR if scale else 1.0
    seen, t = fresh_tiny.unet.seen[0]
    assert t == 300
    assert torch.allclose(seen, tile_views(latents) * factor, atol=1e-6)
    # zero noise: x0 = x_t / sqrt(abar); the scale cancels on the way out
    a = alpha_bar(fresh_tiny.scheduler, 300)
    assert torch.allclose(out, latents / a ** 0.5, atol=1e-5)


def test_timestep_override_changes_the_output(tiny_model, latents):
    with torch.no_grad():
        assert not torch.allclose(tiny_model(latents), tiny_model(latents, timestep=199))


def test_prompt_is_encoded_once_and_the_encoder_released(fresh_tiny):
    embeds = fresh_tiny.prompt_embeds()
    assert embeds.shape == (1, 77, 32)
    assert fresh_tiny._prompt_encoder is None
    fresh_tiny.encode_prompts(["another prompt", fresh_tiny.config.prompt])
    assert set(fresh_tiny.prompt_cache) == {fresh_tiny.config.prompt, "another prompt"}
    assert not torch.equal(fresh_tiny.prompt_embeds("another prompt"), embeds)
    assert fresh_tiny.prompt_embeds() is fresh_tiny.prompt_cache[fresh_tiny.config.prompt]


def test_gradients_reach_the_unet(fresh_tiny, latents):
    fresh_tiny.train().requires_grad_(True)
    fresh_tiny(latents[:1]).square().mean().backward()
    assert fresh_tiny.unet.conv_in.weight.grad.abs().sum() > 0


def test_a_residual_preset_starts_as_the_identity_and_learns_a_correction(latents, tmp_path):
    """``residual``: the untrained preset returns its input (``small`` is residual by default, ``tiny`` not); one
    optimiser step moves it off the identity; the setting survives a save and reload, delta checkpoints
    included."""
    plain = SplatentEnhancer.tiny().eval()
    assert not plain.config.residual
    with torch.no_grad():
        assert not torch.allclose(plain(latents), latents[:, 0], atol=1e-3)
    model = SplatentEnhancer.tiny(residual=True)
    assert model.config.residual and model.unet.conv_out.weight.abs().sum() == 0
    with torch.no_grad():
        assert torch.allclose(model(latents), latents[:, 0], atol=1e-5)
        assert torch.allclose(model(latents, all_views=True), latents, atol=1e-5)
    optimiser = torch.optim.SGD(model.unet.parameters(), lr=1e-2)
    model.train()
    (model(latents) - latents[:, 0].flip(-1)).square().mean().backward()
    optimiser.step()
    model.eval()
    with torch.no_grad():
        moved = model(latents)
    assert not torch.allclose(moved, latents[:, 0], atol=1e-4)
    for delta in (False, True):
        model.save_pretrained(tmp_path / f"ckpt{delta}", delta=delta)
        again = SplatentEnhancer.from_pretrained(tmp_path / f"ckpt{delta}")
        assert again.config.residual
        with torch.no_grad():
            assert torch.allclose(again.eval()(latents), moved, atol=1e-5)
    assert SplatentEnhancer.preset("small", channels=4).config.residual


def test_an_enhancer_trained_on_one_learned_latent_space_refuses_another():
    from types import SimpleNamespace

    model = SplatentEnhancer.tiny(codec={"name": "sd-vae"})
    model.check_codec(SimpleNamespace(name="sd-vae", channels=4))
    model.check_codec(SimpleNamespace(name="tiny-random", channels=4))  # the test codec: never refused by name
    model.check_codec(SimpleNamespace(name="pca", channels=4))
    with pytest.raises(EnhanceInputError, match="trained on sd-vae latents .* taef2"):
        model.check_codec(SimpleNamespace(name="taef2", channels=4))
    with pytest.raises(EnhanceInputError, match="4-channel"):
        SplatentEnhancer.tiny().check_codec(SimpleNamespace(name="taef2", channels=32))
