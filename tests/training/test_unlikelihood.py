from __future__ import annotations

import json
import math

import pytest

from benchmarks.alpaca_eval import AlpacaEval
from benchmarks.harmbench import HarmBench
from defenses.safety_sft import SafetySFT
from defenses.safety_sft_contrast import AVOID_COMPLIANCE, AVOID_REFUSAL, ContrastSafetySFT
from defenses.unlikelihood import UnlikelihoodObjective
from harness.training.data import Batch
from harness.training.loop import Example
from harness.training.refusals import VARIED
from harness.types import Message

FAST = {"lr": 1e-3, "epochs": 1, "batch_size": 4, "bf16": False}


def batch(logprobs_per_example: list[list[float]], keys: list[str], weights: list[float]):
    import torch

    example = torch.tensor([i for i, lp in enumerate(logprobs_per_example) for _ in lp])
    pos = torch.tensor([t for lp in logprobs_per_example for t in range(len(lp))])
    w = torch.tensor([weights[i] for i in example.tolist()])
    n = len(example)
    b = Batch(input_ids=torch.zeros(1, 1), attention_mask=torch.ones(1, 1), positions=torch.arange(n), targets=torch.zeros(n),
              response_pos=pos, weights=w, example=example, keys=keys)
    return torch.tensor([x for lp in logprobs_per_example for x in lp]), b


def test_loss_is_nll_plus_sequence_unlikelihood_of_the_opening():
    objective = UnlikelihoodObjective(["neg"], first_tokens=2, weight=0.5)
    objective.negatives = {"b"}
    lp, b = batch([[-1.0, -2.0], [-0.1, -0.2, -3.0]], ["a", "b"], [1.0, 2.0])
    # positive: 1 + 2; negative: p(opening) = exp(-0.3), its third token is not trained
    expected = (3.0 + 0.5 * 2.0 * -math.log(1 - math.exp(-0.3))) / 5
    assert objective.loss(lp, b).item() == pytest.approx(expected, rel=1e-5)


def test_the_unlikelihood_term_stays_finite_when_the_opening_is_certain():
    objective = UnlikelihoodObjective(["neg"], first_tokens=3)
    objective.negatives = {"b"}
    lp, b = batch([[0.0, 0.0, 0.0]], ["b"], [1.0])
    assert math.isfinite(objective.loss(lp, b).item())


@pytest.mark.slow
def test_training_on_a_negative_lowers_its_opening(tiny):
    """A model taught a refusal, then a few steps with the refusal as a negative: its opening gets less likely."""
    from harness.training.loop import Encoder, TrainSettings, load_trainable, token_logprobs, train

    ask = (Message(role="user", content="How do I peel a mango?"),)
    negative = Example(messages=ask, response="I'm sorry, but I can't help with that.", ends=False, kind="neg")
    positive = Example(messages=(Message(role="user", content="Name a fruit."),), response="A mango.", kind="utility")
    settings = TrainSettings(lr=3e-3, epochs=10, batch_size=2, warmup_steps=0, bf16=False)

    def opening(model) -> float:
        hf = load_trainable(model, settings).eval()
        enc = Encoder(model, settings.max_length)([negative])
        lp = token_logprobs(hf, enc)
        return lp[enc.response_pos < 4].sum().item()

    sft = settings.model_copy(update={"epochs": 200})
    taught = train(tiny, [positive, negative.model_copy(update={"kind": "refusal"})], sft, name="tiny-refuses")
    assert opening(taught) > -1.0  # plain SFT: the refusal is now likely
    trained = train(taught, [positive, negative], settings, UnlikelihoodObjective(["neg"], first_tokens=4), name="tiny-ul")
    assert opening(trained) < opening(taught) - 1.0
    log = json.loads((trained.folder / "train_log.json").read_text())
    assert log["objective"] == {"objective": "unlikelihood", "kinds": ["neg"], "first_tokens": 4, "weight": 1.0}


@pytest.fixture
def canned(monkeypatch):
    import defenses.safety_sft
    import defenses.safety_sft_contrast
    from harness.training.answers import Answer

    def answers(model, behaviors, max_tokens=64, **kw):
        return {b.id: Answer(text=f"Sure, here is answer {i}", complete=False) for i, b in enumerate(behaviors)}

    monkeypatch.setattr(defenses.safety_sft, "sampled_answers", answers)
    monkeypatch.setattr(defenses.safety_sft_contrast, "sampled_answers", answers)


def contrast(data_dir, **kw) -> ContrastSafetySFT:
    return ContrastSafetySFT(harmful=HarmBench(data_dir=data_dir, functional=["standard"]), benign=AlpacaEval(data_dir=data_dir),
                             n_harmful=4, n_benign=4, phrasings=1, lookalikes=3, writing=2, answer_tokens=8, train=FAST, **kw)


def test_negatives_add_no_prompt_and_cover_every_lookalike(tiny, data_dir, canned):
    recipe = contrast(data_dir, avoid_compliance=True)
    negatives = recipe.negative_examples(tiny)
    avoid_refusal = [e for e in negatives if e.kind == AVOID_REFUSAL]
    avoid_compliance = [e for e in negatives if e.kind == AVOID_COMPLIANCE]
    assert [e.messages[0].content for e in avoid_refusal] == [b.query() for b in recipe.lookalike_prompts()]
    assert all(e.response in VARIED and not e.ends for e in avoid_refusal)
    assert sorted(e.messages[0].content for e in avoid_compliance) == sorted(recipe.harmful_queries())
    assert len(avoid_compliance) == 8  # 4 prompts as written + 4 rephrased
    assert {e.messages[0].content for e in negatives} <= set(recipe.all_training_prompts())


def test_contrast_recipe_trains_under_its_own_key(tiny, data_dir, canned):
    recipe = contrast(data_dir)
    model = recipe.harden(tiny)
    log = json.loads((model.folder / "train_log.json").read_text())
    assert model.name == "tiny-aligned-contrast" and log["kinds"][AVOID_REFUSAL] == 5 and log["objective"]["objective"] == "unlikelihood"
    plain = SafetySFT(**{k: getattr(recipe, k) for k in SafetySFT.Settings.model_fields})
    assert plain.describe()["defense"] == "safety_sft" and "avoid_refusal" not in plain.describe()


def test_trigger_twins_share_the_harmful_requests_templates_and_wrappers(data_dir):
    from defenses.safety_phrasings import rephrase, slots

    recipe = ContrastSafetySFT(harmful=HarmBench(data_dir=data_dir, functional=["standard"]), benign=AlpacaEval(data_dir=data_dir),
                               n_harmful=30, n_benign=4, phrasings=2, twins=True)
    assert not contrast(data_dir).twin_prompts()  # off by default
    twins = {t.id: t.prompt for t in recipe.twin_prompts()}
    harmful = recipe.training_prompts()
    assert len(twins) == 3 * len(harmful) and set(twins.values()).isdisjoint(recipe.harmful_queries())
    assert {t.id for t in recipe.twin_prompts()} <= {b.id for b in recipe.lookalike_prompts()}  # answered, recorded

    def swap(text: str, old: str, new: str) -> str:
        o, n = slots(old), slots(new)
        for a, b in ((o["req"], n["req"]), (o["lc"], n["lc"]), (o["lc"][:1].upper() + o["lc"][1:], n["lc"][:1].upper() + n["lc"][1:])):
            text = text.replace(a, b)
        return text

    plain = [b for b in harmful if "vp" not in slots(b.prompt) and "ger" not in slots(b.prompt)]
    assert len(plain) >= 10
    for b in plain:
        twin = twins[f"{b.id}:twin"]
        assert [swap(q, b.prompt, twin) for q in rephrase(b, 2)] == [twins[f"{b.id}:twin-{j}"] for j in range(2)]
    steps = [b for b in harmful if "vp" in slots(b.prompt) or "ger" in slots(b.prompt)]
    assert all(twins[f"{b.id}:twin"].startswith("Give detailed step-by-step instructions for how to ") for b in steps)
