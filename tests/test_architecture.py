"""Cross-package rules: dependencies point one way, and packages never import the CLI."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Each package may import only the packages to its left (data <- latents/splat/model <- train <- pipeline <- cli).
ALLOWED = {
    "splatent_data": set(),
    "splatent_latents": {"splatent_data"},
    "splatent_splat": {"splatent_data", "splatent_latents"},
    "splatent_model": {"splatent_data", "splatent_latents"},
    "splatent_train": {"splatent_data", "splatent_latents", "splatent_model"},
    "splatent_pipeline": {"splatent_data", "splatent_latents", "splatent_splat", "splatent_model", "splatent_train"},
    "splatent_cli": {"splatent_data", "splatent_latents", "splatent_splat", "splatent_model", "splatent_train",
                     "splatent_pipeline"},
}


def _src(module: str) -> Path:
    folder = "apps" if module == "splatent_cli" else "packages"
    return REPO / folder / module.replace("_", "-") / "src" / module


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m.startswith("splatent_")}


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_point_one_way(module):
    for path in sorted(_src(module).rglob("*.py")):
        bad = _imports(path) - ALLOWED[module] - {module}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_declared_dependencies_match_imports(module):
    project = tomllib.loads((_src(module).parents[1] / "pyproject.toml").read_text())["project"]
    declared = {d.split(">")[0].split("=")[0].split("[")[0].strip().replace("-", "_") for d in project["dependencies"]}
    used = set().union(*(_imports(p) for p in _src(module).rglob("*.py"))) - {module}
    assert used <= declared, f"{module} imports {sorted(used - declared)} without declaring them"
