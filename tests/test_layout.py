"""The package's shape, read from its own imports (with ast, nothing is
imported): no import cycle, and the layers point one way. The commands
(elastic.commands, elastic.cli) sit at the edge and the app's helpers
(elastic.ui) beside them; the methods and the core import neither, and only
elastic.ui imports streamlit."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "elastic"
EDGE = ("elastic.cli", "elastic.__main__", "elastic.commands")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The modules `name` imports anywhere in its code (also inside functions):
    elastic modules by name, other packages by their top-level name. `from a
    import b` is module a.b when that is a module, else a."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            found.update(subs or [base])
    return {n if n.split(".")[0] == "elastic" else n.split(".")[0] for n in found} - {name}


GRAPH = {name: {m for m in imports(name) if m in MODULES} for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
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


def in_layer(name: str, layer: str) -> bool:
    return name == layer or name.startswith(layer + ".")


def test_the_checker_sees_a_cycle_and_the_package_has_none():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert {"elastic.methods.grow", "elastic.commands.grow", "elastic.cli"} <= set(GRAPH)
    assert "elastic.methods.grow" in GRAPH["elastic.commands.grow"]     # the checker reads real imports
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not any(in_layer(n, e) for e in EDGE)))
def test_below_the_edge_nothing_imports_the_commands(name):
    upward = sorted(m for m in GRAPH[name] if any(in_layer(m, e) for e in EDGE))
    assert upward == [], f"{name} imports {upward}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not in_layer(n, "elastic.ui")))
def test_only_the_app_helpers_know_streamlit(name):
    found = imports(name)
    assert "streamlit" not in found and not any(in_layer(m, "elastic.ui") for m in found), name
