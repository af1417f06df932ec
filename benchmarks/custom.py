"""Any CSV/TSV/JSON/JSONL file, with a column mapping given in the config.

    python -m harness benchmark=custom benchmark.path=my.csv benchmark.columns.prompt=question
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
    name: str = "custom"  # the benchmark column of records and tables
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
        self.fields = {field: (column,) for field, column in self.columns.items()}
        self.required = tuple(self.columns)
        self.label = self.settings.label
        self.name = self.settings.name
