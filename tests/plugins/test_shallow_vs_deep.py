from __future__ import annotations

import functools

import pandas as pd

from benchmarks.advbench import AdvBench
from benchmarks.xstest import XSTest
from experiments.shallow_vs_deep import ShallowVsDeep
from harness.engine.hf import HFEngine
from harness.judge.keyword import KeywordJudge
from harness.training.loop import Example, TrainSettings, train
from harness.types import Message


def test_side_by_side_table(tiny, data_dir, tmp_path, monkeypatch):
    harmful = AdvBench(data_dir=data_dir, limit=3)
    refusals = [Example(messages=(Message(role="user", content=b.prompt),), response="I'm sorry, I can't help with that.")
                for b in harmful.load()]
    aligned = train(tiny, refusals, TrainSettings(lr=1e-2, epochs=30, batch_size=3, bf16=False), name="tiny-aligned")

    import experiments.shallow_vs_deep as svd

    monkeypatch.setattr(svd, "sample_answers", lambda model, behaviors, **kw: {b.id: b.target + " and more steps" for b in behaviors})
    driver = ShallowVsDeep(models={"base": tiny, "aligned": aligned}, harmful=harmful,
                           benign={"xstest_safe": XSTest(data_dir=data_dir, limit=2)}, judge=KeywordJudge(),
                           engine=functools.partial(HFEngine, progress=False), sampling={"max_tokens": 8},
                           out_dir=str(tmp_path), lengths=[0, 5], kl_pairs=3, kl_positions=6)
    table = driver()
    assert list(table["model"]) == ["base", "aligned"]
    assert {"ASR k=0", "ASR k=5", "answered xstest_safe", "KL share first 5 (%)"} <= set(table.columns)
    aligned_row = table.set_index("model").loc["aligned"]
    assert aligned_row["ASR k=0"] == 0.0  # it learned the refusal for these very prompts
    assert pd.isna(table.set_index("model").loc["base", "KL total"])  # the reference has no KL row
    for name in ("shallow_vs_deep.csv", "shallow_vs_deep.md", "shallow_vs_deep.png", "kl/aligned/kl.png"):
        assert (tmp_path / name).exists()
    assert "targets" in (tmp_path / "shallow_vs_deep.md").read_text().splitlines()[0]
    assert 0 < table.set_index("model").loc["aligned", "prefill tokens k=5"] <= 5  # the length actually prefilled
    assert (tmp_path / "tiny-aligned" / "advbench" / "prefill" / "records.jsonl").exists()


def test_prefill_source_is_the_targets_or_a_models_answers(tiny, data_dir, tmp_path):
    common = {"models": {"base": tiny}, "harmful": AdvBench(data_dir=data_dir, limit=1), "benign": {}, "judge": KeywordJudge(),
                  "engine": functools.partial(HFEngine, progress=False), "sampling": {}, "out_dir": str(tmp_path), "lengths": [0, 5, 40]}
    plain = ShallowVsDeep(**common).prefill_attack()
    assert plain.name == "prefill" and plain.source == "auto"
    assert ShallowVsDeep(**common).stem == "shallow_vs_deep"
    with_answers = ShallowVsDeep(**common, answers_from=tiny)
    assert with_answers.stem != "shallow_vs_deep" and tiny.name in with_answers.prefix_source  # never overwrites the plain run
    answers = with_answers.prefill_attack()
    assert answers.name == "prefill_answers" and list(answers.lengths) == [0, 5, 40]
    assert answers.describe()["answers_from"] == tiny.id and answers.answer_tokens >= 40
