"""Where an analysis command may write: its own output folder, never a run it reads.

The commands that read runs (report, compare, judge_eval) write only the files they name into
`--out`. An `--out` that is a file, that holds a run (a records.jsonl at or below it), or that
lies inside one of the runs being read is refused before anything is computed: rewriting a
run's tables is `python -m harness rejudge`'s job, under the run folder's lock.
"""

from __future__ import annotations

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


def holds_runs(folder: Path) -> bool:
    return folder.is_dir() and (any(True for _ in folder.rglob(RECORDS)))


def output_folder(out: Path, inputs: Iterable[Path] = (), option: str = "--out") -> Path:
    """Check `out` can take this command's outputs without touching a run, then create it."""
    out = check_folder(Path(out), option)  # a folder, or one that can be made, and writable
    resolved = out.resolve()
    inside = run_folder_of(resolved)
    if inside is not None or holds_runs(resolved):
        run = inside or next(p.parent for p in resolved.rglob(RECORDS))
        raise HarnessError(f"{option} {out}: holds or lies in the run folder {run}; this command never writes into "
                           "runs (re-judging rewrites a run's tables: python -m harness rejudge); give another folder")
    for given in inputs:
        source = Path(given).resolve()
        if source == resolved or resolved in source.parents:
            raise HarnessError(f"{option} {out}: holds the input {given}; give a folder outside what is read")
    out.mkdir(parents=True, exist_ok=True)
    return out
