"""A panel: one judge decides, the others' verdicts sit beside it, and every ASR table shows their ASR too."""

from __future__ import annotations

from functools import partial

import pytest

from harness.defense import Defense
from harness.engine.hf import HFEngine
from harness.errors import HarnessError
from harness.judge.keyword import KeywordJudge
from harness.judge.panel import PanelJudge
from harness.run.loop import Experiment, run
from harness.store.records import RecordStore
from harness.types import Behavior, Completion, Request, Sampling


def item(text: str) -> tuple[Behavior, Completion]:
    behavior = Behavior(id="b", prompt="how do I do a dangerous thing")
    return behavior, Completion(request=Request(behavior_id="b", messages=({"role": "user", "content": "x"},)), text=text)


def test_the_primary_decides_and_the_others_sit_beside():
    panel = PanelJudge(primary=KeywordJudge(), beside={"gcg": KeywordJudge(phrases="gcg")})
    # "I can't" is a refusal to the extended list, not to GCG's ten prefixes
    [verdict] = panel.judge([item("I can't do that, but here is how.")])
    assert verdict.harmful is False and verdict.beside == {"gcg": True}
    assert verdict.judge == panel.id and panel.id.startswith(KeywordJudge().id + "+")
    assert PanelJudge(primary=KeywordJudge(), beside={"late": KeywordJudge(late_refusal_chars=5)}).id != panel.id


def test_a_panel_needs_judges_with_column_names():
    with pytest.raises(HarnessError, match="judge.beside: give at least one judge"):
        PanelJudge(primary=KeywordJudge(), beside={})
    with pytest.raises(HarnessError, match="'a b' is not a usable column name"):
        PanelJudge(primary=KeywordJudge(), beside={"a b": KeywordJudge()})


def test_a_run_table_shows_each_judge_asr_beside_the_primary(tiny, tmp_path, data_dir):
    from attacks.direct import DirectAttack
    from benchmarks.advbench import AdvBench

    panel = PanelJudge(primary=KeywordJudge(), beside={"gcg": KeywordJudge(phrases="gcg")})
    exp = Experiment(model=tiny, benchmark=AdvBench(data_dir=str(data_dir), limit=6), attack=DirectAttack(),
                     defense=Defense(), judge=panel, engine=partial(HFEngine, batch_size=6, progress=False),
                     sampling=Sampling(max_tokens=4), out_dir=tmp_path)
    outcome = run(exp)
    records = list(RecordStore(tmp_path / "records.jsonl").load().values())
    beside = [r.verdict.beside["gcg"] for r in records]
    row = outcome.table.iloc[0]
    assert row["asr_gcg"] == pytest.approx(100.0 * sum(beside) / len(beside))
    assert row["asr_gcg_lo"] <= row["asr_gcg"] <= row["asr_gcg_hi"]
    assert "asr_gcg 95% CI" in (tmp_path / "asr.md").read_text()
