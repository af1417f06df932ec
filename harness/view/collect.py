"""Read what the browser shows: run folders, every record with every judge's verdict, the run's
ASR table (with its 95 % interval), its human labels and the samples its queues drew.

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

from harness.analysis import tables
from harness.store import labels as human
from harness.store.folder import run_folders
from harness.store.records import Sample, read_samples

log = logging.getLogger(__name__)
TABLE_FILES = ("*.csv", "*.md", "*.png")  # a run folder's tables and plots, copied into the site


@dataclass
class Run:
    folder: Path
    label: str  # the folder relative to the common root of the paths viewed
    samples: list[Sample]
    table: pd.DataFrame  # asr.csv (asr_lo / asr_hi added where missing)
    labels: dict[str, human.Label] = field(default_factory=dict)  # record key -> latest human label
    history: dict[str, list[human.Label]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)  # record key -> the queue that drew it (queue.jsonl)
    fingerprint: str = ""  # the folder's identity in the page (labels.fingerprint: a hash of its path, not the path)


def read_table(folder: Path, samples: Sequence[Sample]) -> pd.DataFrame:
    """The run's asr.csv as the harness wrote it, intervals included (the browser computes none of its own);
    recomputed from the records by the tables' own code when it is missing, unreadable, or from a version
    without intervals."""
    path = folder / "asr.csv"
    problem = "no asr.csv"
    if path.is_file():
        try:
            table = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parse errors are ValueErrors
            problem = f"asr.csv unreadable ({type(exc).__name__})"
        else:
            if {"asr", "asr_lo", "asr_hi"} <= set(table.columns) or (not table.empty and "asr" not in table.columns):
                return table
            problem = "asr.csv without intervals (an older version)"
    log.warning("%s: %s; computing the table from the records", folder, problem)
    return tables.asr_table(tables.to_frame(s.record for s in samples)) if samples else pd.DataFrame()


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
            queues={key: queue for queue, key in human.drawn(folder)}, fingerprint=human.fingerprint(folder),
        ))
        log.info("%s: %d samples, %d human labels, %d drawn by a queue", folder, len(samples), len(history),
                 len(runs[-1].queues))
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
