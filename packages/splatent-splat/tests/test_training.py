
import pytest
import torch

from splatent_data import SplatentError
from splatent_splat import FeatureGaussians, camera_tensors
from splatent_splat.training import (
    Densifier, LearningRates, ViewSampler, list_checkpoints, load_checkpoint, save_checkpoint,
)


def test_sampler_visits_every_view_once_per_epoch_and_resumes_exactly():
    s = ViewSampler(7, seed=3)
    first = [s.next() for _ in range(7)]
    second = [s.next() for _ in range(4)]
    assert sorted(first) == list(range(7)) and first != list(range(7))
    state = s.state_dict()
    rest = [s.next() for _ in range(10)]
    t = ViewSampler(7, seed=99)
    t.load_state_dict(state)
    assert [t.next() for _ in range(10)] == rest
    assert len(set(second)) == 4
    with pytest.raises(SplatentError, match="no training views"):
        ViewSampler(0)


def test_means_rate_decays_exponentially_to_the_final_factor():
    rates = LearningRates(means=1e-3, means_final=0.01, scene_scale=2.0, steps=100)
    assert rates.means_at(0) == pytest.approx(2e-3)
    assert rates.means_at(50) == pytest.approx(2e-4)
    assert rates.means_at(100) == pytest.approx(2e-5)
    g = FeatureGaussians.create(torch.randn(5, 3), torch.zeros(5, 4), sh_degree=1)
    opts = rates.make_optimizers(g)
    assert set(opts) == set(g.params) and all(len(o.param_groups) == 1 for o in opts.values())
    assert opts["featN"].param_groups[0]["lr"] == pytest.approx(opts["feat0"].param_groups[0]["lr"] / 20)
    schedule = rates.make_scheduler(opts)  # torch's LambdaLR, stepped after each optimiser step
    lrs = []
    for _ in range(101):
        lrs.append(opts["means"].param_groups[0]["lr"])
        opts["means"].step()
        schedule.step()
    assert lrs == pytest.approx([rates.means_at(s) for s in range(101)])
    resumed = rates.make_optimizers(g)
    rates.make_scheduler(resumed, start_step=50)  # a resumed fit continues the schedule
    assert resumed["means"].param_groups[0]["lr"] == pytest.approx(2e-4)
    assert opts["scales"].param_groups[0]["lr"] == pytest.approx(rates.scales)


def _step(g, opts, dens, step, make_ring, target_value=5.0):
    cam = make_ring(4, 24, 18)[0]
    vm, ks = camera_tensors([cam])
    image, _, info = g.render(vm, ks, 24, 18, backend="torch")
    dens.pre_backward(g, opts, step, info)
    loss = (image - target_value).abs().mean()
    loss.backward()
    for o in opts.values():
        o.step()
        o.zero_grad(set_to_none=True)
    dens.post_backward(g, opts, step, info, lr_means=1e-4)


def test_default_strategy_grows_prunes_and_resets_on_the_torch_backend(make_ring):
    torch.manual_seed(0)
    g = FeatureGaussians.create(torch.randn(40, 3) * 0.3, torch.randn(40, 4), init_opacity=0.5)
    with torch.no_grad():
        g.params["opacities"][:5] = -10.0  # below prune_opa: pruned at the first refinement
    opts = LearningRates(steps=10).make_optimizers(g)
    dens = Densifier("default", refine_start=1, refine_stop=10, refine_every=2, reset_every=4, grow_grad2d=1e-6)
    dens.check(g, opts, "torch")
    for step in range(1, 5):
        _step(g, opts, dens, step, make_ring)
        if step == 2:
            assert len(g) > 40 - 5  # grew from the gradient statistics, pruned the transparent ones
            grown = len(g)
            assert set(opts) == set(g.params) and all(opts[k].param_groups[0]["params"][0] is g.params[k] for k in opts)
    assert len(g) >= grown
    # After the reset at step 4, no opacity exceeds 2 x prune_opa (gsplat 1.5.3 alone would skip it).
    assert torch.sigmoid(g.params["opacities"]).max() <= 2 * 0.005 + 1e-6


def test_mcmc_needs_gsplat_and_unknown_strategies_fail():
    g = FeatureGaussians.create(torch.randn(4, 3), torch.zeros(4, 4))
    opts = LearningRates().make_optimizers(g)
    with pytest.raises(SplatentError, match="mcmc needs gsplat"):
        Densifier("mcmc").check(g, opts, "torch")
    with pytest.raises(SplatentError, match="unknown densification"):
        Densifier("adc")


def test_checkpoints_are_atomic_keep_the_newest_and_load_without_pickle(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, {"step": step, "x": torch.arange(3), "meta": {"a": [1.5, None]}}, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 30]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    state = load_checkpoint(list_checkpoints(tmp_path)[-1][1])
    assert state["step"] == 30 and torch.equal(state["x"], torch.arange(3))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"step": 40, "x": Evil()}, tmp_path / "checkpoints" / "step_000040.pt")
    with pytest.raises(SplatentError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "checkpoints" / "step_000040.pt")


def test_an_unknown_strategy_is_refused_when_the_config_is_resolved():
    """It was refused only by the densifier, after the scene, its latents and 100 000 Gaussians were loaded."""
    from splatent_splat import StrategyConfig

    with pytest.raises(SplatentError, match="unknown densification strategy 'mcmcc'"):
        StrategyConfig(name="mcmcc").resolved(100)
    assert StrategyConfig(name="none").resolved(100).name == "none"
