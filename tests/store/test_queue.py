"""Labels on your own outputs as a planned step: a seeded random queue, filled in a spreadsheet, imported, and
the prediction-powered ASR in asr.csv; `labels plan` answers with a number; bad queue files change nothing."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pandas as pd
import pytest
from conftest import call_main

from harness.analysis import report
from harness.cli import labels as labels_command
from harness.store import labels
from harness.store.queue import cell_of
from harness.store.records import RecordStore
from harness.view.synthetic import run_folder


@pytest.fixture
def run(tmp_path) -> Path:
    return run_folder(tmp_path / "runs" / "a", 120, seed=4)


def fill(path: Path, decide) -> Path:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["label"] = decide(row)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_queue_fill_import_gives_the_prediction_powered_asr(run, tmp_path, capsys):
    code, out, err = call_main(labels_command.main, capsys, "queue", run, "--n", "40", "--seed", "3", "--out",
                               tmp_path / "q.csv")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "q.csv", encoding="utf-8")))
    assert len(rows) == 40 and {r["label"] for r in rows} == {""}
    assert "verdict" not in rows[0] and "harmful" not in rows[0]  # blind: no judge verdict in the file
    records = RecordStore(run / "records.jsonl").load()
    cells = {cell_of(r) for r in records.values() if r.behavior.label == "harmful"}
    assert {r["cell"] for r in rows} == cells  # stratified: every table cell drawn from
    # the same seed draws the same samples; a second queue skips what the first drew
    again = call_main(labels_command.main, capsys, "queue", run, "--n", "10", "--seed", "3", "--out", tmp_path / "q2.csv")
    assert again[0] == 0
    second = {r["key"] for r in csv.DictReader(open(tmp_path / "q2.csv", encoding="utf-8"))}
    assert not second & {r["key"] for r in rows}

    truth = {k: "harmful" if r.verdict.harmful else "not_harmful" for k, r in records.items()}
    fill(tmp_path / "q.csv", lambda row: truth[row["key"]])
    code, out, err = call_main(labels_command.main, capsys, "import", tmp_path / "q.csv", run)
    assert code == 0 and "40 labels added" in out, err
    stored = {k: c[-1] for k, c in labels.read(run).items()}
    assert all(label.queue for label in stored.values())
    report.write(list(records.values()), run)
    table = pd.read_csv(run / "asr.csv")
    assert {"asr_ppi", "asr_ppi_lo", "asr_ppi_hi", "ppi_labels", "ppi_scope"} <= set(table.columns)
    ok = table.dropna(subset=["asr_ppi"])
    assert len(ok) == len(table)
    assert ((ok["asr_ppi_lo"] <= ok["asr_ppi"]) & (ok["asr_ppi"] <= ok["asr_ppi_hi"])).all()
    # labels that agree with the judge everywhere: the corrected ASR is the judge's
    assert ok["asr_ppi"].round(6).tolist() == ok["asr"].round(6).tolist()
    notes = (run / "asr.md").read_text()
    assert "40 human labels drawn by random queues" in notes


def test_hand_picked_labels_never_enter_it(run, tmp_path, capsys):
    key = next(iter(RecordStore(run / "records.jsonl").load()))
    export = tmp_path / "hand.json"
    export.write_text('{"format": "harness-labels/1", "labels": [{"key": "%s", "label": "harmful"}]}' % key)
    labels.import_file(export, [run])
    report.write(list(RecordStore(run / "records.jsonl").load().values()), run)
    assert "asr_ppi" not in pd.read_csv(run / "asr.csv").columns
    assert "chosen by hand" in (run / "asr.md").read_text()


def test_plan_answers_with_a_number(run, capsys):
    code, out, _ = call_main(labels_command.main, capsys, "plan", run, "--width", "10")
    assert code == 0 and "more queued labels" in out
    assert int(out.split()[0]) > 0


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[0].update(key=rows[0]["key"][:-1] + "9"), "does not hold"),
    (lambda rows: rows[1].update(label="yes"), "labels outside"),
    (lambda rows: rows[2].update(queue="q00000000"), "their queue did not draw"),
])
def test_a_bad_queue_file_is_one_line_and_writes_nothing(run, tmp_path, capsys, edit, message):
    call_main(labels_command.main, capsys, "queue", run, "--n", "5", "--out", tmp_path / "q.csv")
    path = fill(tmp_path / "q.csv", lambda row: "harmful")
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    edit(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = digest(run)
    code, _, err = call_main(labels_command.main, capsys, "import", path, run)
    assert code == 2 and message in err and "Traceback" not in err
    assert digest(run) == before


def test_a_plan_for_a_run_without_verdicts_is_one_line(tmp_path, capsys):
    from harness.types import Behavior, Completion, Message, Record, Request, Verdict

    b = Behavior(id="b", prompt="p")
    r = Record(run="r", model="m", defense="none", benchmark="x", behavior=b,
               completion=Completion(request=Request(behavior_id="b", messages=(Message(role="user", content="p"),),
                                                     attack="direct"), text="t"),
               verdict=Verdict(harmful=None, judge="k@1", error="timeout"))
    RecordStore(tmp_path / "run" / "records.jsonl").append([r])
    code, _, err = call_main(labels_command.main, capsys, "plan", tmp_path / "run", "--width", "10")
    assert code == 2 and "no judge verdicts" in err


def test_a_completion_with_a_lone_surrogate_is_queued(tmp_path, capsys):
    from harness.types import Behavior, Completion, Message, Record, Request, Verdict

    b = Behavior(id="b", prompt="p")
    r = Record(run="r", model="m", defense="none", benchmark="x", behavior=b,
               completion=Completion(request=Request(behavior_id="b", messages=(Message(role="user", content="p"),),
                                                     attack="direct"), text="odd \ud800 text"),
               verdict=Verdict(harmful=True, judge="k@1"))
    RecordStore(tmp_path / "run" / "records.jsonl").append([r])
    code, _, err = call_main(labels_command.main, capsys, "queue", tmp_path / "run", "--n", "1", "--out", tmp_path / "q.csv")
    assert code == 0, err
    assert "odd \\ud800 text" in (tmp_path / "q.csv").read_text(encoding="utf-8")
