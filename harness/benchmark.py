"""Benchmarks: where behaviors come from.

`limit` keeps that many behaviors: by default a seeded random sample stratified by category
(each category its proportional share), so a small run covers every category of the file;
`limit_order=first` keeps the file's first rows instead. `sampling_note` says which, for the tables.

A benchmark finds its data in this order: an explicit `path`, the shared `data_dir`
(`<data_dir>/<file>`), the Hugging Face hub via `datasets`, and otherwise stops with a
message that says how to supply it. Subclasses declare their file, hub id and column
names (`fields`: Behavior field -> accepted column names); the base class reads, maps,
validates and filters.
"""

from __future__ import annotations

import logging
import numbers
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, field_validator

from harness.errors import DataError, HarnessError, choices
from harness.settings import Configured, Settings
from harness.types import Behavior
from harness.util.data_files import LINE, read_table

log = logging.getLogger(__name__)

WHOLE_NUMBER_FIELDS = ("id", "reference", "category")  # fields a file may give as whole numbers


class BenchmarkSettings(Settings):
    # Where the data is looked for cannot change which behaviors a benchmark yields (the file is the same).
    cosmetic = frozenset({"data_dir", "hub"})
    path: Path | None = None  # an explicit file
    data_dir: Path | None = None  # the shared data folder (<data_dir>/<file>)
    limit: int | None = Field(None, ge=1)  # the first N behaviors (null: all)
    categories: tuple[str, ...] | None = None
    sample: int | None = Field(None, ge=1)  # a seeded random sample of N behaviors
    seed: int = 0
    hub: bool = True  # fall back to the Hugging Face hub
    limit_order: Literal["stratified", "first"] = "stratified"  # how `limit` draws: by category, or the first rows
    exclude_trained: bool = False  # the run drops behaviors the model was trained on (harness.training.contamination)

    @field_validator("path", "data_dir")
    @classmethod
    def expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None

    @field_validator("categories")
    @classmethod
    def none_when_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return value or None


class Benchmark(Configured):
    """Base class: reading, column mapping, filtering. Subclasses set the class attributes."""

    option = "benchmark"
    Settings = BenchmarkSettings

    name: ClassVar[str] = ""
    file: ClassVar[str] = ""  # relative to data_dir
    hub_id: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    hub_split: ClassVar[str] = "train"
    fields: ClassVar[dict[str, Sequence[str]]] = {}  # Behavior field -> accepted column names
    required: ClassVar[Sequence[str]] = ("prompt",)
    label: ClassVar[str] = "harmful"
    reads_folders: ClassVar[bool] = False  # a benchmark whose `path` may be a folder of files (HEx-PHI)
    sampling_note = ""  # how `select` drew the behaviors, for the tables' notes

    # --- reading -------------------------------------------------------------------
    def locate(self) -> Path | None:
        if self.path is not None:
            if not self.path.exists():
                raise DataError(f"benchmark {self.name!r}: benchmark.path={str(self.path)!r} does not exist")
            if self.path.is_dir() and not self.reads_folders:
                raise DataError(f"benchmark {self.name!r}: benchmark.path={str(self.path)!r} is a folder; "
                                f"give the data file itself (.csv, .tsv, .json or .jsonl)")
            return self.path
        if self.data_dir is not None and self.file:
            candidate = self.data_dir / self.file
            if candidate.exists():
                return candidate
            log.warning("benchmark %s: %s not found under data_dir", self.name, self.file)
        return None

    def read_local(self, path: Path) -> pd.DataFrame:
        return read_table(path)

    def read_hub(self) -> pd.DataFrame:
        looked = f"data_dir={str(self.data_dir) if self.data_dir else None!r}" + (f" (expected {self.file})" if self.file else "")
        advice = f"Pass benchmark.path=<file> or data_dir=<folder holding {self.file or 'the data'}>."
        if not (self.hub and self.hub_id):
            raise DataError(f"benchmark {self.name!r}: no data found ({looked}) and no hub copy to fall back on. {advice}")
        try:
            import datasets

            log.info("benchmark %s: loading %s from the Hugging Face hub", self.name, self.hub_id)
            ds = datasets.load_dataset(self.hub_id, self.hub_config, split=self.hub_split)
            return ds.to_pandas().fillna("")
        except Exception as exc:  # noqa: BLE001 - offline, gated, renamed: same advice
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc) else type(exc).__name__
            raise DataError(
                f"benchmark {self.name!r}: no local data ({looked}) and the hub load of {self.hub_id} failed ({reason}). {advice}"
            ) from None

    # --- mapping -------------------------------------------------------------------
    def column_map(self, frame: pd.DataFrame, where: str) -> dict[str, str]:
        """Behavior field -> the column that holds it; errors name the missing columns."""
        mapping: dict[str, str] = {}
        columns = {c.strip().lower(): c for c in frame.columns}
        for field, accepted in self.fields.items():
            hit = next((columns[a.lower()] for a in accepted if a.lower() in columns), None)
            if hit is not None:
                mapping[field] = hit
            elif field in self.required:
                raise DataError(
                    f"benchmark {self.name!r}: {where} has no column for {field!r} (accepted names: {choices(accepted)}); "
                    f"its columns are {choices(frame.columns)}"
                )
        return mapping

    def parse(self, frame: pd.DataFrame, where: str) -> list[Behavior]:
        mapping = self.column_map(frame, where)
        behaviors, skipped = [], 0
        lines = list(frame.index) if frame.attrs.get(LINE) else [None] * len(frame)
        for i, (row, line) in enumerate(zip(frame.to_dict("records"), lines, strict=True)):
            values = {field: self.text(row[col], field, col, where, line) for field, col in mapping.items()}
            if not values.get("prompt"):
                skipped += 1
                continue
            if not values.get("id"):
                values["id"] = f"{self.name}-{i}"
            values = {k: v for k, v in self.complete(values, row).items() if k in Behavior.model_fields}
            behaviors.append(Behavior(source=self.name, **{"label": self.label, **values}))
        if skipped:
            log.warning("benchmark %s: skipped %d rows with an empty prompt in %s", self.name, skipped, where)
        ids = [b.id for b in behaviors]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise DataError(f"benchmark {self.name!r}: {where} has duplicate ids {choices(dupes[:5])}; ids must be unique")
        return behaviors

    def text(self, value: Any, field: str, column: str, where: str, line: int | None) -> str:
        """A cell as the text of a Behavior field: strings as they are, whole numbers for ids and
        references; anything else (a number as a prompt, an object, a list) is a DataError naming the line."""
        if isinstance(value, str):
            return value.strip()
        if field in WHOLE_NUMBER_FIELDS and isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return str(value)
        at = f", line {line}" if line is not None else ""
        raise DataError(f"benchmark {self.name!r}: {where}{at}: column {column!r} ({field}) holds a "
                        f"{type(value).__name__} ({str(value)[:60]!r}), not text; quote it as a string")

    def complete(self, values: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """Hook for benchmark-specific fields (labels, references, targets)."""
        return values

    # --- filtering -----------------------------------------------------------------
    def load(self) -> list[Behavior]:
        found = self.locate()
        frame = self.read_local(found) if found is not None else self.read_hub()
        where = str(found) if found is not None else f"hub:{self.hub_id}"
        behaviors = self.select(self.parse(frame, where))
        if not behaviors:
            raise DataError(f"benchmark {self.name!r}: no behaviors left after filtering ({self.describe_filters()})")
        return behaviors

    def select(self, behaviors: list[Behavior]) -> list[Behavior]:
        if self.categories:
            known = sorted({b.category for b in behaviors})
            unknown = [c for c in self.categories if c not in known]
            if unknown:
                raise HarnessError(f"benchmark {self.name!r}: unknown categories {choices(unknown)}; valid: {choices(known)}")
            behaviors = [b for b in behaviors if b.category in self.categories]
        if self.sample is not None and self.sample < len(behaviors):
            behaviors = random.Random(self.seed).sample(behaviors, self.sample)
        total = len(behaviors)
        if self.limit is not None and self.limit < total:
            behaviors = behaviors[: self.limit] if self.limit_order == "first" else stratified(behaviors, self.limit, self.seed)
        self.sampling_note = self.describe_sampling(len(behaviors), total)
        return behaviors

    def describe_sampling(self, kept: int, total: int) -> str:
        """How the evaluated behaviors were drawn, for the tables' notes."""
        where = f" in categories {', '.join(self.categories)}" if self.categories else ""
        if kept == total:
            how = "all"
        elif self.limit is not None and kept == self.limit and self.limit_order == "first":
            how = "the first in file order (limit_order=first)"
        elif self.limit is not None and kept == self.limit:
            how = f"a random sample stratified by category (seed {self.seed})"
        else:
            how = f"a random sample (seed {self.seed})"
        return f"{self.name}: {kept} of {total} behaviors{where}, {how}"

    def describe_filters(self) -> str:
        return f"categories={self.categories}, sample={self.sample}, limit={self.limit}, limit_order={self.limit_order}"



def stratified(behaviors: list[Behavior], k: int, seed: int) -> list[Behavior]:
    """k behaviors drawn without replacement, each category getting its proportional share (largest
    remainders; ties by a seeded draw), kept in file order. One category: a plain seeded sample."""
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, b in enumerate(behaviors):
        groups.setdefault(b.category, []).append(i)
    quotas = {c: k * len(ix) / len(behaviors) for c, ix in groups.items()}
    counts = {c: int(q) for c, q in quotas.items()}
    order = sorted(groups, key=lambda c: (-(quotas[c] - counts[c]), rng.random()))
    for c in order[: k - sum(counts.values())]:
        counts[c] += 1
    chosen = sorted(i for c, ix in groups.items() for i in rng.sample(ix, counts[c]))
    return [behaviors[i] for i in chosen]
