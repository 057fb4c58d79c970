"""The package's shape: dependencies point one way (cli → engine → tasks / data / multigrid / models
→ config) and no module imports itself back through others, counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vidgrid"

LAYERS = {
    "cli": 5,
    "engine": 4,
    "tasks": 3, "data": 2, "multigrid": 2, "models": 2,
    "config": 1, "torch_file": 1, "errors": 0, "types": 0, "registry": 0,
}
"""Rank of each top-level module or folder: a module may import only ranks below its own, and its
own folder. Tasks turn annotation samples into targets, so they sit above data."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """vidgrid modules imported anywhere in ``path`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vidgrid"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("vidgrid"))
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


CLI_LAYER = {"__main__", "schedule_report", "api"}
"""Top-level modules of the command-line layer besides ``cli`` itself."""


def layer(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return "cli" if name in CLI_LAYER else name


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_dependencies_point_one_way():
    upward = [
        f"{src} imports {dst}"
        for src, deps in import_graph().items()
        for dst in deps
        if layer(src) in LAYERS and layer(dst) in LAYERS and layer(src) != layer(dst)
        and LAYERS[layer(dst)] >= LAYERS[layer(src)]
    ]
    assert upward == []


def test_every_top_level_module_has_a_layer():
    assert sorted({layer(m) for m in import_graph()} - {"__init__"} - set(LAYERS)) == []


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert cycles(graph) == expected
