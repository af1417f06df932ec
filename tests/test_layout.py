"""Arrows point down: no import circle between harness modules or between its rooms (subpackages), command lines
only in harness/cli, the core imports no plugin, engines and models import no judge."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
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


@pytest.mark.parametrize(("folder", "forbidden"), [("harness/engine", "harness.judge"),
                                                   ("harness/model", "harness.judge"),
                                                   ("harness/judge", "harness.training")])
def test_rooms_below_do_not_import_rooms_above(folder, forbidden):
    """Engines and models never import a judge (a classifier judge runs on an engine, not the reverse); judges never
    import the training room (the learned judge gets its trained classifier from a recipe Hydra hands it)."""
    assert files(folder), f"{folder}: no such room (renamed? update this test)"
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


def runtime_imports(path: Path, modules: set[str]) -> set[str]:
    """The harness modules a file imports when it runs: top-level and function-level imports, not those under
    `if TYPE_CHECKING:` (annotations only). `from harness.x import y` names harness.x.y when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for part in node.body for n in ast.walk(part)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("harness"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found.update(subs)
            if len(subs) < len(node.names) and node.module in modules:
                found.add(node.module)
    return found


def harness_modules() -> dict[str, Path]:
    out = {}
    for path in files("harness"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict[str, set[str]]:
    modules = harness_modules()
    return {name: runtime_imports(path, set(modules)) - {name} for name, path in modules.items()}


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted: the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str:
    """harness.analysis.report -> harness.analysis; a module at the top (harness.types) is a room of its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def rooms_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for v, targets in graph.items():
        if v in ("harness", "harness.__main__"):  # the package's own face and `python -m harness`
            continue
        out.setdefault(room(v), set()).update(room(w) for w in targets if room(w) != room(v) and w != "harness")
    return out


def test_the_circle_finder_finds_a_planted_circle():
    planted = {"harness.a.x": {"harness.b.y"}, "harness.b.y": {"harness.c"}, "harness.c": {"harness.a.z"},
               "harness.a.z": set()}
    assert circles(planted) == []  # a -> b -> c -> a only between rooms
    assert circles(rooms_graph(planted)) == [["harness.a", "harness.b", "harness.c"]]
    planted["harness.a.z"] = {"harness.a.x"}
    assert circles(planted) == [["harness.a.x", "harness.a.z", "harness.b.y", "harness.c"]]


def test_no_import_circle_between_harness_modules():
    assert circles(import_graph()) == []


def test_no_import_circle_between_rooms():
    """Rooms: harness/<room>/ subpackages and the contracts at the top (types, errors, settings, attack, defense,
    benchmark); each room may lean on lower ones, never back."""
    assert circles(rooms_graph(import_graph())) == []


def test_command_lines_live_in_cli():
    """Argument parsing and exit handling are harness/cli's; a domain module has no `main` and no argparse."""
    offenders = []
    for name, path in harness_modules().items():
        if name.startswith("harness.cli") or name == "harness.__main__":
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
            offenders.append(f"{name}: def main")
        if "argparse" in imports(path):
            offenders.append(f"{name}: imports argparse")
    assert offenders == []


def test_every_command_is_reachable_from_python_m_harness():
    from harness.cli import COMMANDS

    for name, module in COMMANDS.items():
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), name



def test_one_interval_policy():
    """Intervals come from harness.analysis.stats' policy (count_interval, proportion_interval): no module outside
    it calls the Wilson formula itself."""
    offenders = [f"{path.relative_to(ROOT)}" for folder in ("harness", "experiments", "bench", "attacks", "defenses")
                 for path in files(folder) if path.name != "stats.py" and "wilson(" in path.read_text()]
    assert offenders == []
