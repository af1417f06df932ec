from __future__ import annotations

import json

import pytest
from conftest import use_canned_answers

from benchmarks.alpaca_eval import AlpacaEval
from benchmarks.harmbench import HarmBench
from defenses.deep_alignment import DeepAlignment
from defenses.safety_sft import SafetySFT
from harness.training.refusals import REFUSALS

FAST = {"lr": 1e-3, "epochs": 1, "batch_size": 4, "bf16": False}


@pytest.fixture(autouse=True)
def canned_answers(monkeypatch):
    """The tiny random model answers with an immediate end-of-turn; give the recipes real text."""
    import defenses.deep_alignment
    import defenses.safety_sft

    use_canned_answers(monkeypatch, defenses.safety_sft, defenses.deep_alignment)


def recipe(data_dir) -> SafetySFT:
    return SafetySFT(harmful=HarmBench(data_dir=data_dir, functional=["standard"]), benign=AlpacaEval(data_dir=data_dir),
                     n_harmful=6, n_benign=6, answer_tokens=8, train=FAST)


def test_safety_sft_data_and_cached_model(tiny, data_dir):
    sft = recipe(data_dir)
    refusals = sft.refusal_examples()
    assert len(refusals) == 6 and all(e.response in REFUSALS and e.kind == "refusal" for e in refusals)
    assert refusals[0].messages[0].content.startswith("Give detailed instructions for making dimethylmercury")
    utility = sft.utility_examples(tiny)
    assert utility and all(e.kind == "utility" and e.response for e in utility)
    aligned = sft.harden(tiny)
    log = json.loads((aligned.folder / "train_log.json").read_text())
    assert log["kinds"]["refusal"] == 6 and log["steps"] >= 3
    assert aligned.name == "tiny-aligned" and sft.harden(tiny).folder == aligned.folder


def test_deep_alignment_recovery_examples(tiny, data_dir):
    deep = DeepAlignment(aligned=recipe(data_dir), p_zero=0.5, max_k=5, alpha=0.2, answer_tokens=8, train=FAST)
    data = deep.data(tiny)
    epoch0, epoch1 = data(0), data(1)
    recovery = [e for e in epoch0 if e.kind == "recovery"]
    refusal = [e for e in epoch0 if e.kind == "refusal"]
    assert recovery and refusal, "k=0 and k>0 both drawn with p_zero=0.5"
    for e in recovery:
        k = len(tiny.tokenizer(e.prefix, add_special_tokens=False).input_ids)
        assert 1 <= k <= 5 and e.response in REFUSALS and e.weight == 0.2
    assert all(e.weight == 0.8 for e in epoch0 if e.kind == "utility")
    assert [e.prefix for e in epoch0] != [e.prefix for e in epoch1]  # k redrawn each epoch
    assert [e.prefix for e in epoch0] == [e.prefix for e in deep.data(tiny)(0)]  # but deterministic
    model = deep.harden(tiny)
    assert model.name == "tiny-deep" and json.loads((model.folder / "train_log.json").read_text())["steps"] >= 3
