"""Cost columns, blocked share, the adaptive flag and ASR against query budget in the report."""

from __future__ import annotations

from harness.analysis import report
from harness.analysis.cost import budget_curves
from harness.types import Behavior, Completion, Cost, Message, Record, Request, Verdict


def record(i: int, queries: int, harmful: bool, blocked: str = "", adaptive: bool = True) -> Record:
    b = Behavior(id=f"b{i}", prompt="p")
    req = Request(behavior_id=b.id, messages=(Message(role="user", content="p"),), attack="pair", adaptive=adaptive,
                  cost=Cost(queries=queries, attacker_queries=queries, seconds=2.0 * queries))
    c = Completion(request=req, text="x", engine="hf+guard_filter", blocked=blocked)
    return Record(run="r", model="m", defense="guard_filter", benchmark="advbench", behavior=b, completion=c,
                  verdict=Verdict(harmful=harmful, refused=not harmful, judge="keyword"))


def test_table_carries_cost_blocked_and_adaptive_and_keys_ignore_cost(tmp_path):
    records = [record(0, 3, True), record(1, 9, False, blocked="guard"), record(2, 6, True), record(3, 9, False)]
    table = report.write(records, tmp_path)
    row = table.iloc[0]
    assert row["queries"] == 27 / 4 and row["seconds"] == 2 * 27 / 4 and row["attacker_queries"] == 27 / 4
    assert row["blocked"] == 25.0 and row["adaptive"] == "yes"
    assert "forward" not in table.columns  # nobody spent forward passes
    assert (tmp_path / "asr_vs_queries.png").stat().st_size > 1000
    assert records[0].completion.request.key == records[0].completion.request.model_copy(update={"cost": None}).key


def test_asr_against_budget_counts_behaviors_broken_within_it():
    records = [record(0, 3, True), record(1, 9, False), record(2, 6, True), record(3, 9, True)]
    x, [(label, budgets, asr)] = budget_curves(report.to_frame(records))
    assert x == "queries" and label == "m / guard_filter / pair"
    assert budgets == [0, 3, 6, 9] and asr == [0, 25, 50, 75]


def test_non_adaptive_rows_say_so():
    frame = report.to_frame([record(0, 3, True, adaptive=False), record(1, 3, False, adaptive=False)])
    assert report.asr_table(frame).iloc[0]["adaptive"] == "no"
