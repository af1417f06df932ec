"""Intervals, paired tests and power, each checked against an independent computation (scipy, by hand)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.analysis import report, stats
from harness.cli import report as report_cli
from harness.types import Behavior, Completion, Message, Record, Request, Verdict


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 10), (7, 50), (25, 50), (50, 50), (3, 7)])
def test_wilson_matches_scipy(k, n):
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert stats.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_cluster_bootstrap_matches_scipy_bootstrap():
    rng = np.random.default_rng(1)
    trials = rng.integers(1, 6, size=40)
    successes = rng.binomial(trials, rng.uniform(0.1, 0.9, size=40))
    ours = stats.cluster_bootstrap(successes, trials, resamples=4000)
    ref = sps.bootstrap((successes, trials), lambda k, m: k.sum() / m.sum(), paired=True, vectorized=False,
                        n_resamples=4000, method="percentile", random_state=7).confidence_interval
    assert ours == pytest.approx((ref.low, ref.high), abs=0.02)


def test_all_or_nothing_clusters_fall_back_to_wilson_on_behaviors():
    assert stats.cluster_bootstrap([0, 0, 0], [4, 4, 4]) == stats.wilson(0, 3)


def test_mcnemar_exact_by_hand():
    # b=1, c=6: two-sided exact p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128
    assert stats.mcnemar(1, 6) == pytest.approx(16 / 128)
    # b=2, c=8: 2 * (1 + 10 + 45) / 1024
    assert stats.mcnemar(8, 2) == pytest.approx(112 / 1024)
    assert stats.mcnemar(0, 0) == 1.0


def test_exact_paired_interval_agrees_with_the_exact_mcnemar_test():
    for a, d in ((0, 0), (10, 10), (40, 3)):
        for b in range(15):
            for c in range(15):
                if b + c == 0:
                    continue
                diff, lo, hi = stats.exact_paired_difference(a, b, c, d)
                assert diff == pytest.approx((c - b) / (a + b + c + d)) and lo <= diff <= hi
                assert (lo > 0 or hi < 0) == (stats.mcnemar(b, c) < 0.05), (a, b, c, d)
                _, newcombe_lo, newcombe_hi = stats.paired_difference(a, b, c, d)
                assert lo <= newcombe_lo and hi >= newcombe_hi


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(.03, 2*0.03), max(.06, 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_paired_difference_agrees_with_wald_at_large_n():
    a, b, c, d = 400, 100, 150, 350
    n = a + b + c + d
    diff, lo, hi = stats.paired_difference(a, b, c, d)
    se = math.sqrt((b + c) / n - ((c - b) / n) ** 2) / math.sqrt(n)  # Wald SE of a paired difference
    assert diff == pytest.approx((c - b) / n)
    assert (lo, hi) == pytest.approx((diff - 1.96 * se, diff + 1.96 * se), abs=0.003)


def test_behaviors_needed_gives_the_power_by_simulation():
    p_a, p_b, psi = 0.3, 0.5, 0.3
    n = stats.behaviors_needed(p_a, p_b, discordant=psi)
    rng = np.random.default_rng(0)
    # discordant cells: b (A only) = (psi - delta)/2, c (B only) = (psi + delta)/2
    cells = rng.multinomial(n, [(psi - 0.2) / 2, (psi + 0.2) / 2, 1 - psi], size=3000)
    b, c = cells[:, 0], cells[:, 1]
    p = np.minimum(1, 2 * sps.binom.cdf(np.minimum(b, c), b + c, 0.5))
    assert 0.75 < (p < 0.05).mean() < 0.87


def record(behavior: str, harmful: bool, sample: int = 0, **params) -> Record:
    b = Behavior(id=behavior, prompt="p")
    req = Request(behavior_id=behavior, messages=(Message(role="user", content="p"),), attack="a", params=params)
    v = Verdict(harmful=harmful, refused=not harmful, judge="keyword@x")
    return Record(run="r", model="m", defense="none", benchmark="bench", behavior=b,
                  completion=Completion(request=req, text="t", sample=sample), verdict=v)


def test_asr_rows_carry_wilson_with_one_sample_per_behavior(tmp_path):
    records = [record(f"b{i}", i < 7) for i in range(20)]
    report.write(records, tmp_path)
    row = pd.read_csv(tmp_path / "asr.csv").iloc[0]
    ci = sps.binomtest(7, 20).proportion_ci(method="wilson")
    assert (row["asr_lo"], row["asr_hi"]) == pytest.approx((100 * ci.low, 100 * ci.high))
    assert "95% CI" in (tmp_path / "asr.md").read_text()


def test_asr_rows_carry_a_behavior_clustered_interval_with_several_samples(tmp_path):
    rng = np.random.default_rng(3)
    rates = rng.uniform(0, 1, size=30)
    outcomes = rng.uniform(size=(30, 4)) < rates[:, None]
    records = [record(f"b{i}", bool(outcomes[i, s]), sample=s) for i in range(30) for s in range(4)]
    row = report.write(records, tmp_path).iloc[0]
    ref = sps.bootstrap((outcomes.sum(axis=1), np.full(30, 4)), lambda k, m: k.sum() / m.sum(), paired=True,
                        vectorized=False, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert (row["asr_lo"], row["asr_hi"]) == pytest.approx((100 * ref.low, 100 * ref.high), abs=2.5)
    naive = sps.binomtest(int(outcomes.sum()), 120).proportion_ci(method="wilson")  # pretends 120 independent samples
    assert row["asr_hi"] - row["asr_lo"] > 100 * (naive.high - naive.low)


def test_worst_case_and_summary_rows_carry_intervals(tmp_path):
    records = [record(f"b{i}", harmful, strategy=s, value=v)
               for i in range(10)
               for s, v, harmful in (("greedy", 0, i < 2), ("temperature", 1.0, i in (1, 5, 6)))]
    report.write(records, tmp_path)
    worst = pd.read_csv(tmp_path / "asr_worst_case.csv")
    row = worst[(worst["strategy"] == "any")].iloc[0]
    ci = sps.binomtest(4, 10).proportion_ci(method="wilson")  # broken by any: b0, b1, b5, b6
    assert (row["asr"], row["asr_lo"], row["asr_hi"]) == pytest.approx((40.0, 100 * ci.low, 100 * ci.high))
    table = pd.read_csv(tmp_path / "asr.csv")
    assert table[["asr_lo", "asr_hi"]].notna().all().all()


def test_merged_summary_carries_intervals(tmp_path):
    one = [record(f"b{i}", i < 3, k=0) for i in range(10)]
    other = [r.model_copy(update={"model": "m2"}) for r in (record(f"b{i}", i < 6, k=k) for i in range(10) for k in (0, 5))]
    report.write(one + other, tmp_path)
    summary = pd.read_csv(tmp_path / "asr_summary.csv").set_index("model")
    ci = sps.binomtest(3, 10).proportion_ci(method="wilson")  # one configuration: best = worst = Wilson
    for column in ("best_config_asr", "worst_case_asr"):
        assert (summary.loc["m", f"{column}_lo"], summary.loc["m", f"{column}_hi"]) == pytest.approx(
            (100 * ci.low, 100 * ci.high))
    assert summary.loc["m2", "best_config_asr_lo"] < 60 < summary.loc["m2", "best_config_asr_hi"]


def test_merged_summary_of_attacks_without_parameters(tmp_path):
    plain = [record(f"b{i}", i < 3) for i in range(10)]
    report.write(plain + [r.model_copy(update={"model": "m2"}) for r in plain], tmp_path)
    summary = pd.read_csv(tmp_path / "asr_summary.csv")
    ci = sps.binomtest(3, 10).proportion_ci(method="wilson")
    assert list(summary["best_config_asr_lo"]) == pytest.approx([100 * ci.low] * 2)


def test_tables_say_how_behaviors_were_sampled(tmp_path):
    line = "bench: 20 of 520 behaviors, a random sample stratified by category (seed 0)"
    report.write([record(f"b{i}", i < 7) for i in range(20)], tmp_path / "run", sampling=[line])
    assert f"behaviors: {line}" in (tmp_path / "run" / "asr.md").read_text()
    (tmp_path / "run" / "records.jsonl").write_text("")
    from harness.store.records import RecordStore

    RecordStore(tmp_path / "run" / "records.jsonl").append([record(f"b{i}", i < 7) for i in range(20)])
    report_cli.main([str(tmp_path / "run"), "--out", str(tmp_path / "merged")])
    assert f"behaviors: {line}" in (tmp_path / "merged" / "asr.md").read_text()


def test_unpaired_difference_agrees_with_wald_at_large_n():
    diff, lo, hi = stats.unpaired_difference(300, 1000, 400, 1000)
    se = math.sqrt(0.3 * 0.7 / 1000 + 0.4 * 0.6 / 1000)
    assert diff == pytest.approx(0.1) and (lo, hi) == pytest.approx((0.1 - 1.96 * se, 0.1 + 1.96 * se), abs=0.003)
