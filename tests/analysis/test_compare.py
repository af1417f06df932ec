"""Paired comparisons: harness.analysis.compare on two runs, paired rows in merged reports, the gate's paired test."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import compare, gate, report
from harness.cli import compare as compare_cli
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Verdict


def record(i: int, harmful: bool, model: str = "m", k: int = 0, prefix: str = "b") -> Record:
    b = Behavior(id=f"{prefix}{i}", prompt="p")
    req = Request(behavior_id=b.id, messages=(Message(role="user", content="p"),), attack="prefill", params={"k": k})
    return Record(run="r", model=model, defense="none", benchmark="advbench", behavior=b,
                  completion=Completion(request=req, text="t"), verdict=Verdict(harmful=harmful, refused=not harmful, judge="keyword@x"))


def write_run(folder, records):
    RecordStore(folder / "records.jsonl").append(records)
    return folder


def test_compare_cli_prints_mcnemar_and_paired_interval(tmp_path, capsys):
    # 20 behaviors: both broken on b0-b4, only A on b5, only B on b6-b11 -> b=1, c=6, McNemar p = 16/128
    a = write_run(tmp_path / "a", [record(i, i < 6) for i in range(20)])
    b = write_run(tmp_path / "b", [record(i, i < 5 or 6 <= i < 12, model="m2") for i in range(20)])
    compare_cli.main([str(a), str(b), "--out", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    row = table.iloc[0]
    assert (row["n"], row["b"], row["c"]) == (20, 1, 6)
    assert row["p"] == pytest.approx(16 / 128) and row["p_holm"] == pytest.approx(16 / 128)
    assert row["diff"] == pytest.approx(25.0) and row["diff_lo"] < 0 < row["diff_hi"]  # (6 - 1) / 20, inside the noise
    assert "no measured difference" in capsys.readouterr().out


def test_compare_holm_adjusts_across_configurations(tmp_path):
    a = write_run(tmp_path / "a", [record(i, False, k=k) for k in (0, 5) for i in range(12)])
    b = write_run(tmp_path / "b", [record(i, i < 10 * (k == 5), model="m2", k=k) for k in (0, 5) for i in range(12)])
    table = compare.paired.compare_runs(compare.load_outcomes(a), compare.load_outcomes(b))
    assert list(table["p"]) == pytest.approx([1.0, 2 * 0.5**10])
    assert list(table["p_holm"]) == pytest.approx([1.0, 2 * 2 * 0.5**10])


def test_runs_without_shared_behaviors_are_a_clear_error(tmp_path, capsys):
    a = write_run(tmp_path / "a", [record(i, True) for i in range(5)])
    b = write_run(tmp_path / "b", [record(i, True, prefix="x") for i in range(5)])
    with pytest.raises(SystemExit) as exit_:
        compare_cli.main([str(a), str(b)])
    assert exit_.value.code == 2
    assert "no behaviors in common" in capsys.readouterr().err


def test_power_helper_cli(capsys):
    compare_cli.main(["--power", "0.3", "0.5"])
    assert "behaviors give a paired" in capsys.readouterr().out


def test_merged_report_has_paired_rows(tmp_path):
    records = [record(i, i < 2) for i in range(10)] + [record(i, i < 8, model="m2") for i in range(10)]
    report.write(records, tmp_path)
    pairs = pd.read_csv(tmp_path / "asr_paired.csv")
    assert (pairs.loc[0, "b"], pairs.loc[0, "c"]) == (0, 6) and pairs.loc[0, "p"] == pytest.approx(2 * 0.5**6)


def test_gate_uses_the_paired_test_when_behaviors_are_shared(tmp_path):
    """10/40 -> 18/40 with the same 10 still broken: the z-test cannot see it (z = 1.88), the paired test can
    (8 discordant, all rises: one-sided p = 0.5^8)."""
    report.write([record(i, i < 10) for i in range(40)], tmp_path / "base")
    report.write([record(i, i < 18) for i in range(40)], tmp_path / "run")
    base, run = gate.load_table(tmp_path / "base"), gate.load_table(tmp_path / "run")
    unpaired = gate.compare(run, base)
    assert unpaired.loc[0, "status"] == "ok" and unpaired.loc[0, "test"] == "z"
    diff = gate.compare(run, base, run_behaviors=gate.load_behaviors(tmp_path / "run"),
                        base_behaviors=gate.load_behaviors(tmp_path / "base"))
    assert diff.loc[0, "status"] == "FAIL" and diff.loc[0, "test"] == "paired (n=40)"
    assert diff.loc[0, "p"] == pytest.approx(0.5**8)
    gate.write_baseline(base, tmp_path / "baseline.json", gate.load_behaviors(tmp_path / "base"))
    assert (tmp_path / "baseline.behaviors.csv").is_file()
