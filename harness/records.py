"""The records file: one JSON line per judged completion, appended as produced.

Appends are flushed and fsynced per batch. A last line cut short by a crash (kill -9 mid-write)
does not parse and is not a record: on open it is dropped and the file truncated back to its
last full line. A last line that parses but lacks its newline (an editor, a copy) is kept.
Later lines win over earlier ones with the same key (a re-judged completion).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness import secrets
from harness.errors import HarnessError
from harness.types import Record

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def latest_by_key(text: str, kind: type[M], path: Path, what: str) -> dict[str, M]:
    """Parse JSON lines into `kind` (a model with a `key`), later lines winning; lines that do
    not parse are skipped with one warning naming the file and the count."""
    items: dict[str, M] = {}
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            item = kind.model_validate_json(line)
        except ValidationError:
            bad += 1
            continue
        items[item.key] = item
    if bad:
        log.warning("%s: ignored %d lines that are not %s", path, bad, what)
    return items


def parses(line: bytes) -> bool:
    try:
        Record.model_validate_json(line)
    except ValidationError:
        return False
    return True


class RecordStore:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Record]:
        """Every complete record, latest per key. Repairs a torn last line."""
        if not self.path.exists():
            return {}
        if not self.path.is_file():
            raise HarnessError(f"{self.path} is not a file (a folder?); move it away so records can be written there")
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            last = data[cut:]
            if parses(last):  # complete, only its newline is missing: keep it and finish the line
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                data += b"\n"
            else:
                log.warning("%s: dropping a partly written last line (%d bytes) left by an interrupted run",
                            self.path, len(last))
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                data = data[:cut]
        return latest_by_key(data.decode("utf-8", errors="replace"), Record, self.path, "records of this harness version")

    def append(self, records: Iterable[Record]) -> None:
        lines = secrets.scrub("".join(r.model_dump_json() + "\n" for r in records))  # a server may echo a key
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
