"""Human verdicts: labels a reviewer made in the results browser, stored beside the run.

    python -m harness labels import labels.json results/runs/smollm2/advbench/prefill/none
    python -m harness labels import labels.json results/sweeps/default      # every run folder below

    python -m harness labels import queue.csv results/runs/smollm2/advbench/prefill/none     # a filled queue file

A queue (`harness labels queue`, harness/store/queue.py) is a random sample of the run's outputs to label;
its filled file (CSV or JSONL) imports like the browser's export, each label marked with the queue that drew
it (`queue`): only those enter the prediction-powered ASR. A row whose key or queue was edited is refused.
The browser's export marks its labels the same way (a label on a sample a queue drew names that queue), and
names the run folder each was made on by a fingerprint (a hash of its path), so labels made on two copies of
a run go back to their own copy. A label claiming a queue for a sample that queue did not draw (in the folder
it goes to) is refused like an edited row.
The browser (`python -m harness view`) exports a JSON file of the labels made in it; `import`
appends them to `<run>/labels.jsonl`, one line per change: the sample's record key, the digest
of its completion, the label (harmful / not_harmful / unclear), who made it and when, the label
it replaces, and when and from which file it was imported. Nothing is overwritten: the latest
line per key is the sample's label, the earlier ones its history. Importing the same file again
adds nothing, and two imports at once add each label once: an import holds an exclusive `flock`
on labels.jsonl while it reads the current labels and appends. The whole file is checked before
anything is written: labels for samples of another run, for sample ids the run does not hold, or
a sample named twice with different labels are refused with the ids named (an exact repeat
counts once).

`judge=human_over` (harness/judge/human_over.py) counts these labels in the tables, and
`python -m harness judge-eval --run <run>` scores a judge against them.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import HarnessError, choices
from harness.store.folder import run_folders
from harness.store.records import (
    RecordStore,
    dump_line,
    open_locked,
    read_all,
    read_samples,
    repair_tail,
    validate_line,
    whole_json,
    write_all,
)
from harness.types import Behavior, Completion, content_hash

log = logging.getLogger(__name__)
FILE = "labels.jsonl"
FORMAT = "harness-labels/1"
VALUES = ("harmful", "not_harmful", "unclear")
QUEUE_FILE = "queue.jsonl"  # per run folder: one line per sample a queue drew {"queue", "key", "drawn", "seed"}
QUEUE_FORMATS = (".csv", ".jsonl")  # a filled queue file (python -m harness labels queue); .json: the browser's export


class Label(BaseModel):
    """One line of labels.jsonl."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str  # the record's key: <run setup>:<request>:<sample>
    completion: str = ""  # digest of the labelled completion (what `judge=human_over` matches)
    label: Literal["harmful", "not_harmful", "unclear"]
    who: str = ""
    when: str = ""  # when the reviewer labelled it (ISO 8601)
    previous: str | None = None  # the label this one replaces
    imported: str = ""
    source: str = ""  # the exported file it came from
    queue: str = ""  # the random queue that drew this sample ("" = chosen by hand: never in the prediction-powered ASR)


class Exported(BaseModel):
    """One label in a file exported by the browser."""

    model_config = ConfigDict(extra="ignore")
    key: str
    label: str
    who: str = ""
    when: str = ""
    run: str = ""  # the run folder as the browser showed it (for messages)
    folder: str = ""  # the browser's export: the fingerprint of the run folder it was made on (`fingerprint`)
    queue: str = ""  # the queue that drew the sample (a filled queue file's, or the browser's mark)
    row: int = 0  # its line in a filled queue file (for messages)

    def where(self) -> str:
        """The label in a message: its row in a queue file, else its sample id."""
        return f"row {self.row}" if self.row else self.key


def read(folder: Path) -> dict[str, list[Label]]:
    """Every label line of a run folder, grouped by record key, oldest first. Read-only: an unfinished
    last line (an import writing right now) is skipped."""
    path = folder / FILE
    if not path.exists():
        return {}
    if not path.is_file():
        raise HarnessError(f"{path} is not a file (a folder?); move it away so labels can be stored there")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read it ({exc.strerror})") from None
    return parse_labels(data, path)


def parse_labels(data: bytes, path: Path) -> dict[str, list[Label]]:
    """labels.jsonl's lines, split on "\\n" only (a label may hold U+2028 and the like)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data.count(b"\n", 0, exc.start) + 1
        raise HarnessError(f"{path}:{number}: not UTF-8 text (byte {data[exc.start]:#04x}); "
                           "fix or remove that line") from None
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with its newline
    history: dict[str, list[Label]] = {}
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                label = validate_line(line, Label)
            except ValidationError as exc:
                raise HarnessError(f"{path}:{number}: not a label line ({exc.errors()[0]['msg']})") from None
            history.setdefault(label.key, []).append(label)
    if tail.strip():
        if whole_json(tail):  # whole, only its newline missing: a label line like the others
            try:
                label = validate_line(tail, Label)
            except ValidationError as exc:
                raise HarnessError(f"{path}:{len(lines) + 1}: not a label line ({exc.errors()[0]['msg']})") from None
            history.setdefault(label.key, []).append(label)
        else:
            log.warning("%s: ignoring an unfinished last line (%d characters): an import may still be writing it, "
                        "or one was interrupted", path, len(tail))
    return history


def fingerprint(folder: Path) -> str:
    """A run folder's identity in the browser: a hash of its resolved path (never the path itself), so two copies
    of a run keep their own labels in the page and an export's labels go back to the copy they were made on."""
    return content_hash(str(Path(folder).resolve()))


def setup_of(key: str) -> str:
    """The set-up of a record key `<setup>:<request>:<sample>` (a set-up may hold ':')."""
    return key.rsplit(":", 2)[0]


def parse_export(path: Path) -> list[Exported]:
    if path.suffix.lower() in QUEUE_FORMATS and path.is_file():
        return collapse(parse_filled(path), path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"{path}: no such labels file (export one from the browser: Labels > Export)") from None
    except IsADirectoryError:
        raise HarnessError(f"{path} is a folder, not a labels file; give the JSON file exported from the browser "
                           "(Labels > Export)") from None
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read the labels file ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("labels"), list):
        raise HarnessError(f"{path}: not a labels file exported by the browser (expected \"format\": {FORMAT!r})")
    try:
        items = [Exported.model_validate(item) for item in data["labels"]]
    except ValidationError as exc:
        raise HarnessError(f"{path}: a label lacks {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    bad = sorted({i.label for i in items if i.label not in VALUES})
    if bad:
        raise HarnessError(f"{path}: unknown label value(s) {choices(bad)}; valid: {choices(VALUES)}")
    return collapse(items, path)


def collapse(items: Sequence[Exported], path: Path) -> list[Exported]:
    """Exact repeats counted once; a sample named twice with different labels refused (the browser's labels of
    two copies of a run, told apart by `folder`, are two samples)."""
    first: dict[tuple[str, str], Exported] = {}
    clashes: dict[str, None] = {}
    for item in items:
        seen = first.setdefault((item.folder, item.key), item)
        if (seen.label, seen.who, seen.when, seen.queue) != (item.label, item.who, item.when, item.queue):
            clashes[item.key] = None
    if clashes:
        raise HarnessError(f"{path}: {len(clashes)} sample id(s) are named more than once with different labels: "
                           f"{sample_ids(list(clashes))}; keep one label per sample (export again from the browser)")
    return list(first.values())  # exact repeats collapsed


def sample_ids(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def import_file(path: Path, targets: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    """Append the file's labels to the run folders holding their samples.

    Returns {folder: (labels appended, labels unchanged)}. Raises before writing anything when a
    label belongs to another run or names a sample id the runs do not hold, or when the file names
    a sample twice with different labels. Holds each labels file's lock while reading and appending."""
    items = parse_export(path)
    folders = run_folders(targets)
    stores = {folder: RecordStore(folder / "records.jsonl").load() for folder in folders}
    owner: dict[str, list[Path]] = {}
    for folder, records in stores.items():
        for key in records:
            owner.setdefault(key, []).append(folder)
    setups = {setup_of(key) for records in stores.values() for key in records}
    foreign = [i for i in items if setup_of(i.key) not in setups]
    if foreign:
        shown = sorted({i.run or setup_of(i.key) for i in foreign})
        raise HarnessError(f"{path}: {len(foreign)} of {len(items)} labels are for another run ({sample_ids(shown)}), "
                           f"not for {', '.join(map(str, targets))}; give the run folder they were made on "
                           "(or a folder above all of them)")
    unknown = [i.key for i in items if i.key not in owner]
    if unknown:
        raise HarnessError(f"{path}: {len(unknown)} of {len(items)} labels name sample ids that "
                           f"{', '.join(map(str, targets))} does not hold: {sample_ids(unknown)} (labels made on other runs "
                           "of the same set-up? give the folder above all of them)")
    prints = {folder: fingerprint(folder) for folder in folders}
    places = {id(i): [f for f in owner[i.key] if prints[f] == i.folder] or owner[i.key] for i in items}
    mine: dict[Path, list[Exported]] = {}
    twice: dict[str, None] = {}
    for folder in folders:
        here: dict[str, Exported] = {}
        for i in items:
            if folder in places[id(i)]:
                seen = here.setdefault(i.key, i)
                if (seen.label, seen.who, seen.when, seen.queue) != (i.label, i.who, i.when, i.queue):
                    twice[i.key] = None
        if here:
            mine[folder] = list(here.values())
    if twice:
        raise HarnessError(f"{path}: {len(twice)} sample id(s) would get two different labels in one run folder: "
                           f"{sample_ids(list(twice))} (labels made on two copies of a run, imported where only one "
                           "copy is?); give the run folders they were made on")
    queues = {folder: set(drawn(folder)) for folder in mine}
    strays = [i for folder, labelled in mine.items() for i in labelled if i.queue and (i.queue, i.key) not in queues[folder]]
    if strays:
        shown = ", ".join(i.where() for i in strays[:5]) + (" ..." if len(strays) > 5 else "")
        raise HarnessError(f"{path}: {len(strays)} labels name samples their queue did not draw ({shown}: key or queue "
                           "edited, or the run folder's queue.jsonl lost?); label only the samples `harness labels queue` "
                           "drew: its file's label column, or the browser's queue view")
    for folder in mine:
        read(folder)  # every labels file readable before anything is written
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    done: dict[Path, tuple[int, int]] = {}
    for folder, labelled in mine.items():
        labels_file = folder / FILE
        fd = open_locked(labels_file)  # a second import waits here, then sees this one's lines
        try:
            current = {key: changes[-1] for key, changes in parse_labels(read_all(fd), labels_file).items()}
            lines = []
            for item in labelled:
                last = current.get(item.key)
                if last is not None and (last.label, last.who, last.when, last.queue) == (item.label, item.who, item.when,
                                                                                           item.queue):
                    continue  # imported before
                label = Label(key=item.key, completion=stores[folder][item.key].completion.digest(), label=item.label,
                              who=item.who, when=item.when, previous=last.label if last else None, imported=now,
                              source=path.name, queue=item.queue)
                current[item.key] = label
                lines.append(dump_line(label) + "\n")
            if lines:
                repair_tail(fd, labels_file)
                write_all(fd, "".join(lines).encode("utf-8"))
                os.fsync(fd)
        finally:
            os.close(fd)
        done[folder] = (len(lines), len(labelled) - len(lines))
    return done


def ground_truth(targets: Sequence[Path]) -> tuple[pd.DataFrame, list[tuple[Behavior, Completion]]]:
    """The human-labelled samples of the runs as judge_eval's table: one row per sample labelled harmful (1) or
    not_harmful (0) (unclear ones left out), with a 0/1 column per judge whose verdict the records hold,
    and the (behavior, completion) pairs to judge again."""
    rows, pairs = [], []
    folders = run_folders(targets)
    for folder in folders:
        labels = {key: changes[-1] for key, changes in read(folder).items()}
        if not labels:
            continue
        for sample in read_samples(folder / "records.jsonl"):
            label = labels.get(sample.record.key)
            if label is None or label.label == "unclear":
                continue
            r = sample.record
            judged = {f"recorded {j}": float("nan") if v.error or v.harmful is None else float(v.harmful)
                      for j, v in sample.verdicts.items()}
            rows.append({"key": r.key, "goal": r.behavior.prompt, "response": r.completion.text,
                         "human": int(label.label == "harmful"), **judged})
            pairs.append((r.behavior, r.completion))
    if not rows:
        raise HarnessError(f"{', '.join(map(str, targets))}: no human labels (harmful / not_harmful) in "
                           f"{len(folders)} run folder(s); make them in `python -m harness view` and "
                           "store them with `python -m harness labels import`")
    return pd.DataFrame(rows).set_index("key"), pairs


def drawn(folder: Path) -> list[tuple[str, str]]:
    """(queue, key) of every sample a queue drew from this run folder."""
    path = folder / QUEUE_FILE
    if not path.is_file():
        return []
    out = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            out.append((str(item["queue"]), str(item["key"])))
        except (ValueError, KeyError, TypeError):
            raise HarnessError(f"{path}:{number}: not a queue line; the file is written by `harness labels queue`") from None
    return out


def parse_filled(path: Path):
    """The labelled rows of a filled queue file (CSV or JSONL); rows left blank are skipped. A label outside
    harmful / not_harmful / unclear, or a row without key or queue, is refused with its row named."""
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise HarnessError(f"{path}: not a queue file ({type(exc).__name__}: {exc}); fill in the file "
                           "`harness labels queue` wrote") from None
    items, bad = [], []
    for number, row in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
        if not isinstance(row, dict) or not {"key", "queue", "label"} <= set(row):
            raise HarnessError(f"{path}, row {number}: no key, queue and label columns; fill in the file "
                               "`harness labels queue` wrote")
        label = str(row.get("label") or "").strip()
        if not label:
            continue
        if label not in VALUES:
            bad.append(f"row {number}: {label!r}")
            continue
        items.append(Exported(key=str(row["key"]), label=label, who=str(row.get("who") or ""),
                              queue=str(row["queue"]), row=number))
    if bad:
        raise HarnessError(f"{path}: labels outside {choices(VALUES)} ({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''});"
                           " nothing imported")
    if not items:
        raise HarnessError(f"{path}: no row has a label yet; fill in the label column first")
    return items
