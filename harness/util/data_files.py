"""Reading data files (CSV/TSV/JSON/JSONL) strictly: a malformed row is an error naming its line.

CSV/TSV: the delimiter is the header's most frequent of `, ; tab |`; every row must have as
many fields as the header (pandas would silently shift a ragged row into its index and lose
the next one). JSON lines: every line an object. JSON: a list of objects. The frame's index
holds each row's line number in the file (1-based; the item's position for .json) and
`attrs["line"]` says so, so later checks can name the line too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd

from harness.errors import DataError

FORMATS = (".csv", ".tsv", ".json", ".jsonl")
LINE = "line"


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV/TSV/JSON/JSONL file; a clear DataError for anything malformed."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"data file {path} is a folder; give the data file itself ({', '.join(FORMATS)})")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"data file {path}: unsupported format {suffix!r}; use one of {', '.join(map(repr, FORMATS))}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # utf-8-sig strips a byte-order mark
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {path} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                        f"re-save it as UTF-8") from None
    reader = read_csv if suffix in (".csv", ".tsv") else read_jsonl if suffix == ".jsonl" else read_json
    rows, lines = reader(text, path)
    if not rows:
        raise DataError(f"data file {path} has no rows")
    frame = pd.DataFrame(rows, index=pd.Index(lines, name=LINE)).fillna("")
    frame.attrs[LINE] = True  # the index holds line numbers (filters keep both)
    return frame


def read_csv(text: str, path: Path) -> tuple[list[dict], list[int]]:
    header = text.split("\n", 1)[0]
    sep = max(",;\t|", key=header.count) if any(d in header for d in ",;\t|") else ","
    reader = csv.reader(text.splitlines(keepends=True), delimiter=sep)
    try:
        columns = next(reader)
    except StopIteration:
        return [], []
    columns = [c if c.strip() else f"Unnamed: {i}" for i, c in enumerate(columns)]  # pandas' names for blank headers
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise DataError(f"data file {path}, line 1: repeated column names {repeated}")
    rows, lines = [], []
    start = reader.line_num + 1
    try:
        for fields in reader:
            if fields and len(fields) != len(columns):
                raise DataError(
                    f"data file {path}, line {start}: {len(fields)} fields where the header has {len(columns)} "
                    f"({sep!r}-separated); quote fields that contain {sep!r}")
            if fields:
                rows.append(dict(zip(columns, fields, strict=True)))
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"data file {path}, line {reader.line_num}: not valid CSV ({exc})") from None
    return rows, lines


def read_jsonl(text: str, path: Path) -> tuple[list[dict], list[int]]:
    rows, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise DataError(f"data file {path}, line {number}: not valid JSON ({exc})") from None
        if not isinstance(item, dict):
            raise DataError(f"data file {path}, line {number}: a JSON {type(item).__name__}, not an object")
        rows.append(item)
        lines.append(number)
    return rows, lines


def read_json(text: str, path: Path) -> tuple[list[dict], list[int]]:
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise DataError(f"data file {path} is not valid JSON ({exc})") from None
    if isinstance(items, dict):  # {"column": [values...]} or {"column": {"row": value}} (pandas' orients)
        try:
            items = pd.DataFrame(items).to_dict("records")
        except ValueError as exc:
            raise DataError(f"data file {path}: a JSON object that is not a table ({exc}); "
                            f"use a list of objects") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataError(f"data file {path}: expected a list of objects (one per row)")
    return items, list(range(1, len(items) + 1))
