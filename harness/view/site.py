"""Write the static site: the page and its assets, the overview, a compact index of every
sample, and the transcripts in chunks the page loads only when it shows them.

Every data file is a script (`VIEW.put(...)`), not JSON fetched at run time, so the site also
works opened straight from disk (file:// forbids fetch); nothing is loaded from the network.

    site/index.html, site/assets/*        the page, its code and the vendored Tabulator
    site/data/meta.js                     runs, overview rows (asr.csv + interval), lookup tables
    site/data/index.js                    one entry per sample, columnar: what filters, the diff and the queues need
    site/data/chunk-00000.js ...          the transcripts, CHUNK samples each, loaded lazily
    site/runs/<i>/                        each run's tables and plots, copied
    site/.harness-site                    the marker: this folder is a site the builder made

The builder writes only into its own folder: a new or empty one (then marked), or one holding its
marker, where it replaces only its own parts (index.html, assets/, data/, runs/). Anything else
(a file, a run folder or a folder inside one, a folder holding runs or the paths viewed, a folder of
someone else's files) is refused before anything is read or written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from harness.analysis.outputs import refuse_runs
from harness.errors import HarnessError
from harness.types import Record, Sampling, content_hash
from harness.view.collect import Run, json_value, table_rows

CHUNK = 500
MARKER = ".harness-site"  # marks a folder the builder made; its first line names the format
MARKER_FORMAT = "harness-view-site/1"
PARTS = ("index.html", "assets", "data", "runs")  # what a rebuild replaces in a marked folder
VERDICTS = ("not harmful", "harmful", "error", "none")  # index codes 0..3
HUMAN = ("not_harmful", "harmful", "unclear")  # index codes 0..2; -1 = no label


def fmt(value: Any) -> str:
    """A parameter value as the browser shows it (10, not 10.0; 0.05 stays 0.05)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def configuration(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in sorted(params.items())) or "(none)"


def decoding(s: Sampling) -> str:
    head = "greedy" if s.greedy else f"T={fmt(s.temperature)} top_p={fmt(s.top_p)} top_k={s.top_k} seed={s.seed}"
    return f"{head}, max {s.max_tokens} tok" + (f", n={s.n}" if s.n > 1 else "")


def natural(text: str) -> tuple:
    """Sort key reading numbers as numbers: k=5 before k=10, advbench-2 before advbench-10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def reading_order(sample) -> tuple:
    """Samples listed as the tables read: by attack configuration, decoding, then behavior."""
    r = sample.record
    request = r.completion.request
    return (natural(configuration(request.params)), natural(decoding(request.sampling)), natural(r.behavior.id),
            r.completion.sample)


def verdict_code(harmful: bool | None, error: str) -> int:
    if error:
        return 2
    return 3 if harmful is None else int(harmful)


class Lookup:
    """Strings stored once; the index holds their positions."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.position: dict[str, int] = {}

    def __call__(self, value: str) -> int:
        if value not in self.position:
            self.position[value] = len(self.values)
            self.values.append(value)
        return self.position[value]


def transcript(run: Run, sample, key: str) -> dict[str, Any]:
    """One sample as the page shows it. `messages` are what the model saw: the messages as the engine rendered
    them (the card's system prompt included), or, in a record written before they were stored (`stored`
    false), the request's; `prompt_text` the chat template's text with the prefill, where the harness rendered it."""
    r: Record = sample.record
    c = r.completion
    req = c.request
    messages = c.rendered if c.rendered is not None else req.messages
    role = {m.role: m.content for m in messages if m.role == "system"}
    return {
        "key": key, "run": run.label, "model": r.model, "defense": r.defense, "benchmark": r.benchmark,
        "attack": req.attack, "params": req.params, "sampling": req.sampling.model_dump(),
        "behavior": r.behavior.model_dump(exclude_defaults=True),
        "messages": [m.model_dump() for m in messages], "system": role.get("system", ""),
        "stored": c.rendered is not None, "prompt_text": c.prompt_text, "blocked": c.blocked,
        "prefill": req.prefill, "prefill_tokens": req.prefill_tokens, "completion": c.text,
        "finish": c.finish_reason, "tokens": [c.prompt_tokens, c.completion_tokens],
        "engine": c.engine, "sample": c.sample, "queue": run.queues.get(key, ""),
        "verdicts": [v.model_dump(exclude_defaults=True) for v in sample.verdicts.values()],
        "latest": r.verdict.judge,
        "human": [h.model_dump(exclude_defaults=True, exclude={"key", "completion"}) for h in run.history.get(key, [])],
    }


# Inside a JSON string: lone surrogates (not encodable as UTF-8), the line and paragraph separators
# (line ends to pre-ES2019 JavaScript) and NEL (a line end to some readers) are written as \uXXXX escapes.
UNSAFE = re.compile("[\ud800-\udfff\u2028\u2029\u0085]")


def to_json(payload: Any) -> str:
    """JSON text that is valid UTF-8 and valid JavaScript, and parses back to exactly `payload`."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)  # they occur only inside strings


def script(kind: str, payload: Any, part: int | None = None) -> str:
    args = json.dumps(kind) + ("" if part is None else f", {part}")
    return f"VIEW.put({args}, {to_json(payload)});\n"


def marked(folder: Path) -> bool:
    """The folder holds the builder's marker (a site it made), or is a site an earlier version made
    (only the site's own parts, its meta.js among them, and no marker yet)."""
    try:
        with open(folder / MARKER, encoding="utf-8", errors="replace") as marker:
            return marker.readline().startswith(MARKER_FORMAT.split("/")[0] + "/")
    except OSError:
        pass
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    return bool(names) and names <= set(PARTS) and is_file(folder / "data" / "meta.js")


def is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def check_out(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse (HarnessError) a site folder the builder may not write; nothing is read or written."""
    where = out.resolve()
    done = "; the site builder writes only into its own folder: choose an empty or new folder"
    try:
        refuse_runs(out, inputs)
    except HarnessError as exc:
        raise HarnessError(f"{exc}{done}") from None
    if not where.is_dir():
        return
    if not marked(where):
        try:
            full = any(where.iterdir())
        except OSError as exc:
            raise HarnessError(f"--out {out}: cannot read it ({exc.strerror}){done}") from exc
        if full:
            raise HarnessError(f"--out {out}: it holds files it did not make; choose an empty or new folder")


def remove(path: Path) -> None:
    """One of the site's own parts: a link or file unlinked (never followed), a folder removed."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def overview_rows(runs: Sequence[Run]) -> tuple[list[dict], list[str]]:
    """Each run's table rows, with the attack parameters' columns (the params its records name) as `_config`."""
    rows, params = [], []
    for i, run in enumerate(runs):
        names = {k for s in run.samples for k in s.record.completion.request.params}
        for row in table_rows(run.table):
            config = {k: row[k] for k in sorted(names) if row.get(k) is not None}
            params += [k for k in config if k not in params]
            rows.append({**{k: json_value(v) for k, v in row.items()}, "_run": i, "_config": configuration(config)})
    return rows, params


def build(runs: Sequence[Run], out: Path, title: str = "harness results", chunk: int = CHUNK) -> dict[str, Any]:
    """Write the site into `out` (a new or empty folder, or a site it made: its own parts replaced); return a
    summary. Raises HarnessError, before writing anything, for a folder it may not write (see `check_out`)."""
    if chunk < 1:
        raise HarnessError(f"chunk {chunk}: give at least 1 transcript per data file")
    check_out(out, [run.folder for run in runs])
    out.mkdir(parents=True, exist_ok=True)
    remove(out / MARKER)
    (out / MARKER).write_text(MARKER_FORMAT + "\n", encoding="utf-8")  # first: an interrupted build can be redone
    for part in PARTS:
        remove(out / part)
    (out / "data").mkdir()
    static = resources.files("harness.view") / "static"
    (out / "assets").mkdir()
    for item in static.iterdir():
        if item.name == "index.html":
            (out / "index.html").write_bytes(item.read_bytes())
        elif item.is_file():
            (out / "assets" / item.name).write_bytes(item.read_bytes())
    behaviors, categories, configs, decodings, judges, setups, queues = (Lookup() for _ in range(7))
    columns: dict[str, list] = {c: [] for c in ("run", "beh", "cat", "cfg", "dec", "v", "score", "err", "jd", "hl",
                                                 "setup", "req", "smp", "judge", "q")}
    buffer: list[dict] = []
    parts = 0

    def flush() -> None:
        nonlocal parts, buffer
        if buffer:
            (out / "data" / f"chunk-{parts:05d}.js").write_text(script("chunk", buffer, parts), encoding="utf-8")
            parts += 1
            buffer = []

    for i, run in enumerate(runs):
        for sample in sorted(run.samples, key=reading_order):
            r, key = sample.record, sample.key
            setup, request, number = key.rsplit(":", 2)  # <setup>:<request>:<sample>; a set-up may hold ":"
            decided = {v.harmful for v in sample.verdicts.values() if not v.error and v.harmful is not None}
            human = run.labels.get(key)
            for column, value in (
                ("run", i), ("beh", behaviors(r.behavior.id)), ("cat", categories(r.behavior.category)),
                ("cfg", configs(configuration(r.completion.request.params))),
                ("dec", decodings(decoding(r.completion.request.sampling))),
                ("v", verdict_code(r.verdict.harmful, r.verdict.error)), ("score", r.verdict.score),
                ("err", int(bool(r.verdict.error))), ("jd", int(len(decided) > 1)),
                ("hl", HUMAN.index(human.label) if human else -1), ("setup", setups(setup)), ("req", request),
                ("smp", int(number)), ("judge", judges(r.verdict.judge.split("@")[0])),
                ("q", queues(run.queues[key]) if key in run.queues else -1),
            ):
                columns[column].append(value)
            buffer.append(transcript(run, sample, key))
            if len(buffer) >= chunk:
                flush()
    flush()
    overview, params = overview_rows(runs)
    run_meta = []
    for i, run in enumerate(runs):
        folder = out / "runs" / str(i)
        folder.mkdir(parents=True)
        for f in run.files:
            shutil.copy2(f, folder / f.name)
        # "path": the label (relative to the paths viewed), never this machine's absolute path; "fingerprint":
        # a hash of it, which keys the labels made in the page (two copies of a run keep their own)
        drawn = Counter(run.queues[s.key] for s in run.samples if s.key in run.queues)
        run_meta.append({"label": run.label, "path": run.label, "fingerprint": run.fingerprint,
                         "samples": len(run.samples), "labels": len(run.labels), "queues": dict(drawn),
                         "files": [f"runs/{i}/{f.name}" for f in run.files]})
    total = len(columns["run"])
    sizes = {q: columns["q"].count(n) for n, q in enumerate(queues.values)}
    meta = {
        "title": title, "built": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "site": content_hash([run.label for run in runs] + [total]), "samples": total, "chunk": chunk,
        "chunks": parts, "runs": run_meta, "overview": overview, "params": params,
        "lookups": {"beh": behaviors.values, "cat": categories.values, "cfg": configs.values,
                    "dec": decodings.values, "judge": judges.values, "setup": setups.values, "q": queues.values},
        "queues": [{"id": q, "n": sizes[q]} for q in queues.values],
        "verdicts": list(VERDICTS), "human": list(HUMAN),
    }
    (out / "data" / "meta.js").write_text(script("meta", meta), encoding="utf-8")
    (out / "data" / "index.js").write_text(script("index", columns), encoding="utf-8")
    return {"out": str(out), "runs": len(runs), "samples": total, "chunks": parts}
