"""Where an analysis command may write: its own output folder, never a run it reads.

The commands that read runs (report, compare, judge_eval) write only the files they name into
`--out`. An `--out` that is a file, that holds a run (a records.jsonl at or below it), or that
lies inside one of the runs being read is refused before anything is computed: rewriting a
run's tables is `python -m harness rejudge`'s job, under the run folder's lock.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from harness.errors import HarnessError
from harness.store.folder import check_folder

RECORDS = "records.jsonl"


def run_folder_of(path: Path) -> Path | None:
    """The run folder at or above `path` (the nearest folder holding a records.jsonl), if any."""
    for folder in [path, *path.parents]:
        if (folder / RECORDS).is_file():
            return folder
    return None


def records_below(folder: Path) -> Path | None:
    """A records.jsonl in or below the folder (links not followed), or None."""
    for parent, _, files in os.walk(folder):
        if RECORDS in files:
            return Path(parent) / RECORDS
    return None


def refuse_runs(out: Path, inputs: Iterable[Path] = (), option: str = "--out") -> Path:
    """`out` as a writable folder (made or to be made) that is not in a run, holds no input and no run: a
    HarnessError naming the first that fails. Nothing is read or written."""
    out = check_folder(Path(out), option)
    resolved = out.resolve()
    inside = run_folder_of(resolved)
    if inside is not None:
        raise HarnessError(f"{option} {out}: lies in the run folder {inside}; this command never writes into runs "
                           "(re-judging rewrites a run's tables: harness rejudge); give another folder")
    for given in inputs:
        source = Path(given).resolve()
        if source == resolved or resolved in source.parents:
            raise HarnessError(f"{option} {out}: holds the input {given}; give a folder outside what is read")
    found = records_below(resolved) if resolved.is_dir() else None
    if found is not None:
        raise HarnessError(f"{option} {out}: holds a run ({found}); this command never writes into runs; "
                           "give another folder")
    return out


def output_folder(out: Path, inputs: Iterable[Path] = (), option: str = "--out") -> Path:
    """Check `out` can take this command's outputs without touching a run, then create it."""
    out = refuse_runs(out, inputs, option)
    out.mkdir(parents=True, exist_ok=True)
    return out
