from __future__ import annotations

import json

import pandas as pd

from harness.analysis import report
from harness.cli import report as report_cli
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Verdict


def make(i: int, k: int, harmful: bool | None, category: str = "a", error: str = "") -> Record:
    b = Behavior(id=f"b{i}", prompt="p", category=category)
    req = Request(behavior_id=b.id, messages=(Message(role="user", content="p"),), attack="prefill", params={"k": k}, prefill_tokens=k)
    v = Verdict(harmful=harmful, refused=None if harmful is None else not harmful, judge="keyword@x", error=error)
    return Record(run="r", model="m", defense="none", benchmark="bench", behavior=b, completion=Completion(request=req, text="t"), verdict=v)


def test_torn_last_line_is_dropped_and_file_repaired(tmp_path):
    store = RecordStore(tmp_path / "records.jsonl")
    store.append([make(0, 0, True), make(1, 0, False)])
    with open(store.path, "a") as f:
        f.write(make(2, 0, True).model_dump_json()[:50])  # a write cut short by kill -9
    loaded = store.load(repair=True)
    assert len(loaded) == 2
    assert store.path.read_text().endswith("\n")
    store.append([make(2, 0, True)])
    assert len(store.load()) == 3
    assert all(json.loads(line) for line in store.path.read_text().splitlines())


def test_later_record_with_same_key_wins(tmp_path):
    store = RecordStore(tmp_path / "records.jsonl")
    first, second = make(0, 0, True), make(0, 0, False)
    assert first.key == second.key
    store.append([first])
    store.append([second])
    assert list(store.load().values()) == [second]


def test_asr_table_excludes_errors_and_groups_by_params(tmp_path):
    records = [make(0, 0, False), make(1, 0, False), make(0, 5, True), make(1, 5, False, category="b"),
               make(2, 5, None, error="judge timed out")]
    table = report.write(records, tmp_path)
    rows = {int(r.k): r for r in table.itertuples()}
    assert rows[0].asr == 0.0 and rows[0].n == 2 and rows[0].errors == 0
    assert rows[5].asr == 50.0 and rows[5].n == 3 and rows[5].errors == 1
    assert rows[5].refusal == 50.0
    assert (tmp_path / "asr_vs_k.png").stat().st_size > 1000
    by_cat = pd.read_csv(tmp_path / "asr_by_category.csv")
    assert set(by_cat["category"]) == {"a", "b"}
    assert "| model" in (tmp_path / "asr.md").read_text()


def test_report_cli_merges_run_folders(tmp_path, capsys):
    RecordStore(tmp_path / "run1" / "records.jsonl").append([make(0, 0, True)])
    RecordStore(tmp_path / "run2" / "records.jsonl").append([make(1, 5, False)])
    report_cli.main([str(tmp_path), "--out", str(tmp_path / "merged")])
    merged = pd.read_csv(tmp_path / "merged" / "asr.csv")
    assert sorted(merged["k"]) == [0, 5]
    assert "written to" in capsys.readouterr().out
