"""The benchmark scripts stay runnable: every name they import from elastic
exists (a refactor that moves one breaks the script only when it is run), and
each parses its options (`--help` runs its top-level imports)."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("bench_*.py"))


def _imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from elastic... import name`, at any depth of the script."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "elastic":
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_there_are_benchmarks():
    assert {p.name for p in BENCHMARKS} >= {"bench_speedup.py", "bench_train.py", "bench_live.py"}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_name_a_benchmark_imports_exists(path):
    missing = []
    for module, name in _imports(path):
        imported = importlib.import_module(module)
        if not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")     # a submodule
            except ImportError:
                missing.append(f"{module}.{name}")
    assert not missing, f"{path.name} imports names that do not exist: {', '.join(missing)}"


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_parses_its_options(path):
    done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
