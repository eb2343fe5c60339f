"""Each command's options against its config dataclass: a flag is declared once, in the command's signature,
and must name a config field (or a flat alias of a nested one) with that field's default."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import typer

from splatent_cli.main import app

# command -> (config class, flat aliases -> their default, renames param -> field, parameters that are not
# config fields: inputs, outputs and run control)
def _fit():
    from splatent_cli.commands.fit import RENAMES
    from splatent_splat import FLAT_OPTIONS, FitConfig

    base = FitConfig()
    aliases = {k: getattr(getattr(base, g), n) for k, (g, n) in FLAT_OPTIONS.items()}
    return FitConfig, aliases, RENAMES, {"scene", "source_path", "output", "resume", "overwrite", "build_kernels"}


def _train():
    from splatent_cli.commands.train import RENAMES
    from splatent_train import TrainConfig

    return TrainConfig, {}, RENAMES, {"set_grads_to_none"}


def _pipeline():
    from splatent_pipeline import PipelineConfig

    # --strategy goes to the fit's options (PipelineConfig.fit_options)
    # the --scenes options build a BatchConfig (splatent_pipeline.batch)
    batch = {"scenes", "pairs", "folds", "test_scenes", "test_fraction", "seed", "benchmark_path"}
    return PipelineConfig, {}, {}, {"strategy", "protocol", *batch}


CONFIGURED = {"fit": _fit, "pipeline": _pipeline, "train": _train}


def _command(name: str):
    return next(c.callback for c in app.registered_commands if (c.name or c.callback.__name__) == name)


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return ...


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_options_are_config_fields_with_their_defaults(name):
    config, aliases, renames, not_config = CONFIGURED[name]()
    fields = {f.name: _default(f) for f in dataclasses.fields(config)}
    defaults = {**fields, **aliases}
    for param, p in inspect.signature(_command(name)).parameters.items():
        if param in not_config:
            continue
        key = renames.get(param, param)
        assert key in defaults, f"`splatent {name}` option {param!r} is not a {config.__name__} field"
        option_default = p.default.default if isinstance(p.default, (typer.models.OptionInfo, typer.models.ArgumentInfo)) else p.default
        field_default = defaults[key]
        if option_default is ... or field_default is ...:  # required here or there: nothing to compare
            continue
        assert option_default == field_default, (
            f"`splatent {name}` option {param!r} defaults to {option_default!r}, {config.__name__}.{key} to {field_default!r}")


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_config_options_pass_every_value_through(name, monkeypatch):
    """The command body builds its config from its parameters: a changed option reaches the config."""
    from splatent_cli.options import config_options

    config, aliases, renames, not_config = CONFIGURED[name]()
    command = _command(name)
    params = [p for p in inspect.signature(command).parameters if p not in not_config]
    values = {p: object() for p in params}
    got = config_options(command, values, config, aliases, renames)
    assert set(got) == {renames.get(p, p) for p in params}
    assert all(got[renames.get(p, p)] is values[p] for p in params)


def _long_flags(command) -> list[tuple[str, list[str]]]:
    out = []
    for param in command.params:
        if param.param_type_name == "option":  # typer may bring its own click: no isinstance
            out.append((param.name, [o for o in param.opts + param.secondary_opts if o.startswith("--")]))
    return out


def _walk(group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _walk(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_multi_word_flag_has_both_spellings():
    """`--top_k` and `--top-k`: the original scripts' spellings and the usual CLI ones both work."""
    root = typer.main.get_command(app)
    commands = dict(_walk(root))
    assert {"fit", "train", "scene sfm", "enhance"} <= set(commands) and len(_long_flags(commands["train"])) > 50
    missing = []
    for name, cmd in commands.items():
        for param, flags in _long_flags(cmd):
            spelt = set(flags)
            for flag in flags:
                body = flag[2:]
                if "_" in body or "-" in body:
                    for other in (body.replace("_", "-"), body.replace("-", "_")):
                        if f"--{other}" not in spelt:
                            missing.append(f"splatent {name} {flag} (no --{other})")
    assert not missing, "\n".join(missing)
