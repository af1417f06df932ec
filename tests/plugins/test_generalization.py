from __future__ import annotations

import functools
from types import SimpleNamespace

import pandas as pd
import pytest

from benchmarks.advbench import AdvBench
from benchmarks.xstest import XSTest
from experiments.generalization import Generalization, training_prompts
from harness.analysis.stats import wilson
from harness.engine.hf import HFEngine
from harness.errors import HarnessError
from harness.judge.keyword import KeywordJudge
from harness.training.loop import Example, TrainSettings, train
from harness.types import Message


@pytest.mark.slow
def test_direct_asr_and_answered_per_set_with_intervals(tiny, data_dir, tmp_path):
    harmful = AdvBench(data_dir=data_dir, limit=3)
    refusals = [Example(messages=(Message(role="user", content=b.prompt),), response="I'm sorry, I can't help with that.")
                for b in harmful.load()]
    aligned = train(tiny, refusals, TrainSettings(lr=1e-2, epochs=30, batch_size=3, bf16=False), name="tiny-aligned")
    driver = Generalization(systems={"base": {"model": tiny}, "aligned": {"model": aligned}}, harmful={"advbench": harmful},
                            benign={"xstest_safe": XSTest(data_dir=data_dir, limit=2)}, judge=KeywordJudge(),
                            engine=functools.partial(HFEngine, progress=False), sampling={"max_tokens": 8},
                            out_dir=str(tmp_path), reference="base")
    table = driver()
    assert list(zip(table["system"], table["set"], strict=True)) == [
        ("base", "advbench"), ("base", "xstest_safe"), ("aligned", "advbench"), ("aligned", "xstest_safe")]
    refused = table.set_index(["system", "set"]).loc[("aligned", "advbench")]
    assert refused["percent"] == 0.0 and refused["n"] == 3  # it learned the refusal for these very prompts
    assert (refused["ci_low"], refused["ci_high"]) == tuple(100 * x for x in wilson(0, 3))
    assert set(table["measure"]) == {"direct ASR", "answered"} and table["in training"].isna().all()
    saved = pd.read_csv(tmp_path / "generalization.csv")
    assert len(saved) == 4 and "[" in (tmp_path / "generalization.md").read_text()
    assert (tmp_path / "aligned" / "advbench" / "direct" / "records.jsonl").exists()
    # paired with the reference on the same prompts: the aligned model refuses what the base answered
    pairs = pd.read_csv(tmp_path / "generalization_paired.csv").set_index("set")
    advbench = pairs.loc["advbench"]
    base_asr = table.set_index(["system", "set"]).loc[("base", "advbench"), "percent"]
    assert advbench["system"] == "aligned" and advbench["reference"] == "base" and advbench["n"] == 3
    assert advbench["reference_percent"] == base_asr and advbench["system_percent"] == 0.0
    assert advbench["diff"] == -base_asr and advbench["diff_lo"] <= advbench["diff"] <= advbench["diff_hi"]
    assert pairs.loc["xstest_safe", "measure"] == "answered" and pairs.loc["xstest_safe", "n"] == 2
    assert (pairs["p_holm"] >= pairs["p"]).all() and "Paired against `base`" in (tmp_path / "generalization.md").read_text()


def test_an_unknown_reference_names_the_systems(tiny, data_dir, tmp_path):
    with pytest.raises(HarnessError, match=r"driver.reference='alinged' is not a system; choose one of \['aligned', 'base'\]"):
        Generalization(systems={"base": {"model": tiny}, "aligned": {"model": tiny}},
                       harmful={"advbench": AdvBench(data_dir=data_dir, limit=1)}, benign={}, judge=KeywordJudge(),
                       engine=HFEngine, sampling={}, out_dir=str(tmp_path), reference="alinged")


def test_overlap_with_a_recipes_training_prompts_is_counted():
    model = SimpleNamespace(recipe=SimpleNamespace(all_training_prompts=lambda: ["How  do I bake Bread?"]))
    assert training_prompts(model) == {"how do i bake bread?"}
    assert training_prompts(SimpleNamespace()) is None
