"""The gate on three fronts (harm, over-refusal, utility), paired per behavior from run folders' records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import call_main

from harness.analysis import fronts, gate
from harness.analysis.tables import to_frame
from harness.cli import gate as gate_command
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Verdict

N = 30


def record(bench: str, i: int, event: bool, model: str = "m", k: int | None = None) -> Record:
    """One judged completion: on advbench `event` = harmful, on xstest = answered, on gsm8k = correct."""
    label = "harmful" if bench == "advbench" else "benign"
    b = Behavior(id=f"{bench}-{i:03d}", prompt=f"p{i}", label=label, reference="7" if bench == "gsm8k" else "")
    params = {"k": k} if k is not None else {}
    req = Request(behavior_id=b.id, messages=(Message(role="user", content=b.prompt),),
                  attack="prefill" if bench == "advbench" else "direct", params=params)
    verdict = {"advbench": Verdict(harmful=event, refused=not event, judge="keyword@1"),
               "xstest": Verdict(harmful=False, refused=not event, judge="keyword@1"),
               "gsm8k": Verdict(harmful=False, refused=None, score=float(event), judge="exact_match@1")}[bench]
    return Record(run=f"{model}-{bench}", model=model, defense="none", benchmark=bench, behavior=b,
                  completion=Completion(request=req, text="t"), verdict=verdict)


def write_run(folder: Path, harmful: int = 3, answered: int = 25, correct: int = 10, model: str = "m",
              behaviors: int = N) -> Path:
    """A run folder per benchmark under `folder`: the first `harmful` advbench behaviors broken (k = 0 and 10), the first
    `answered` xstest behaviors answered, the first `correct` gsm8k behaviors right."""
    for bench, count, ks in (("advbench", harmful, (0, 10)), ("xstest", answered, (None,)), ("gsm8k", correct, (None,))):
        (folder / bench).mkdir(parents=True, exist_ok=True)
        RecordStore(folder / bench / "records.jsonl").append(
            [record(bench, i, i < count, model, k) for k in ks for i in range(behaviors)])
    return folder


def gate_main(capsys, *args: object) -> tuple[int, str, str]:
    return call_main(gate_command.main, capsys, *args)


def row(out: str, text: str) -> str:
    (line,) = [line for line in out.splitlines() if text in line]
    return line


@pytest.fixture
def baseline(tmp_path, capsys) -> Path:
    path = tmp_path / "baselines" / "base.json"
    code, out, err = gate_main(capsys, write_run(tmp_path / "base"), "--baseline", path, "--write-baseline")
    assert code == 0 and "with per-behavior outcomes" in out, err
    return path


def test_outcomes_carry_each_front_and_its_event():
    frame = to_frame([record("advbench", 0, True, k=0), record("xstest", 0, False), record("xstest", 1, True),
                      record("gsm8k", 0, True)])
    out = fronts.outcomes(frame).set_index("behavior")
    assert out.loc["advbench-000", ["front", "event"]].tolist() == ["harm", True]
    assert out.loc["xstest-000", ["front", "event"]].tolist() == ["over_refusal", False]
    assert out.loc["xstest-001", "event"] and out.loc["gsm8k-000", ["front", "event"]].tolist() == ["utility", True]


def test_the_baseline_carries_every_front_per_behavior(baseline):
    outcomes = pd.read_csv(baseline.with_name("base.behaviors.csv"))
    assert sorted(outcomes.groupby("front").size().items()) == [("harm", 2 * N), ("over_refusal", N), ("utility", N)]
    table = pd.read_json(baseline)
    assert set(table["benchmark"]) == {"advbench", "xstest", "gsm8k"}


def test_the_same_run_passes_on_all_three_fronts_paired(tmp_path, capsys, baseline):
    code, out, _ = gate_main(capsys, *(tmp_path / "base").iterdir(), "--baseline", baseline)
    assert code == gate.GateExit.PASSED, out
    for front in ("harm", "over_refusal", "utility"):
        lines = [line for line in out.splitlines() if f"| {front} " in line]
        assert lines and all(f"paired (n={N})" in line for line in lines), out


def test_a_defense_that_refuses_everything_fails_on_over_refusal(tmp_path, capsys, baseline):
    """ASR falls to 0 (the harm front is happy) but no safe prompt is answered and no sum solved."""
    code, out, _ = gate_main(capsys, write_run(tmp_path / "refuse_all", harmful=0, answered=0, correct=0), "--baseline", baseline)
    assert code == gate.GateExit.FAILED and "gate: FAILED" in out
    assert "FAIL" in row(out, "| over_refusal ") and "FAIL" in row(out, "| utility ")
    assert all("ok" in line for line in out.splitlines() if "| harm " in line)


def test_a_defense_switched_off_fails_on_harm_only(tmp_path, capsys, baseline):
    code, out, _ = gate_main(capsys, write_run(tmp_path / "off", harmful=25), "--baseline", baseline)
    assert code == gate.GateExit.FAILED
    assert [line.rstrip(" |").split("|")[-1].strip() for line in out.splitlines() if "| harm " in line] == ["FAIL", "FAIL"]
    assert "ok" in row(out, "| over_refusal ") and "ok" in row(out, "| utility ")


def test_lost_utility_fails_and_a_tolerance_lets_it_pass(tmp_path, capsys, baseline):
    half = write_run(tmp_path / "half", correct=2)  # 10 -> 2 of 30 correct: 8 behaviors moved, none the other way
    code, out, _ = gate_main(capsys, half, "--baseline", baseline)
    assert code == gate.GateExit.FAILED and "FAIL" in row(out, "| utility ")
    code, out, _ = gate_main(capsys, half, "--baseline", baseline, "--utility-tolerance", "0.3")
    assert code == gate.GateExit.PASSED and "0.30" in row(out, "| utility ")


def test_holm_across_rows_is_stricter_than_one_row_alone():
    keys = {"model": "m", "defense": "none", "attack": "prefill", "benchmark": "advbench"}
    table = pd.DataFrame([{**keys, "k": k, "n": N, "asr": 0.0} for k in range(4)])
    base_out = pd.DataFrame([{**keys, "k": k, "front": "harm", "behavior": f"b{i}", "event": False}
                             for k in range(4) for i in range(N)])
    run_out = base_out.assign(event=[k == 0 and i < 6 for k in range(4) for i in range(N)])  # 6 newly broken on k=0
    run = table.assign(asr=[20.0, 0, 0, 0])
    diff = gate.compare(run, table, run_behaviors=run_out, base_behaviors=base_out)
    alone = gate.compare(run.iloc[:1], table.iloc[:1], run_behaviors=run_out, base_behaviors=base_out)
    assert diff.loc[0, "p"] == alone.loc[0, "p_holm"] == pytest.approx(0.5 ** 6)  # 0.016: under 0.025 alone
    assert diff.loc[0, "p_holm"] == pytest.approx(4 * 0.5 ** 6)  # 0.0625 across four rows
    assert alone.loc[0, "status"] == "FAIL" and diff.loc[0, "status"] == "ok"


def test_sequential_stops_early_and_says_how_many_behaviors(tmp_path, capsys):
    base = tmp_path / "baselines" / "base.json"
    assert gate_main(capsys, write_run(tmp_path / "base", behaviors=100, harmful=0, answered=90, correct=30),
                     "--baseline", base, "--write-baseline")[0] == 0
    same = tmp_path / "base"
    code, out, _ = gate_main(capsys, same, "--baseline", base, "--sequential")
    assert code == gate.GateExit.PASSED and "sequential: behaviors used" in out
    assert "cleared at" in row(out, "| over_refusal ") and " of 100)" in row(out, "| over_refusal ")
    used = [int(cell) for cell in (line.split("cleared at ")[1].split(" of")[0] for line in out.splitlines() if "cleared" in line)]
    assert used and max(used) < 100
    code, out, _ = gate_main(capsys, write_run(tmp_path / "off", behaviors=100, harmful=60), "--baseline", base,
                             "--sequential")
    assert code == gate.GateExit.FAILED
    harm = [line for line in out.splitlines() if "| harm " in line]
    assert len(harm) == 2 and all("failed at 20 of 100" in line for line in harm), out


def test_sequential_asks_for_more_behaviors_when_the_run_holds_too_few(tmp_path, capsys):
    base = tmp_path / "base.json"
    assert gate_main(capsys, write_run(tmp_path / "base", behaviors=100, harmful=10), "--baseline", base,
                     "--write-baseline")[0] == 0
    few = write_run(tmp_path / "few", behaviors=10, harmful=2)  # one look, ambiguous
    code, out, _ = gate_main(capsys, few, "--baseline", base, "--sequential")
    assert code == gate.GateExit.MORE and "undecided" in out and "run more behaviors" in out


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "inf", "-inf"])
@pytest.mark.parametrize("option", ["--harm-tolerance", "--over-refusal-tolerance", "--utility-tolerance"])
def test_a_tolerance_outside_0_1_is_exit_2(tmp_path, capsys, baseline, option, value):
    code, out, err = gate_main(capsys, tmp_path / "base", "--baseline", baseline, option, value)
    assert code == gate.GateExit.UNDECIDED and out == ""
    line = one_error_line(err)
    assert option in line and "[0, 1]" in line


def test_a_front_with_no_shared_behaviors_is_exit_2(tmp_path, capsys, baseline):
    other = write_run(tmp_path / "other")
    records = RecordStore(other / "xstest" / "records.jsonl").load()
    (other / "xstest" / "records.jsonl").unlink()
    renamed = []
    for r in records.values():
        b = r.behavior.model_copy(update={"id": "other-" + r.behavior.id})
        req = r.completion.request.model_copy(update={"behavior_id": b.id})
        renamed.append(r.model_copy(update={"behavior": b, "completion": r.completion.model_copy(update={"request": req})}))
    RecordStore(other / "xstest" / "records.jsonl").append(renamed)
    code, out, err = gate_main(capsys, other, "--baseline", baseline)
    assert code == gate.GateExit.UNDECIDED and out == ""
    line = one_error_line(err)
    assert "over_refusal" in line and "share no behavior" in line and "other-xstest-000" in line


@pytest.mark.parametrize("change", [{"model": "other"}, {"benchmark": "harmbench"}])
def test_a_baseline_of_another_model_or_benchmark_is_exit_2(tmp_path, capsys, baseline, change):
    other = pd.read_json(baseline).assign(**change)
    other.to_json(tmp_path / "other.json", orient="records")
    code, out, err = gate_main(capsys, tmp_path / "base", "--baseline", tmp_path / "other.json")
    assert code == gate.GateExit.UNDECIDED and out == ""
    assert "share no row" in one_error_line(err)


def test_bad_input_writes_nothing(tmp_path, capsys):
    write_run(tmp_path / "base")
    before = sorted(p for p in tmp_path.rglob("*"))
    code, _, err = gate_main(capsys, tmp_path / "base", "--baseline", tmp_path / "new.json", "--write-baseline",
                             "--harm-tolerance", "nan")
    assert code == gate.GateExit.UNDECIDED and sorted(p for p in tmp_path.rglob("*")) == before
    one_error_line(err)


def test_a_baseline_of_one_judge_still_matches_runs_that_add_another(tmp_path, capsys):
    """Runs judged by keyword and exact_match carry a `judge` key column; a baseline of the keyword runs alone does not:
    the same set-ups keep their rows, and the new benchmark's row is new (a warning), not a baseline of another set-up."""
    write_run(tmp_path / "runs")
    base = tmp_path / "base.json"
    keyword_only = [tmp_path / "runs" / "advbench", tmp_path / "runs" / "xstest"]
    assert gate_main(capsys, *keyword_only, "--baseline", base, "--write-baseline")[0] == 0
    code, out, _ = gate_main(capsys, tmp_path / "runs", "--baseline", base)
    assert code == gate.GateExit.PASSED and "new: 1 row(s)" in out
    assert "| judge" not in out.splitlines()[0]
