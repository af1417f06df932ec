"""Jailbreak templates: each behavior's request placed into fixed prompt templates.

Templates come from `shipped.yaml` beside this file (the harness's own wording of published
techniques, each with its source and license; see the file's header for what is not shipped
and why) or from a user file (`path`: YAML/JSON list, JSONL or CSV with `name` and `template`
columns, optional `source` and `license`). `{prompt}` (or `{{ prompt }}`, PyRIT's spelling)
marks where the request goes; a template without it is an error. `names` picks templates by
name. Each (behavior, template) is one request with `template` as its parameter, so tables
get one row per template.

    python -m harness attack=template attack.names=[prefix_injection,fiction]
    python -m harness attack=template attack.path=my_templates.yaml
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.attack import Attack
from harness.benchmark import read_table
from harness.errors import DataError, HarnessError, choices
from harness.model.base import Model
from harness.settings import Settings
from harness.types import Behavior, Frozen, Message, Request, Sampling, content_hash

SHIPPED = Path(__file__).with_name("shipped.yaml")
PLACEHOLDER = re.compile(r"\{\{\s*prompt\s*\}\}|\{prompt\}")


class Template(Frozen):
    name: str
    template: str
    source: str = ""
    license: str = ""

    def apply(self, prompt: str) -> str:
        return PLACEHOLDER.sub(lambda _: prompt, self.template)


def read_templates(path: Path) -> list[Template]:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            rows = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"attack.path={str(path)!r}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    else:
        rows = read_table(path).to_dict("records")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "name" in r and "template" in r for r in rows):
        raise DataError(f"attack.path={str(path)!r}: expected a list of templates, each with 'name' and 'template'")
    out = [Template(**{k: str(v) for k, v in r.items() if k in Template.model_fields}) for r in rows]
    missing = [t.name for t in out if not PLACEHOLDER.search(t.template)]
    if missing:
        raise DataError(f"attack.path={str(path)!r}: templates {choices(missing)} have no {{prompt}} placeholder")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise DataError(f"attack.path={str(path)!r}: template names must be unique")
    return out


class TemplateSettings(Settings):
    path: Path | None = None  # a user file of templates; None: the shipped ones
    names: tuple[str, ...] | None = None  # a subset by name; None: all


class TemplateAttack(Attack):
    name = "template"
    Settings = TemplateSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        path = self.path.expanduser() if self.path else SHIPPED
        if not path.is_file():
            raise HarnessError(f"attack.path={str(path)!r} does not exist")
        templates = read_templates(path)
        if self.names:
            known = {t.name: t for t in templates}
            unknown = [n for n in self.names if n not in known]
            if unknown:
                raise HarnessError(f"attack.names: unknown templates {choices(unknown)}; valid: {choices(known)}")
            templates = [known[n] for n in self.names]
        self.templates = templates

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "templates": content_hash([t.model_dump() for t in self.templates])}

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        return [self.ask(b, sampling, messages=(Message(role="user", content=t.apply(b.query())),),
                         params={"template": t.name}) for b in behaviors for t in self.templates]
