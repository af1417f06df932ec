"""Benchmarks: where behaviors come from.

A benchmark finds its data in this order: an explicit `path`, the shared `data_dir`
(`<data_dir>/<file>`), the Hugging Face hub via `datasets`, and otherwise stops with a
message that says how to supply it. Subclasses declare their file, hub id and column
names (`fields`: Behavior field -> accepted column names); the base class reads, maps,
validates and filters.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import Field, field_validator

from harness.errors import DataError, HarnessError, choices
from harness.settings import Configured, Settings
from harness.types import Behavior

log = logging.getLogger(__name__)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV/JSON/JSONL file; a clear DataError for anything malformed."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            # utf-8-sig strips a byte-order mark; the delimiter is the header's most frequent of , ; tab |
            with open(path, encoding="utf-8-sig") as f:
                header = f.readline()
            sep = max(",;\t|", key=header.count) if any(d in header for d in ",;\t|") else ","
            frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        elif suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        elif suffix == ".json":
            frame = pd.read_json(path, dtype=False, encoding="utf-8")
        else:
            raise DataError(f"data file {path}: unsupported format {suffix!r}; use one of '.csv', '.tsv', '.json', '.jsonl'")
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {path} is not valid UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds for malformed files
        raise DataError(f"data file {path} could not be parsed as {suffix[1:].upper()}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"data file {path} has no rows")
    return frame.fillna("")


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

    # --- reading -------------------------------------------------------------------
    def locate(self) -> Path | None:
        if self.path is not None:
            if not self.path.exists():
                raise DataError(f"benchmark {self.name!r}: benchmark.path={str(self.path)!r} does not exist")
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
        for i, row in enumerate(frame.to_dict("records")):
            values = {field: str(row[col]).strip() for field, col in mapping.items()}
            if not values.get("prompt"):
                skipped += 1
                continue
            values.setdefault("id", f"{self.name}-{i}")
            values = {k: v for k, v in self.complete(values, row).items() if k in Behavior.model_fields}
            behaviors.append(Behavior(source=self.name, **{"label": self.label, **values}))
        if skipped:
            log.warning("benchmark %s: skipped %d rows with an empty prompt in %s", self.name, skipped, where)
        ids = [b.id for b in behaviors]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise DataError(f"benchmark {self.name!r}: {where} has duplicate ids {choices(dupes[:5])}; ids must be unique")
        return behaviors

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
        if self.limit is not None:
            behaviors = behaviors[: self.limit]
        return behaviors

    def describe_filters(self) -> str:
        return f"categories={self.categories}, sample={self.sample}, limit={self.limit}"
