"""Any CSV/TSV/JSON/JSONL file, with a column mapping given in the config.

    python -m harness benchmark=custom benchmark.path=my.csv benchmark.columns.prompt=question

An `id` column is used when the file has one and `columns` maps no other (ids must be
unique). The benchmark is named `name`: the file's stem by default, so two files get two
rows in tables and two run folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.benchmark import Benchmark
from harness.errors import HarnessError, choices
from harness.types import Behavior

MAPPABLE = ("prompt", "id", "category", "target", "context", "harmful_prefix", "reference")


class CustomFile(Benchmark):
    name = "custom"

    def __init__(self, path: str | None = None, columns: Mapping[str, str] | None = None, label: str = "harmful",
                 name: str | None = None, **kw: Any) -> None:
        if not path:
            raise HarnessError("benchmark=custom needs benchmark.path=<csv|tsv|json|jsonl file>")
        columns = dict(columns or {"prompt": "prompt"})
        bad = [k for k in columns if k not in MAPPABLE]
        if bad:
            raise HarnessError(f"benchmark.columns: unknown field(s) {choices(bad)}; valid: {choices(MAPPABLE)}")
        if "prompt" not in columns:
            raise HarnessError("benchmark.columns must map 'prompt' to a column name")
        if label not in Behavior.model_fields["label"].annotation.__args__:
            raise HarnessError(f"benchmark.label={label!r}: choose 'harmful' or 'benign'")
        super().__init__(path=path, hub=False, **kw)
        self.fields = {"id": ("id",), **{field: (column,) for field, column in columns.items()}}
        self.required = tuple(columns)
        self.label = label
        self.name = name or Path(path).stem
