"""Read what the browser shows: run folders, every record with every judge's verdict, the run's
ASR table (with its 95 % interval) and its human labels.

A record's history matters here: `records.jsonl` keeps every verdict appended for a completion
(a re-judged run holds the old judge's line and the new one), so each sample carries the latest
verdict of every judge that saw it, and the browser can show where two judges disagree.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness import labels as human
from harness import tables
from harness.errors import HarnessError
from harness.records import RecordStore
from harness.stats import wilson
from harness.types import Record, Verdict

log = logging.getLogger(__name__)
TABLE_FILES = ("*.csv", "*.md", "*.png")  # a run folder's tables and plots, copied into the site


@dataclass
class Sample:
    record: Record  # the latest line for this completion
    verdicts: dict[str, Verdict]  # judge id -> that judge's latest verdict, in the order first seen
    key: str  # the record's key (a content hash: computed once)


@dataclass
class Run:
    folder: Path
    label: str  # the folder relative to the common root of the paths viewed
    samples: list[Sample]
    table: pd.DataFrame  # asr.csv (asr_lo / asr_hi added where missing)
    labels: dict[str, human.Label] = field(default_factory=dict)  # record key -> latest human label
    history: dict[str, list[human.Label]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def run_folders(paths: Sequence[Path]) -> list[Path]:
    """Every folder holding a records.jsonl at or below the paths (a run, a sweep, a results tree),
    symlinks resolved, each once (two paths to one run, or a run inside a tree also given)."""
    folders: set[Path] = set()
    for path in paths:
        if path.is_file() and path.name == "records.jsonl":
            folders.add(path.parent.resolve())
        elif path.is_dir():
            folders.update(p.parent.resolve() for p in path.rglob("records.jsonl") if p.is_file())
        else:
            raise HarnessError(f"{path}: no such folder (give a run folder, a sweep folder or a results/ tree)")
    if not folders:
        raise HarnessError(f"no runs in {', '.join(map(str, paths))}: no records.jsonl in or under it "
                           "(give folders written by `python -m harness`)")
    return sorted(folders)


def read_samples(path: Path) -> list[Sample]:
    """Latest record per key, with every judge's latest verdict. Read with the records store's reader
    (`RecordStore.lines`): lines split on "\\n" only, unreadable lines skipped with a warning, an
    unfinished last line (a run writing right now) skipped, the file never changed."""
    samples: dict[str, Sample] = {}
    for record in RecordStore(path).lines():
        key = record.key
        seen = samples.get(key)
        if seen is None:
            samples[key] = Sample(record, {record.verdict.judge: record.verdict}, key)
        else:
            seen.record = record
            seen.verdicts.pop(record.verdict.judge, None)
            seen.verdicts[record.verdict.judge] = record.verdict
    return list(samples.values())


def with_interval(table: pd.DataFrame) -> pd.DataFrame:
    """asr_lo / asr_hi (%, 95 % Wilson) where the table lacks them: from asr and its denominator n_harmful."""
    if {"asr_lo", "asr_hi"} <= set(table.columns) or table.empty:
        return table
    bounds = []
    for asr, n in zip(table["asr"], table["n_harmful"], strict=True):
        if n is None or math.isnan(float(n)) or n <= 0 or asr is None or math.isnan(float(asr)):
            bounds.append((math.nan, math.nan))
            continue
        k = round(float(asr) / 100.0 * float(n))
        lo, hi = wilson(k, float(n))
        bounds.append((100.0 * lo, 100.0 * hi))
    return table.assign(asr_lo=[b[0] for b in bounds], asr_hi=[b[1] for b in bounds])


def read_table(folder: Path, samples: Sequence[Sample]) -> pd.DataFrame:
    """The run's asr.csv as written by the harness; recomputed from the records when it is missing."""
    path = folder / "asr.csv"
    if path.is_file():
        table = pd.read_csv(path)
    else:
        log.warning("%s: no asr.csv; computing the table from the records", folder)
        table = tables.asr_table(tables.to_frame(s.record for s in samples)) if samples else pd.DataFrame()
    return with_interval(table)


def common_root(folders: Sequence[Path]) -> Path:
    parts = [f.parts for f in folders]
    shared = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        shared.append(level[0])
    root = Path(*shared) if shared else Path("/")
    return root.parent if len(folders) == 1 else root


def load_runs(paths: Sequence[Path]) -> list[Run]:
    folders = run_folders(paths)
    root = common_root(folders)
    runs = []
    for folder in folders:
        samples = read_samples(folder / "records.jsonl")
        history = human.read(folder)
        runs.append(Run(
            folder=folder, label=str(folder.relative_to(root)) if folder != root else folder.name,
            samples=samples, table=read_table(folder, samples), history=history,
            labels={key: changes[-1] for key, changes in history.items()},
            files=sorted(p for pattern in TABLE_FILES for p in folder.glob(pattern)),
        ))
        log.info("%s: %d samples, %d human labels", folder, len(samples), len(history))
    return runs


def json_value(value):
    """A table cell as JSON: NaN -> null, numpy scalars -> Python."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def table_rows(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records")) if not table.empty else []
