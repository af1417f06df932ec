"""Every command the README and the guides in docs/ show is checked: a run's overrides compose into the
harness config (runs take minutes to hours: composing catches a renamed group, option or key), an analysis
command's arguments parse with that command's own parser and its Hydra overrides compose too."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from harness import config
from harness.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
START = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:python -m harness|harness)(?=\s|$)")


def shown_commands() -> list[tuple[str, str]]:
    """(where, command) for every `python -m harness ...` / `harness ...` in a ```bash block of the docs."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
            first = text[: block.start()].count("\n") + 2
            for offset, line in enumerate(block.group(1).splitlines()):
                for part in line.split("&&"):
                    part = part.strip()
                    if START.match(part):
                        found.append((f"{path.relative_to(ROOT)}:{first + offset}", part))
    return found


COMMANDS_SHOWN = shown_commands()


def words(command: str) -> list[str]:
    tokens = shlex.split(command, comments=True)
    while "=" in tokens[0] and not tokens[0].startswith("-"):  # VAR=value before the command
        tokens.pop(0)
    return tokens[3:] if tokens[:3] == ["python", "-m", "harness"] else tokens[1:]


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """A sweep's overrides (a=x,y b=u,v) as jobs that, together, give every swept value once (a=x b=u, a=y b=u,
    a=x b=v): what composing can check without the whole grid."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    values = []
    for parsed, raw in zip(OverridesParser.create().parse_overrides(overrides), overrides, strict=True):
        key = parsed.get_key_element()
        values.append([f"{key}={v}" for v in parsed.sweep_string_iterator()] if parsed.is_sweep_override() else [raw])
    first = [v[0] for v in values]
    jobs = [first]
    for i, options in enumerate(values):
        jobs += [[*first[:i], option, *first[i + 1:]] for option in options[1:]]
    return jobs


def check_run(args: list[str]) -> None:
    flags = {"--multirun", "-m", "--wait", "--help", "-h"}
    overrides = [a for a in args if a not in flags]
    if "--cfg" in overrides:
        i = overrides.index("--cfg")
        del overrides[i: i + 2]
    for job in sweep_jobs(overrides) if {"--multirun", "-m"} & set(args) else [overrides]:
        config.compose(job)


def check_command(name: str, args: list[str]) -> None:
    module = importlib.import_module(COMMANDS[name])
    parser = module.make_parser()
    parsed, rest = parser.parse_known_args(args)
    overrides = [a for a in [*rest, *getattr(parsed, "overrides", []), *map(str, getattr(parsed, "folders", []))]
                 if "=" in a and not a.startswith("-")]
    assert not [a for a in rest if a not in overrides], f"unknown arguments {rest}"
    if overrides:
        config.compose(overrides)


def test_the_docs_show_commands():
    assert len(COMMANDS_SHOWN) > 40
    assert {c.split()[3] if c.startswith("python") else c.split()[1] for _, c in COMMANDS_SHOWN} >= {
        "report", "compare", "gate", "rejudge", "judge-eval", "labels", "view", "kl"}


@pytest.mark.parametrize(("where", "command"), COMMANDS_SHOWN, ids=[w for w, _ in COMMANDS_SHOWN])
def test_every_command_in_the_docs_composes_or_parses(where, command):
    args = words(command)
    if args and args[0] in COMMANDS:
        check_command(args[0], args[1:])
    else:
        check_run(args)


def test_a_wrong_command_is_caught():
    from harness.errors import HarnessError

    with pytest.raises(HarnessError):
        check_run(["attack=no_such_attack"])
    with pytest.raises(HarnessError):
        check_run(["--multirun", "attack=direct,prefill", "defense=none,no_such_defense"])
    with pytest.raises(SystemExit):
        check_command("report", [])  # its run folders are required
    with pytest.raises(AssertionError):
        check_command("gate", ["results/x", "--baseline", "b.json", "--no-such-flag"])
