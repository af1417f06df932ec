"""Contamination guard: a trained model records its training prompts; a run counts, marks and can drop them."""

from __future__ import annotations

import json
from functools import partial

import pandas as pd

from attacks.direct import DirectAttack
from benchmarks.advbench import AdvBench
from defenses.none import NoDefense
from harness.engine.hf import HFEngine
from harness.judge.keyword import KeywordJudge
from harness.run.loop import Experiment, run
from harness.training import contamination
from harness.training.loop import Example, TrainSettings, train
from harness.types import Message, Sampling

SETTINGS = TrainSettings(lr=1e-3, epochs=1, batch_size=4, warmup_steps=0, bf16=False)


def examples(prompts, kind):
    return [Example(messages=(Message(role="user", content=p),), response="No.", kind=kind) for p in prompts]


def evaluate(model, data_dir, out, exclude=False):
    bench = AdvBench(data_dir=data_dir, limit=10, limit_order="first", exclude_trained=exclude)
    return run(Experiment(model=model, benchmark=bench, attack=DirectAttack(), defense=NoDefense(), judge=KeywordJudge(),
                          engine=partial(HFEngine, batch_size=10, progress=False), sampling=Sampling(max_tokens=2), out_dir=out))


def test_a_trained_model_records_its_prompts_and_runs_count_the_overlap(tiny, data_dir, tmp_path, caplog):
    advbench = AdvBench(data_dir=data_dir, limit_order="first").load()
    # trained on the first 6 AdvBench prompts (re-cased and re-spaced: still the same prompt) and one benign one
    refusals = [f"  {b.prompt.upper()} " for b in advbench[:6]]
    aligned = train(tiny, examples(refusals, "refusal") + examples(["What is 2 + 2?"], "utility"), SETTINGS, name="tiny-c")
    stored = json.loads((aligned.folder / contamination.FILE).read_text())["prompts"]
    assert len(stored["refusal"]) == 6 and len(stored["utility"]) == 1
    # a fine-tuning attack on top: two more AdvBench prompts; the base's prompts carry over
    attacked = train(aligned, examples([b.prompt for b in advbench[8:10]], "harmful"), SETTINGS, name="tiny-c-ft")
    assert set(contamination.read(attacked.folder)) == {"harmful", "base refusal", "base utility"}

    caplog.set_level("WARNING")
    outcome = evaluate(attacked, data_dir, tmp_path / "run")
    table = pd.read_csv(tmp_path / "run" / "asr.csv")
    assert int(table["contaminated"].sum()) == 8  # advbench-0..5 (alignment) + advbench-8, 9 (the attack), of 10
    assert len(outcome.records) == 10
    assert sum("contamination: 8 of 10 advbench behaviors" in r.message for r in caplog.records) == 1
    assert "CONTAMINATED: 8 behaviors" in (tmp_path / "run" / "asr.md").read_text()

    dropped = evaluate(attacked, data_dir, tmp_path / "clean", exclude=True)
    assert sorted(r.behavior.id for r in dropped.records) == ["advbench-6", "advbench-7"]
    assert "contaminated" not in pd.read_csv(tmp_path / "clean" / "asr.csv").columns

    untrained = evaluate(tiny, data_dir, tmp_path / "base")
    assert len(untrained.records) == 10 and "contaminated" not in untrained.table.columns


def test_the_default_aligned_recipe_overlaps_harmbench_where_its_training_slice_does(data_dir):
    """smollm2-aligned's safety SFT refuses HarmBench's first 150 standard behaviors: the guard's hashes find
    exactly the evaluated behaviors whose ids are in that slice (counted here by id, not by hash)."""
    from benchmarks.alpaca_eval import AlpacaEval
    from benchmarks.harmbench import HarmBench
    from defenses.safety_sft import SafetySFT

    recipe = SafetySFT(harmful=HarmBench(functional=["standard"], data_dir=data_dir), benign=AlpacaEval(data_dir=data_dir),
                       n_harmful=150)
    prompts = contamination.example_prompts(recipe.refusal_examples())
    trained_ids = {b.id for b in HarmBench(functional=["standard"], data_dir=data_dir).load()[:150]}
    for limit_order in ("first", "stratified"):
        evaluated = HarmBench(data_dir=data_dir, limit=50, limit_order=limit_order).load()
        found = contamination.overlap(evaluated, prompts)
        assert set(found) == {b.id for b in evaluated if b.id in trained_ids}
    first = HarmBench(data_dir=data_dir, limit=50, limit_order="first").load()
    assert len(contamination.overlap(first, prompts)) == 50  # the README's example, before stratified sampling


def test_a_universal_suffix_marks_the_behaviors_it_was_optimized_on(tiny, data_dir, tmp_path):
    from attacks.gcg import GCGAttack

    behaviors = AdvBench(data_dir=data_dir, limit=5, limit_order="first").load()
    universal, individual = GCGAttack(mode="universal", train_behaviors=2), GCGAttack()
    assert [b.id for b in universal.optimized_on(behaviors)] == ["advbench-0", "advbench-1"]
    assert individual.optimized_on(behaviors) == []  # each suffix is optimized on its own behavior, by design
    kept = contamination.guard(tiny, behaviors, "advbench", exclude=True, out_dir=tmp_path, optimized_on=universal.optimized_on)
    assert kept == behaviors  # optimization behaviors are marked, never dropped
    assert contamination.load_run(tmp_path) == {("tiny", "advbench-0"), ("tiny", "advbench-1")}
