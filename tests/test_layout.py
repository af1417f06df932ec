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
    offenders = {f"{path.relative_to(ROOT)} -> {name}" for path in files("harness") for name in imports(path)
                 if name.split(".")[0] in ("attacks", "defenses", "benchmarks", "experiments")}
    assert not offenders


def test_experiment_drivers_live_outside_the_core():
    """Every `experiment=<name>` driver is a class in the top-level `experiments/` package, none in `harness/`."""
    import yaml

    assert not (ROOT / "harness" / "experiments").exists()
    targets = {}
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        driver = (yaml.safe_load(path.read_text()) or {}).get("driver") or {}
        targets[path.stem] = driver.get("_target_", "")
    assert targets and all(t.startswith("experiments.") for t in targets.values()), targets
    for target in targets.values():
        module = ROOT / (target.rsplit(".", 1)[0].replace(".", "/") + ".py")
        assert module.is_file(), target


def test_experiment_drivers_get_attacks_and_defenses_from_config():
    """Drivers import the core only: their attacks and defenses come from the experiment's Hydra config."""
    offenders = {f"{path.relative_to(ROOT)} -> {name}" for path in files("experiments") for name in imports(path)
                 if name.split(".")[0] in ("attacks", "defenses", "benchmarks")}
    assert not offenders
