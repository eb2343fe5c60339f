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


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of import nodes under ``if TYPE_CHECKING:``, which never run and so close no loop."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _package_graph(package: str) -> dict[str, set[str]]:
    """``module -> modules of the same package it imports``, at module top or inside functions alike."""
    src = _src(package)
    paths = {_module_name(p, src): p for p in sorted(src.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = _type_checking_nodes(tree)
        home = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = home.split(".")[: len(home.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import sub` imports the submodule; `from pkg import name` imports pkg.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in paths:  # `import pkg.mod.attr` -> pkg.mod
                    target = target.rpartition(".")[0]
                if target and target != module:
                    graph[module].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop of ``graph`` as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_cycles_within_a_package(package):
    """An import inside a function hides a loop from Python, not from this test (scene.py <-> parsers,
    codec.py <-> codecs were such loops: the factories now sit above the types they build)."""
    cycle = _find_cycle(_package_graph(package))
    assert cycle is None, f"import loop in {package}: {' -> '.join(cycle)}"
