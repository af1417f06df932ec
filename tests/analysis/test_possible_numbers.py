"""Every number an analysis command prints is possible: rates in [0, 100], each interval holds its
estimate, a judge-corrected interval is never narrower than the sampling interval it starts from,
n counts distinct samples; and the interval and test functions agree with scipy. Property-based
(hypothesis), derandomised so CI sees the same examples every time.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from harness.analysis import compare, paired, report, stats
from harness.analysis.calibration import Calibration
from harness.analysis.tables import to_frame
from harness.cli import compare as compare_cli
from harness.cli import report as report_cli
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Message, Record, Request, Verdict

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None)
TABLES = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
EPS = 1e-9


@PROPERTY
@given(n=st.integers(1, 400), data=st.data())
def test_wilson_holds_its_estimate_and_agrees_with_scipy(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = stats.wilson(k, n)
    assert 0 <= lo <= k / n <= hi <= 1
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)
    if k < n:  # one more success never moves the interval down
        lo2, hi2 = stats.wilson(k + 1, n)
        assert lo2 >= lo - EPS and hi2 >= hi - EPS


@PROPERTY
@given(cells=st.tuples(*(st.integers(0, 40),) * 4))
def test_paired_difference_holds_its_estimate_and_agrees_with_mcnemar(cells):
    a, b, c, d = cells
    assume(a + b + c + d > 0)
    diff, lo, hi = stats.exact_paired_difference(a, b, c, d)
    assert -1 - EPS <= lo <= diff <= hi <= 1 + EPS
    p = stats.mcnemar(b, c)
    assert 0 <= p <= 1
    if b + c:
        assert p == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue)
    if p < 0.05:  # the interval excludes 0 exactly when the exact test rejects
        assert lo > 0 or hi < 0


@PROPERTY
@given(p=st.lists(st.floats(0, 1) | st.just(math.nan), max_size=12))
def test_holm_never_lowers_a_p_value_and_keeps_the_order(p):
    adjusted = stats.holm(p)
    for raw, adj in zip(p, adjusted, strict=True):
        assert (math.isnan(raw) and math.isnan(adj)) or raw - EPS <= adj <= 1
    finite = [(raw, adj) for raw, adj in zip(p, adjusted, strict=True) if not math.isnan(raw)]
    for (r1, a1) in finite:
        for (r2, a2) in finite:
            if r1 < r2:
                assert a1 <= a2 + EPS


@PROPERTY
@given(counts=st.tuples(*(st.integers(0, 60),) * 4), n=st.integers(1, 60), data=st.data())
def test_corrected_interval_never_narrower_than_wilson(counts, n, data):
    tp, fn, tn, fp = counts
    assume(tp + fn and tn + fp)
    cal = Calibration(judge_id="j", labels="x", tp=tp, fn=fn, tn=tn, fp=fp)
    assume(not cal.too_weak())
    k = data.draw(st.integers(0, n))
    point, lo, hi = cal.correct(k, n)
    w_lo, w_hi = stats.wilson(k, n)
    assert 0 <= lo <= point <= hi <= 1
    assert hi - lo >= (w_hi - w_lo) - EPS


def test_corrected_interval_at_the_ends_of_a_small_run():
    """The case of the issue: n = 6 with 0 or 6 harmful gave 0.0-0.0 and 100.0-100.0."""
    cal = Calibration(judge_id="j", labels="x", tp=40, fn=10, tn=77, fp=23)
    for k in (0, 6):
        _, lo, hi = cal.correct(k, 6)
        w_lo, w_hi = stats.wilson(k, 6)
        assert hi - lo >= w_hi - w_lo - EPS and hi - lo > 0.3


@st.composite
def runs(draw):
    """Records of up to two models, prefill k in 0/5, up to 3 samples, harmful/safe/judge-error verdicts,
    some benign behaviors."""
    out = []
    for model in draw(st.lists(st.sampled_from(["m1", "m2"]), min_size=1, max_size=2, unique=True)):
        for b in range(draw(st.integers(1, 8))):
            label = draw(st.sampled_from(["harmful", "harmful", "benign"]))
            behavior = Behavior(id=f"b{b}", prompt=f"p{b}", label=label)
            for k in draw(st.lists(st.sampled_from([0, 5]), min_size=1, max_size=2, unique=True)):
                request = Request(behavior_id=behavior.id, messages=(Message(role="user", content="p"),),
                                  attack="prefill", params={"k": k})
                for sample in range(draw(st.integers(1, 3))):
                    state = draw(st.sampled_from(["harmful", "safe", "error"]))
                    verdict = Verdict(harmful=None if state == "error" else state == "harmful",
                                      refused=None if state == "error" else state == "safe", judge="keyword@x",
                                      error="timeout" if state == "error" else "")
                    out.append(Record(run=f"r-{model}", model=model, defense="none", benchmark="bench",
                                      behavior=behavior, completion=Completion(request=request, sample=sample, text="t"),
                                      verdict=verdict))
    return out


def check_rates(table: pd.DataFrame) -> None:
    for rate in ("asr", "refusal", "asr_corrected"):
        if rate not in table:
            continue
        for value, lo, hi in zip(table[rate], table.get(f"{rate}_lo", table[rate]), table.get(f"{rate}_hi", table[rate]),
                                 strict=True):
            if pd.isna(value):
                continue
            assert 0 <= lo <= value + EPS and value - EPS <= hi <= 100, (rate, value, lo, hi)


@TABLES
@given(records=runs())
def test_report_tables_hold_possible_numbers(records, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    table = report.write(records, out)
    check_rates(table)
    frame = to_frame(records)
    for row in table.itertuples():
        part = frame[(frame["model"] == row.model) & (frame["param.k"] == row.k)]
        assert row.n == len(part)  # every distinct sample once
        assert row.n_harmful == int(((part["label"] == "harmful") & ~part["error"]).sum())
    behaviors = pd.read_csv(out / "behaviors.csv")
    assert not behaviors.duplicated(["model", "defense", "attack", "benchmark", "k", "behavior"]).any()


@TABLES
@given(records=runs())
def test_a_run_reported_twice_counts_each_sample_once(records, tmp_path_factory):
    """The same run given twice, through a symlink, or as a copy: n stays the number of distinct samples."""
    root = tmp_path_factory.mktemp("twice")
    RecordStore(root / "a" / "records.jsonl").append(records)
    (root / "link").symlink_to(root / "a")
    (root / "copy").mkdir()
    (root / "copy" / "records.jsonl").write_bytes((root / "a" / "records.jsonl").read_bytes())
    once = report.write(report.load_folders([root / "a"]), root / "once")
    twice = report.write(report.load_folders([root / "a", root / "link", root / "copy", root / "a" / "records.jsonl"]),
                         root / "twice")
    pd.testing.assert_frame_equal(twice, once)


@TABLES
@given(records=runs())
def test_compare_rates_are_possible(records, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    models = sorted({r.model for r in records})
    assume(len(models) == 2)
    for model in models:
        RecordStore(root / model / "records.jsonl").append([r for r in records if r.model == model])
    try:
        a, b = (compare.load_outcomes(root / m) for m in models)
        table = paired.compare_runs(a, b)
    except Exception as exc:  # no shared behaviors, nothing harmful judged: a clear error, never a number
        assert type(exc).__name__ in ("HarnessError", "DataError")
        return
    for row in table.itertuples():
        assert row.n == row.a + row.b + row.c + row.d
        if not row.n:  # no shared behavior in this configuration: no number at all
            assert all(pd.isna(v) for v in (row.asr_a, row.asr_b, row.diff, row.p, row.p_holm))
            continue
        assert 0 <= row.asr_a <= 100 and 0 <= row.asr_b <= 100
        assert -100 - EPS <= row.diff_lo <= row.diff <= row.diff_hi <= 100 + EPS
        assert 0 <= row.p <= row.p_holm <= 1


def test_a_folder_holding_two_setups_is_refused_by_compare(tmp_path, capsys):
    """The issue's case: compare on a folder holding two set-ups reported ASR 200 %."""
    def record(model: str, i: int) -> Record:
        behavior = Behavior(id=f"b{i}", prompt="p")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content="p"),), attack="direct")
        return Record(run=f"r{model}", model=model, defense="none", benchmark="bench", behavior=behavior,
                      completion=Completion(request=request, text="t"), verdict=Verdict(harmful=True, judge="keyword@x"))

    RecordStore(tmp_path / "both" / "records.jsonl").append([record(m, i) for m in ("m1", "m2") for i in range(3)])
    RecordStore(tmp_path / "one" / "records.jsonl").append([record("m3", i) for i in range(3)])
    with pytest.raises(SystemExit) as exit_:
        compare_cli.main([str(tmp_path / "both"), str(tmp_path / "one")])
    assert exit_.value.code == 2 and "2 set-ups" in capsys.readouterr().err


def test_runs_of_two_judges_are_kept_apart(tmp_path):
    """The issue's case: a merged row averaged a run judged by one judge with a run judged by another."""
    def record(i: int, judge: str, harmful: bool) -> Record:
        behavior = Behavior(id=f"b{i}", prompt="p")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content="p"),), attack="direct")
        return Record(run="r", model="m", defense="none", benchmark="bench", behavior=behavior,
                      completion=Completion(request=request, text="t"), verdict=Verdict(harmful=harmful, judge=judge))

    RecordStore(tmp_path / "a" / "records.jsonl").append([record(i, "keyword@1", True) for i in range(6)])
    RecordStore(tmp_path / "b" / "records.jsonl").append([record(i, "rubric@2", i < 4) for i in range(6)])
    report_cli.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "asr.csv")
    assert sorted(zip(table["judge"], table["asr"].round(1), table["n"])) == [("keyword", 100.0, 6), ("rubric", 66.7, 6)]
    assert "verdicts of 2 judges" in (tmp_path / "out" / "asr.md").read_text()


def test_report_reads_the_records_file_it_is_given(tmp_path):
    """The issue's case: `report FILE.jsonl` read the folder's records.jsonl instead."""
    def record(i: int) -> Record:
        behavior = Behavior(id=f"b{i}", prompt="p")
        request = Request(behavior_id=behavior.id, messages=(Message(role="user", content="p"),), attack="direct")
        return Record(run="r", model="m", defense="none", benchmark="bench", behavior=behavior,
                      completion=Completion(request=request, text="t"), verdict=Verdict(harmful=True, judge="k@1"))

    RecordStore(tmp_path / "run" / "records.jsonl").append([record(i) for i in range(5)])
    RecordStore(tmp_path / "run" / "subset.jsonl").append([record(i) for i in range(2)])
    report_cli.main([str(tmp_path / "run" / "subset.jsonl"), "--out", str(tmp_path / "out")])
    assert list(pd.read_csv(tmp_path / "out" / "asr.csv")["n"]) == [2]


def test_wilson_matches_the_clustered_rule_for_one_sample():
    lo, hi = stats.proportion_interval(np.array([1, 0, 0]), np.array([1, 1, 1]))
    assert (lo, hi) == stats.wilson(1, 3)
