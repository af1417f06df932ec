"""Turns to break: Kaplan-Meier over conversations, its interval, and the table from per-turn records."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analysis import survival
from harness.analysis.stats import Z95, count_interval


def test_without_censoring_the_curve_is_the_share_unbroken_with_the_harness_interval():
    # five behaviors: broken at turns 1, 2, 2; two held out the whole 3 turns
    curve = survival.kaplan_meier([1, 2, 2, 3, 3], [True, True, True, False, False]).set_index("turn")
    assert list(curve["survival"]) == pytest.approx([100, 80, 40, 40])
    assert list(curve["at_risk"]) == [5, 5, 4, 2] and list(curve["broken"]) == [0, 1, 2, 0]
    assert list(curve["censored"]) == [0, 0, 0, 2]
    for t, unbroken in ((1, 4), (2, 2), (3, 2)):
        lo, hi = count_interval(unbroken, 5)
        assert (curve.loc[t, "survival_lo"], curve.loc[t, "survival_hi"]) == pytest.approx((100 * lo, 100 * hi))


def test_after_censoring_greenwood_on_the_log_log_scale():
    # one conversation ends unbroken after turn 1 (a failed request), then breaks at 2 and 3, one holds out
    curve = survival.kaplan_meier([1, 2, 3, 3], [False, True, True, False]).set_index("turn")
    assert list(curve["survival"]) == pytest.approx([100, 100, 100 * 2 / 3, 100 * 2 / 3 * 1 / 2])
    s, var = 2 / 3, 1 / (3 * 2)  # at turn 2: 3 at risk, 1 broken
    spread = Z95 * math.sqrt(var) / abs(math.log(s))
    assert curve.loc[2, "survival_lo"] == pytest.approx(100 * s ** math.exp(spread))
    assert curve.loc[2, "survival_hi"] == pytest.approx(100 * s ** math.exp(-spread))
    assert 0 <= curve.loc[3, "survival_lo"] < curve.loc[3, "survival"] < curve.loc[3, "survival_hi"] <= 100


def frame(rows):
    base = {"model": "m", "defense": "none", "attack": "crescendo", "benchmark": "b", "label": "harmful", "error": False}
    return pd.DataFrame([{**base, "behavior": b, "param.turn": t, "harmful": h, **(extra[0] if extra else {})} for b, t, h, *extra in rows])


def test_the_table_reads_each_conversation_from_its_turn_records():
    rows = [("a", 1, False), ("a", 2, False), ("a", 2, True),  # a: backtracked at turn 2, then broken there
            ("b", 1, False), ("b", 2, False), ("b", 3, False),  # b: held out three turns
            ("c", 1, False), ("c", 2, None, {"error": True}),  # c: its turn 2 failed: censored after turn 1
            ("d", 1, True)]
    table = survival.table(frame(rows)).set_index("turn")
    assert list(table["broken"]) == [0, 1, 1, 0] and list(table["censored"]) == [0, 1, 0, 1]
    assert list(table["at_risk"]) == [4, 4, 2, 1] and list(table["backtracks"]) == [0, 0, 1, 0]
    assert table.loc[2, "survival"] == pytest.approx(100 * 3 / 4 * 1 / 2)
    assert set(table["attack"]) == {"crescendo"}


def test_no_turns_no_table():
    assert survival.table(pd.DataFrame({"model": ["m"], "label": ["harmful"]})) is None
