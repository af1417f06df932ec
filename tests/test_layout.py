"""Arrows point down: the core imports no plugin, judges and engines do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(("folder", "forbidden"), [("harness/engines", "harness.judges"),
                                                   ("harness/judges", "harness.engines")])
def test_judges_and_engines_do_not_import_each_other(folder, forbidden):
    offenders = {f"{path.relative_to(ROOT)} -> {name}" for path in files(folder) for name in imports(path)
                 if name == forbidden or name.startswith(forbidden + ".")}
    assert not offenders


def test_the_core_imports_no_plugin():
    core = [p for p in files("harness") if "experiments" not in p.relative_to(ROOT).parts]
    offenders = {f"{path.relative_to(ROOT)} -> {name}" for path in core for name in imports(path)
                 if name.split(".")[0] in ("attacks", "defenses", "benchmarks")}
    assert not offenders
