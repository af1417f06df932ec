"""The records file: one JSON line per judged completion, appended as produced.

Lines are split on "\\n" alone: a completion may hold U+2028, U+2029 or U+0085, which JSON writes as
they are and str.splitlines() would split at (\\n, \\x0b, \\x1c and the other C0 controls are
escaped). Text other than ASCII is written as it is (UTF-8); lone surrogates, which UTF-8 cannot
hold, are written as \\uXXXX escapes and read back as they were (a high surrogate directly
followed by a low one reads back as the one character the pair encodes: what the pair means in
JSON).

Appends hold an exclusive `flock` on the file while they write, and are flushed and fsynced per
batch. Reading (`load()`, `lines()`) never changes the file: a last line without its newline
that does not parse is skipped in memory (another process may be writing it right now, or a
crash cut it short). Only a writer mends it: `load(repair=True)` / `repair()`, and every append
before it writes, under the same lock, so no appender can be mid-write: a last line that is
whole JSON gets its newline, a cut one is truncated away. Later lines win over earlier ones with
the same key (a re-judged completion).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from harness.errors import HarnessError
from harness.types import Record, Verdict
from harness.util import secrets

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
SURROGATE = re.compile("[\ud800-\udfff]")
CHUNK = 1 << 16  # bytes read at a time when looking for the last line from the end of a file


def dump_line(item: BaseModel) -> str:
    """`item` as one JSON line (without its newline). Non-ASCII text stays as it is; lone surrogates
    (which pydantic and UTF-8 cannot write) become \\uXXXX escapes."""
    try:
        return item.model_dump_json()
    except PydanticSerializationError:
        text = json.dumps(item.model_dump(mode="json"), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def validate_line(line: str | bytes, kind: type[M]) -> M:
    """One JSON line as `kind`; raises pydantic's ValidationError when it is not one. Lines holding
    surrogate escapes (which pydantic's JSON parser refuses) are parsed by `json` instead."""
    try:
        return kind.model_validate_json(line)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            raise
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            raise exc from None
        return kind.model_validate(value)


def parse_line(line: str | bytes, kind: type[M]) -> M | None:
    try:
        return validate_line(line, kind)
    except ValidationError:
        return None


def parses(line: str | bytes) -> bool:
    return parse_line(line, Record) is not None


def read_jsonl(data: str | bytes, kind: type[M], path: Path, what: str) -> Iterator[M]:
    """The tolerant JSON-lines reader: every line that parses as `kind`, in file order.

    Splits on "\\n" only. A last line without its newline that does not parse is skipped with a
    warning (a writer may still be writing it); other lines that do not parse are skipped and
    counted, with one warning naming the file and the count. Never touches the file."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    lines = text.split("\n")
    tail = lines.pop()  # "" when the text ends with its newline
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        item = parse_line(line, kind)
        if item is None:
            bad += 1
            continue
        yield item
    if tail.strip():
        item = parse_line(tail, kind)
        if item is not None:  # whole, only its newline is missing (an editor, a copy)
            yield item
        elif whole_json(tail):
            bad += 1
        else:
            log.warning("%s: ignoring an unfinished last line (%d characters): a writer may still be writing it, "
                        "or a run was interrupted (the file is left as it is)", path, len(tail))
    if bad:
        log.warning("%s: ignored %d lines that are not %s", path, bad, what)


def whole_json(text: str | bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def latest_by_key(text: str | bytes, kind: type[M], path: Path, what: str) -> dict[str, M]:
    """Parse JSON lines into `kind` (a model with a `key`), later lines winning (see `read_jsonl`)."""
    items: dict[str, M] = {}
    for item in read_jsonl(text, kind, path, what):
        items[item.key] = item  # type: ignore[attr-defined]
    return items


def read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts, offset = [], 0
    while True:
        part = os.pread(fd, max(size - offset, CHUNK), offset)
        if not part:
            return b"".join(parts)
        parts.append(part)
        offset += len(part)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def repair_tail(fd: int, path: Path) -> None:
    """Mend a last line left without its newline, for a writer holding the file's lock (no other
    writer can be mid-line): whole JSON gets its newline; a cut line is truncated away."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    tail, cut = b"", 0
    while True:  # back from the end to the last newline
        start = max(0, size - len(tail) - CHUNK)
        tail = os.pread(fd, size - len(tail) - start, start) + tail
        newline = tail.rfind(b"\n")
        if newline >= 0:
            cut = start + newline + 1
            tail = tail[newline + 1:]
            break
        if start == 0:
            break
    if whole_json(tail.decode("utf-8", errors="replace")):  # complete, only its newline is missing: keep it and finish the line
        os.pwrite(fd, b"\n", size)
    else:
        log.warning("%s: dropping a partly written last line (%d bytes) left by an interrupted run", path, len(tail))
        os.ftruncate(fd, cut)


def open_locked(path: Path) -> int:
    """The file opened for reading and appending (created if missing), with an exclusive flock held
    until the descriptor is closed."""
    if path.exists() and not path.is_file():
        raise HarnessError(f"{path} is not a file (a folder?); move it away so it can be written there")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise HarnessError(f"{path}: cannot open it for writing ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


class RecordStore:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def read_bytes(self) -> bytes:
        if not self.path.exists():
            return b""
        if not self.path.is_file():
            raise HarnessError(f"{self.path} is not a file (a folder?); move it away so records can be written there")
        return self.path.read_bytes()

    def lines(self) -> Iterator[Record]:
        """Every readable record line in file order (a key's history included). Read-only."""
        return read_jsonl(self.read_bytes(), Record, self.path, "records of this harness version")

    def load(self, repair: bool = False) -> dict[str, Record]:
        """Every complete record, latest per key. Read-only unless `repair` (for the writer: see `repair`)."""
        if repair:
            self.repair()
        return latest_by_key(self.read_bytes(), Record, self.path, "records of this harness version")

    def repair(self) -> None:
        """Finish or drop a last line left without its newline (a crash mid-append). Holds the append lock."""
        if not self.path.is_file():
            self.read_bytes()  # a folder in the way: the clear error
            return
        fd = open_locked(self.path)
        try:
            repair_tail(fd, self.path)
        finally:
            os.close(fd)

    def append(self, records: Iterable[Record]) -> None:
        lines = secrets.scrub("".join(dump_line(r) + "\n" for r in records))  # a server may echo a key
        if not lines:
            return
        fd = open_locked(self.path)
        try:
            repair_tail(fd, self.path)  # a line cut short by a crash would swallow the first new one
            write_all(fd, lines.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class Sample:
    record: Record  # the latest line for this completion
    verdicts: dict[str, Verdict]  # judge id -> that judge's latest verdict, in the order first seen
    key: str  # the record's key (a content hash: computed once)


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
