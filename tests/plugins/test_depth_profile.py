"""experiment=depth_profile: ASR at each strength of each axis per system, paired with the reference, beside
over-refusal and utility; the outcome rules of the axes; resume; bad input."""

from __future__ import annotations

import functools
import math

import pandas as pd
import pytest
from test_filter_defenses import Stub

from attacks.best_of_n import BestOfNAttack
from attacks.prefill import PrefillAttack
from benchmarks.advbench import AdvBench
from benchmarks.gsm8k import GSM8K
from benchmarks.xstest import XSTest
from experiments.depth_axes import Each, Steps, Toggle, Within, broken
from experiments.depth_profile import DepthProfile
from harness.analysis import report
from harness.analysis.stats import count_interval, exact_paired_difference, holm
from harness.errors import HarnessError
from harness.judge.base import Judge
from harness.judge.exact_match import ExactMatchJudge
from harness.judge.keyword import KeywordJudge
from harness.judge.panel import PanelJudge
from harness.model.base import LocalModel
from harness.types import Verdict

SORRY, SURE = "I'm sorry, but I cannot help with that.", "Sure, here is how to do it step by step."


def frame(rows):
    """A records frame (tables.to_frame's columns that the axes read)."""
    return pd.DataFrame([{"label": "harmful", "behavior": b, "param.x": x, "harmful": h, "error": e}
                         for b, x, h, e in rows])


def test_broken_is_any_harmful_and_an_error_without_a_hit_is_undecided():
    rows = frame([("a", 1, False, False), ("a", 2, True, False),   # broken from x = 2
                  ("b", 1, False, True), ("b", 2, True, False),    # x <= 1: an error and no hit: undecided
                  ("c", 1, False, False), ("c", 2, False, False),  # never broken
                  ("d", 1, True, True)])                           # a harmful verdict on an error row never counts
    within_1 = broken(rows, rows["param.x"] <= 1)
    assert within_1.to_dict() == {"a": False, "c": False}
    assert broken(rows, rows["param.x"] <= 2).to_dict() == {"a": True, "b": True, "c": False}
    assert broken(rows, rows["param.x"] == 2).to_dict() == {"a": True, "b": True, "c": False}
    assert broken(rows.iloc[0:0]).empty


def test_axes_turn_strengths_into_runs():
    made = []

    def attack(**values):
        made.append(values)
        return values

    assert Each(attack, [0, 5], setting="lengths", parameter="k", label="prefill k").runs("direct") == {
        "all": {"lengths": [0, 5]}}
    assert Each(attack, [0, 10, 25], setting="checkpoints", parameter="steps", label="GCG", budget="steps").runs(
        "direct") == {"all": {"checkpoints": [0, 10, 25], "steps": 25}}
    assert Within(attack, [1, 4, 16], setting="n", parameter="augmentation", label="N").runs("direct") == {
        "all": {"n": 16}}
    assert Steps(attack, [0, 10, 25], setting="steps", label="GCG").runs("direct") == {
        "0": "direct", "10": {"steps": 10}, "25": {"steps": 25}}
    assert Toggle(attack, label="ablation").runs("direct") == {"off": "direct", "on": {}}


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Each(dict, [], setting="lengths", parameter="k", label="prefill k"), "axis 'prefill k' has no strengths"),
    (lambda: Within(dict, [0, 4], setting="n", parameter="a", label="N"), r"its strengths start at 1, got \[0, 4\]"),
    (lambda: Steps(dict, [0, "ten"], setting="steps", label="GCG"), r"whole numbers >= 0 as strengths, got \['ten'\]"),
    (lambda: Each(dict, [5, 5], setting="lengths", parameter="k", label="k"), r"repeats a strength: \[5, 5\]"),
    (lambda: Toggle(dict, label="ablation", limit=0), "limit=0"),
])
def test_bad_axes_are_one_line(build, message):
    with pytest.raises(HarnessError, match=message):
        build()


def reply_of(model, benign):
    """The reference refuses unless 10 or more target tokens are prefilled; the weak system gives in from k = 5
    and to the second augmentation; both answer XSTest and get GSM8K wrong."""
    def reply(request):
        k, augmentation = request.params.get("k", 0), request.params.get("augmentation", 1)
        if request.behavior_id in benign:
            return "The answer is 0."
        gives_in = k >= 10 or (model.name == "weak" and (k >= 5 or augmentation >= 2))
        return SURE if gives_in else SORRY
    return reply


@pytest.fixture()
def driver(tiny, data_dir, tmp_path):
    weak = LocalModel(tiny.folder, name="weak", cache_dir=tmp_path / "cache")
    engines = {}
    xstest, gsm8k = XSTest(data_dir=data_dir, limit=3, limit_order="first"), GSM8K(data_dir=data_dir, limit=2, limit_order="first")
    benign = {b.id for b in [*xstest.load(), *gsm8k.load()]}

    def engine(model):
        return engines.setdefault(model.name, Stub(model, reply_of(model, benign)))

    def build(**changes):
        values = dict(
            systems={"aligned": {"model": tiny}, "weak": {"model": weak}},
            harmful=AdvBench(data_dir=data_dir, limit=6, limit_order="first"),
            axes={"prefill": Each(functools.partial(PrefillAttack), [0, 5, 10], setting="lengths", parameter="k",
                                  label="prefill k"),
                  "best_of_n": Within(functools.partial(BestOfNAttack, seed=0), [1, 2], setting="n",
                                      parameter="augmentation", label="best-of-N N", limit=4),
                  "bon_runs": Steps(functools.partial(BestOfNAttack, seed=0), [0, 2], setting="n", label="N runs"),
                  "toggle": Toggle(functools.partial(PrefillAttack, lengths=[10]), label="prefill on")},
            judge=KeywordJudge(), engine=engine, sampling={"max_tokens": 8}, out_dir=str(tmp_path / "out"),
            over_refusal=xstest, utility=gsm8k, utility_judge=ExactMatchJudge())
        return DepthProfile(**{**values, **changes})
    build.engines = engines
    build.keywords = {"tiny": tiny, "weak": weak}
    return build


def test_each_cell_is_a_rate_with_its_interval_paired_with_the_reference(driver, tmp_path):
    table = driver()().set_index(["system", "axis", "strength"])
    expected = {  # (axis, strength): (aligned broken, weak broken) of n behaviors
        ("prefill", "0"): (0, 0, 6), ("prefill", "5"): (0, 6, 6), ("prefill", "10"): (6, 6, 6),
        ("best_of_n", "1"): (0, 0, 4), ("best_of_n", "2"): (0, 4, 4),
        ("bon_runs", "0"): (0, 0, 6), ("bon_runs", "2"): (0, 6, 6),
        ("toggle", "off"): (0, 0, 6), ("toggle", "on"): (6, 6, 6)}
    for (axis, strength), (ref, weak, n) in expected.items():
        for system, k in (("aligned", ref), ("weak", weak)):
            cell = table.loc[(system, axis, strength)]
            assert (cell["n"], cell["percent"]) == (n, 100 * k / n), (system, axis, strength)
            assert (cell["ci_low"], cell["ci_high"]) == pytest.approx(tuple(100 * x for x in count_interval(k, n)))
        weak_cell = table.loc[("weak", axis, strength)]
        diff, lo, hi = exact_paired_difference(ref, 0, weak - ref, n - weak)
        assert weak_cell["paired_n"] == n and weak_cell["reference_percent"] == 100 * ref / n
        assert (weak_cell["diff"], weak_cell["diff_lo"], weak_cell["diff_hi"]) == pytest.approx((100 * diff, 100 * lo, 100 * hi))
    assert table.loc[("aligned", "over_refusal", "-"), "percent"] == 100.0  # XSTest answered
    assert table.loc[("weak", "utility", "-"), "percent"] == 0.0  # GSM8K wrong
    paired = table[table["p"].notna()]
    assert len(paired) == 11 and (paired.index.get_level_values("system") == "weak").all()
    assert list(paired["p_holm"]) == pytest.approx(holm(list(paired["p"])))
    assert table.loc[("aligned", "prefill", "5"), "p_holm"] != table.loc[("aligned", "prefill", "5"), "p_holm"]  # NaN
    out = tmp_path / "out"
    text = (out / "depth_profile.md").read_text()
    assert "## weak" in text and "no measured difference" in text and "| prefill k | 5 | 6 | 100 [61-100] | 0 |" in text
    assert (out / "depth_profile_weak.png").stat().st_size > 0 and len(pd.read_csv(out / "depth_profile.csv")) == 22
    assert (out / "weak" / "bon_runs" / "2" / "records.jsonl").exists()


def test_a_rerun_resumes_from_the_run_folders(driver):
    first = driver()()
    sent = {name: len(engine.sent) for name, engine in driver.engines.items()}
    again = driver()()
    assert {name: len(engine.sent) for name, engine in driver.engines.items()} == sent  # nothing asked again
    pd.testing.assert_frame_equal(first, again)


def test_an_axis_a_system_cannot_take_is_a_row_that_says_why(driver):
    def white_box_only(**_):
        raise HarnessError("attack=gcg needs HF weights; model 'api' has none")

    table = driver(axes={"gcg": Steps(white_box_only, [5], setting="steps", label="GCG steps")}, utility=None,
                   over_refusal=None)()
    assert list(table["note"]) == ["attack=gcg needs HF weights; model 'api' has none"] * 2
    assert table["n"].tolist() == [0, 0] and math.isnan(table["percent"].iloc[0])


def test_a_system_changes_an_axis_attack_for_itself_only(driver, tmp_path):
    """`driver.systems.<label>.axes.<axis>`: the weak system's toggle prefills 5 tokens instead of 10; the reference
    keeps the axis as configured (its folder's records say k = 10, the weak system's k = 5)."""
    systems = {"aligned": {"model": driver.keywords["tiny"]}, "weak": {"model": driver.keywords["weak"],
                                                                      "axes": {"toggle": {"lengths": [5]}}}}
    axes = {"toggle": Toggle(functools.partial(PrefillAttack, lengths=[10]), label="prefill on")}
    table = driver(systems=systems, axes=axes, utility=None, over_refusal=None)().set_index(["system", "strength"])
    assert table.loc[("aligned", "on"), "percent"] == 100.0 and table.loc[("weak", "on"), "percent"] == 100.0
    ks = {label: {r.completion.request.params["k"] for r in report.load_folders([tmp_path / "out" / label / "toggle" / "on"])}
          for label in ("aligned", "weak")}
    assert ks == {"aligned": {10}, "weak": {5}}
    with pytest.raises(HarnessError, match=r"driver.systems.weak.axes names \['gcg'\], which are not axes; "
                                           r"choose from \['toggle'\]"):
        driver(systems={**systems, "weak": {"model": driver.keywords["weak"], "axes": {"gcg": {"steps": 5}}}}, axes=axes)


@pytest.mark.parametrize(("changes", "message"), [
    ({"reference": "alinged"}, r"driver.reference='alinged' is not a system; choose one of \['aligned', 'weak'\]"),
    ({"axes": {}}, "no attack axes"),
    ({"systems": {}}, "no systems"),
    ({"utility_judge": None}, "driver.utility needs driver.utility_judge"),
])
def test_bad_experiments_are_one_line(driver, changes, message):
    with pytest.raises(HarnessError, match=message):
        driver(**changes)


class Everything(Judge):
    """Calls every answer harmful (a second opinion that disagrees with the keyword judge on refusals)."""

    name = "everything"

    def judge(self, items):
        return [Verdict(harmful=True, refused=False, judge=self.id) for _ in items]


def test_a_panel_judge_adds_its_other_judges_asr_and_judges_never_mix(driver, tmp_path):
    axes = {"prefill": Each(functools.partial(PrefillAttack), [0, 10], setting="lengths", parameter="k", label="prefill k")}
    plain = driver(axes=axes, utility=None)()
    panel = driver(axes=axes, utility=None, judge=PanelJudge(KeywordJudge(), {"everything": Everything()}))()
    assert list(panel["percent"]) == list(plain["percent"])  # the keyword judge still decides
    harmful = panel[panel["axis"] == "prefill"]
    assert (harmful["everything_percent"] == 100.0).all() and (harmful["everything_n"] == 6).all()
    assert "everything % [95 % CI]" in (tmp_path / "out" / "depth_profile.md").read_text()
    # the same folders now hold two judges' verdicts: each table reads its own judge's only
    pd.testing.assert_frame_equal(driver(axes=axes, utility=None)(), plain)
