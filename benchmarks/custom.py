"""Any CSV/TSV/JSON/JSONL file, with a column mapping given in the config.

    python -m harness benchmark=custom benchmark.path=my.csv benchmark.columns.prompt=question

An `id` column is used when the file has one and `columns` maps no other (ids must be
unique). The benchmark is named `name`: the file's stem by default, so two files get two
rows in tables and two run folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.benchmark import Benchmark, BenchmarkSettings
from harness.errors import choices

MAPPABLE = ("prompt", "id", "category", "target", "context", "harmful_prefix", "reference")


class CustomSettings(BenchmarkSettings):
    columns: dict[str, str] = Field(default_factory=lambda: {"prompt": "prompt"})  # Behavior field -> column name
    label: Literal["harmful", "benign"] = "harmful"
    name: str | None = None  # the benchmark column of records and tables; default: the file's stem
    hub: bool = False

    @field_validator("path")
    @classmethod
    def given(cls, value: Path | None) -> Path | None:
        if value is None:
            raise ValueError("benchmark=custom needs benchmark.path=<csv|tsv|json|jsonl file>")
        return value

    @field_validator("columns")
    @classmethod
    def mappable(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if k not in MAPPABLE]
        if bad:
            raise ValueError(f"unknown field(s) {choices(bad)}; valid: {choices(MAPPABLE)}")
        if "prompt" not in value:
            raise ValueError("must map 'prompt' to a column name")
        return value


class CustomFile(Benchmark):
    name = "custom"
    Settings = CustomSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        values.setdefault("path", None)  # a missing path is named in the error
        super().__init__(*args, **values)
        self.fields = {"id": ("id",), **{field: (column,) for field, column in self.columns.items()}}
        self.required = tuple(self.columns)
        self.label = self.settings.label
        self.name = self.settings.name or Path(self.settings.path).stem
