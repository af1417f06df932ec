"""The safety SFT's borderline benign and blunt harmful prompts, and the hand-written dev sets: stable,
distinct, and far from each other and from every evaluation set (no train/dev/test leak)."""

from __future__ import annotations

import re

import pytest

from benchmarks.dev_prompts import BLUNT_DEV, BORDERLINE_DEV
from defenses.borderline_prompts import blunt_harmful, borderline_benign, everyday_questions

# Words every short question shares; without them two prompts are close only if they share their topic.
STOP = set("a an the is what how do i to of in and or my me for can you why does are be it this that with on at by from "
           "was were should not".split())


def content(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower())) - STOP


def closest(mine: list[str], others: list[str]) -> tuple[float, str, str]:
    def jaccard(a: set[str], b: set[str]) -> float:
        return len(a & b) / max(len(a | b), 1)
    other_words = [(content(o), o) for o in others]
    return max((jaccard(content(m), w), m, o) for m in mine for w, o in other_words)


def test_lists_are_stable_distinct_and_start_with_every_kind():
    benign, harmful = borderline_benign(), blunt_harmful()
    assert benign == borderline_benign() and harmful == blunt_harmful()
    assert len(set(benign)) == len(benign) >= 100 and len(set(harmful)) == len(harmful) >= 100
    assert not set(benign) & set(harmful)
    # any prefix covers every kind (a recipe that takes the first n still sees definitions, history, fiction, ...)
    for start in ("What is", "What happened", "Write ", "How do I kill", "What are the arguments", "Create "):
        assert any(p.startswith(start) for p in benign[:12]), start
    kinds = ("seriously injure", "kidnap", "inferior", "naturally", "email account", "track where")
    assert sum(any(k in p for k in kinds) for p in harmful[:8]) >= 4  # violence, demeaning, private data interleaved


def test_dev_sets_are_far_from_training_prompts():
    from defenses.safety_phrasings import SAFE_LOOKALIKES

    score, dev, train = closest(list(BORDERLINE_DEV) + list(BLUNT_DEV),
                                borderline_benign() + blunt_harmful() + everyday_questions() + list(SAFE_LOOKALIKES))
    assert score < 0.5, (score, dev, train)


@pytest.mark.parametrize("which", ["training", "dev"])
def test_new_prompts_are_far_from_every_evaluation_set(data_dir, which):
    from benchmarks.advbench import AdvBench
    from benchmarks.harmbench import HarmBench
    from benchmarks.jbb import JailbreakBench
    from benchmarks.xstest import XSTest

    evaluation = [b.prompt for b in XSTest(data_dir=data_dir, labels=["safe", "unsafe"]).load()]
    evaluation += [b.prompt for split in ("harmful", "benign") for b in JailbreakBench(data_dir=data_dir, split=split).load()]
    evaluation += [b.prompt for b in AdvBench(data_dir=data_dir).load()]
    evaluation += [b.prompt for b in HarmBench(data_dir=data_dir, functional=["contextual"]).load()]
    mine = borderline_benign() + blunt_harmful() + everyday_questions() if which == "training" else list(BORDERLINE_DEV) + list(BLUNT_DEV)
    norm = {" ".join(p.lower().split()) for p in evaluation}
    assert not norm & {" ".join(p.lower().split()) for p in mine}
    score, _, _ = closest(mine, evaluation)
    assert score < 0.5, score  # the evaluation prompt is not printed: nobody should tune on it


def test_handwritten_dev_sets_load_with_their_labels():
    from benchmarks.derived import Derived

    blunt, borderline = Derived(kind="blunt").load(), Derived(kind="borderline").load()
    assert [b.prompt for b in blunt] == list(BLUNT_DEV) and {b.label for b in blunt} == {"harmful"}
    assert [b.prompt for b in borderline] == list(BORDERLINE_DEV) and {b.label for b in borderline} == {"benign"}
    assert blunt[0].source == "blunt" and Derived(kind="blunt").label == "harmful"


def test_a_recipe_trains_on_the_first_n_of_each_list(data_dir, tiny, monkeypatch):
    import defenses.safety_sft
    from benchmarks.alpaca_eval import AlpacaEval
    from benchmarks.harmbench import HarmBench
    from defenses.safety_sft import SafetySFT
    from harness.training.answers import Answer

    monkeypatch.setattr(defenses.safety_sft, "sampled_answers", lambda model, behaviors, **kw: {
        b.id: Answer(text="An answer.", complete=True) for b in behaviors})
    recipe = SafetySFT(harmful=HarmBench(data_dir=data_dir, split="test", functional=["standard"]),
                       benign=AlpacaEval(data_dir=data_dir), n_harmful=4, n_benign=4, borderline=7, blunt=5)
    refusals, answers = recipe.refusal_examples(), recipe.utility_examples(tiny)
    assert [e.messages[0].content for e in refusals if e.kind == "blunt"] == blunt_harmful()[:5]
    assert [e.messages[0].content for e in answers if e.kind == "borderline"] == borderline_benign()[:7]
    trained = set(recipe.all_training_prompts())
    assert set(blunt_harmful()[:5]) <= trained and set(borderline_benign()[:7]) <= trained
    assert not trained & (set(BORDERLINE_DEV) | set(BLUNT_DEV))
    key = recipe.describe()
    assert key["borderline"]["n"] == 7 and key["blunt"]["n"] == 5 and len(key["borderline"]["sha256"]) == 16
    assert SafetySFT(harmful=recipe.harmful, benign=recipe.benign).describe()["borderline"] == 0
    with pytest.raises(Exception, match="borderline"):
        SafetySFT(harmful=recipe.harmful, benign=recipe.benign, borderline=10_000)
