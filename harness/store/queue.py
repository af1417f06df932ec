"""Queues of samples to label: a seeded random draw of a run's own outputs, for labels that can correct its ASR.

    python -m harness labels queue results/runs/smollm2-aligned/advbench/prefill/none --n 60 --out queue.csv

A queue draws `n` samples at random from the ASR's population (judged completions of harmful behaviors),
stratified by table cell (model, defense, attack, benchmark, attack parameters: each cell gets its share,
at least one), never chosen by verdict, and skipping samples an earlier queue drew. It writes a file a
reviewer fills in a spreadsheet: key, queue, cell, the messages the model saw, the prefill, the completion
and an empty `label` column (harmful / not_harmful / unclear), no judge verdict (blind labelling). The draw
is recorded in each run folder's `queue.jsonl`, so `labels import` can check that a filled file's rows are
the samples the queue drew (an edited key is refused) and mark their labels as random draws: only those
enter the prediction-powered ASR (`harness.analysis.ppi`).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.store.folder import run_folders
from harness.store.labels import QUEUE_FILE, drawn
from harness.store.records import RecordStore, open_locked, write_all
from harness.types import Record, content_hash

COLUMNS = ("key", "queue", "cell", "request", "prefill", "completion", "label", "who")


def cell_of(record: Record) -> str:
    """The ASR table cell a sample counts in, as text."""
    request = record.completion.request
    params = ", ".join(f"{k}={v}" for k, v in sorted(request.params.items()))
    return " / ".join([record.model, record.defense, request.attack, record.benchmark] + ([params] if params else []))


def in_population(record: Record) -> bool:
    """In the ASR's denominator: a harmful behavior's completion with a verdict (not a judge error)."""
    return record.behavior.label == "harmful" and not record.verdict.error and record.verdict.harmful is not None


def allocate(sizes: Sequence[int], n: int) -> list[int]:
    """`n` draws over cells of these sizes: proportional (largest remainder), at least one per non-empty cell."""
    total = sum(sizes)
    if total == 0:
        return [0] * len(sizes)
    n = min(n, total)
    base = [min(size, max(1 if size else 0, int(n * size / total))) for size in sizes]
    order = sorted(range(len(sizes)), key=lambda i: n * sizes[i] / total - int(n * sizes[i] / total), reverse=True)
    while sum(base) < n:
        grew = False
        for i in order:
            if sum(base) < n and base[i] < sizes[i]:
                base[i] += 1
                grew = True
        if not grew:
            break
    return base


def draw(records: Iterable[Record], n: int, seed: int, exclude: set[str] = frozenset()) -> list[Record]:
    """A seeded random sample of `n` from the population, stratified by cell, skipping `exclude`d keys."""
    if n <= 0:
        raise HarnessError(f"--n {n}: give how many samples to draw, at least 1")
    cells: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r.key):
        if in_population(record) and record.key not in exclude:
            cells.setdefault(cell_of(record), []).append(record)
    if not cells:
        raise HarnessError("no samples left to draw: the runs hold no judged completions of harmful behaviors that an "
                           "earlier queue did not draw")
    names = sorted(cells)
    rng = np.random.default_rng(seed)
    chosen = []
    for name, take in zip(names, allocate([len(cells[c]) for c in names], n), strict=True):
        pool = cells[name]
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), size=take, replace=False))]
    return chosen


def request_text(record: Record) -> str:
    """The messages the model saw (as the engine rendered them, the card's system prompt included; the request's
    own in a record written before they were stored), one block per turn."""
    c = record.completion
    return "\n\n".join(f"[{m.role}] {m.content}" for m in (c.rendered if c.rendered is not None else c.request.messages))


def write_queue(targets: Sequence[Path], n: int, seed: int, out: Path | None) -> tuple[str, Path, int]:
    """Draw a queue from the runs, record it beside them, write the file to fill; (queue id, file, samples)."""
    folders = run_folders(targets)
    stores = {folder: RecordStore(folder / "records.jsonl").load() for folder in folders}
    earlier = {key for folder in folders for _, key in drawn(folder)}
    chosen = draw([r for records in stores.values() for r in records.values()], n, seed, earlier)
    queue = "q" + content_hash({"seed": seed, "keys": sorted(r.key for r in chosen)})[:8]
    out = out or Path(f"labels-queue-{queue}.csv")
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise HarnessError(f"--out {out}: give a .csv (a spreadsheet) or .jsonl file")
    if out.exists() and not out.is_file():
        raise HarnessError(f"--out {out}: a folder; give a file name")
    rows = [{"key": r.key, "queue": queue, "cell": cell_of(r), "request": request_text(r),
             "prefill": r.completion.request.prefill, "completion": r.completion.text, "label": "", "who": ""}
            for r in chosen]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        with open(out, "w", newline="", encoding="utf-8", errors="backslashreplace") as f:  # a lone surrogate as \udXXX
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")  # ASCII: surrogates escaped
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    owner = {key: folder for folder, records in stores.items() for key in records}
    for folder in folders:
        mine = [r.key for r in chosen if owner[r.key] == folder]
        if not mine:
            continue
        fd = open_locked(folder / QUEUE_FILE)
        try:
            write_all(fd, "".join(json.dumps({"queue": queue, "key": k, "drawn": now, "seed": seed}) + "\n"
                                  for k in mine).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return queue, out, len(chosen)
