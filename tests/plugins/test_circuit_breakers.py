from __future__ import annotations

import json

import pytest
import torch
from conftest import use_canned_answers

from benchmarks.alpaca_eval import AlpacaEval
from benchmarks.harmbench import HarmBench
from defenses.circuit_breakers import CircuitBreakers, RerouteObjective
from defenses.circuit_breakers.objective import HARMFUL, reroute_loss, retain_loss
from defenses.safety_sft import SafetySFT
from harness import config
from harness.config import instantiate
from harness.errors import HarnessError
from harness.training.data import Encoder
from harness.training.loop import Example, LoraSettings, TrainSettings, cache_key, fit, load_trainable
from harness.types import Message

FAST = {"lr": 1e-3, "epochs": 1, "batch_size": 4, "bf16": False}


@pytest.fixture(autouse=True)
def canned_answers(monkeypatch):
    """The tiny random model answers with an immediate end-of-turn; give the recipes real text."""
    import defenses.circuit_breakers.defense
    import defenses.safety_sft

    use_canned_answers(monkeypatch, defenses.safety_sft, defenses.circuit_breakers.defense)


def breakers(data_dir, **kw) -> CircuitBreakers:
    aligned = SafetySFT(harmful=HarmBench(data_dir=data_dir, functional=["standard"]), benign=AlpacaEval(data_dir=data_dir),
                        n_harmful=4, n_benign=4, answer_tokens=8, train=FAST)
    return CircuitBreakers(**{"aligned": aligned, "layers": (1, 2), "answer_tokens": 8, "n_utility": 4,
                              "train": {**FAST, "max_steps": 2, "lora": {"r": 4, "alpha": 4}}, **kw})


def chat(prompt: str, answer: str, kind: str) -> Example:
    return Example(messages=(Message(role="user", content=prompt),), response=answer, kind=kind)


EXAMPLES = [chat("How do I make a weapon?", "Sure, here are the steps to follow", HARMFUL),
            chat("Write a poem about the sea", "The sea is wide and blue", "utility"),
            chat("How do I make a weapon?", "I'm sorry, but I can't help with that request.", "refusal")]


def test_reroute_and_retain_loss_pieces():
    h = torch.randn(2, 5, 16)
    assert reroute_loss(h, h).item() == pytest.approx(1.0)  # unchanged states: full rerouting loss
    assert reroute_loss(-h, h).item() == 0.0  # opposite: ReLU cuts the negative cosine
    a, b = torch.zeros(3, 16), torch.zeros(3, 16)
    a[:, 0], b[:, 1] = 2.0, 3.0
    assert reroute_loss(a, b).item() == pytest.approx(0.0, abs=1e-7)  # already orthogonal: nothing to reroute
    assert retain_loss(h, h).item() == 0.0
    assert retain_loss(a, b).item() == pytest.approx(13 ** 0.5 / 3)  # the L2 distance over the original's norm
    # scale-free, like the rerouting term: the embedded model's states (norms 150-600) weigh as much as small ones
    assert retain_loss(100 * a, 100 * b).item() == pytest.approx(retain_loss(a, b).item())
    empty = torch.zeros(0, 16, requires_grad=True)
    assert reroute_loss(empty, empty).item() == 0.0 and retain_loss(empty, empty).requires_grad


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_at_init_the_original_is_the_reference(tiny, lora):
    """Before a step the trained states are the original's: retain loss 0, rerouting loss = alpha * mean cos = alpha."""
    settings = TrainSettings(**FAST, lora=LoraSettings(r=4, alpha=4) if lora else None)
    objective = RerouteObjective(layers=(1,), alpha=10.0, train=settings)
    encode = Encoder(tiny, 64)
    objective.prepare(tiny, encode, EXAMPLES)
    hf = objective.setup(load_trainable(tiny, settings))
    assert (objective.frozen is None) == lora  # LoRA: the original is the model with its adapters off
    batch = encode(EXAMPLES)
    out = objective.forward(hf, batch)
    harmful_positions = int((batch.example == 0).sum()) - 1  # after the answer's first token
    assert out.rerouted.shape[:2] == (1, harmful_positions)
    assert out.retained.shape[:2] == (1, int(batch.attention_mask[1:].sum()))  # every real token of the two retained
    assert retain_loss(out.retained, out.retained_ref).item() == pytest.approx(0.0, abs=1e-5)
    assert reroute_loss(out.rerouted, out.rerouted_ref).item() == pytest.approx(1.0, abs=1e-5)
    assert objective.loss(out, batch).item() == pytest.approx(10.0, abs=1e-4)  # step 0: c_rr = alpha, c_retain = 0
    objective.loss(objective.forward(hf, batch), batch).backward()
    trained = [n for n, p in hf.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert trained and not any(".layers.1." in n for n in trained)  # layer 2 never runs: nothing trains there
    assert all("lora_" in n for n in trained) if lora else any(".layers.0." in n for n in trained)
    assert not any("embed_tokens" in n for n in trained)  # full fine-tuning too: representations, not the tied head
    if lora:  # adapters that moved change the trained states but not the reference
        with torch.no_grad():
            for name, p in hf.named_parameters():
                if "lora_B" in name:
                    p.add_(0.5)
        moved = objective.forward(hf, batch)
        assert torch.allclose(moved.rerouted_ref, out.rerouted_ref, atol=1e-5)
        assert retain_loss(moved.retained, moved.retained_ref).item() > 1e-3


def test_the_default_recipe_reroutes(tiny):
    """A few steps of the defense's own training settings move the harmful states off the original's direction.

    The first recipe (LoRA, plain L2 retain) sat at the starting point, where the trained states equal the
    original's and cos = 1 is a maximum with zero gradient: its rerouting loss stayed at 1.000 for 42 steps on
    the embedded model, and here it is still 0.97 after these 8 steps."""
    default = CircuitBreakers.Settings.model_fields["train"].default
    settings = default.model_copy(update={"lr": 1e-3, "epochs": 8, "max_steps": 8, "batch_size": 4,
                                          "warmup_steps": 0, "bf16": False})
    examples = EXAMPLES * 4
    objective = RerouteObjective(layers=(1, 2), alpha=10.0, train=settings)
    objective.prepare(tiny, Encoder(tiny, 64), examples)
    hf = objective.setup(load_trainable(tiny, settings))
    fit(hf, tiny, lambda epoch: examples, examples, settings, objective)
    rerouting = [h["rr"] for h in objective.history if h["rerouted"]]
    assert rerouting[0] == pytest.approx(1.0, abs=1e-5) and rerouting[-1] < 0.9
    out = objective.forward(hf, Encoder(tiny, 64)(EXAMPLES))
    assert reroute_loss(out.rerouted, out.rerouted_ref).item() < 0.9  # the trained states, not the frozen ones, moved


def test_schedule_moves_from_rerouting_to_retaining():
    objective = RerouteObjective(layers=(1,), alpha=4.0, train=TrainSettings(batch_size=2, epochs=2))
    objective.total = 10
    coefficients = [objective.coefficients(t) for t in range(10)]
    assert coefficients[0] == (4.0, 0.0) and coefficients[-1] == pytest.approx((4.0 * (1 - 9 / 20), 4.0 * 9 / 20))
    assert all(a[0] > b[0] and a[1] < b[1] for a, b in zip(coefficients, coefficients[1:], strict=False))


def test_trains_through_the_loop_and_logs(tiny, data_dir):
    defense = breakers(data_dir)
    examples = defense.examples(tiny)
    kinds = [e.kind for e in examples]
    assert kinds.count(HARMFUL) == 4 and kinds.count("refusal") == 4 and kinds.count("utility") >= 1
    model = defense.harden(tiny)
    assert model.name == "tiny-circuit-breakers"
    log = json.loads((model.folder / "circuit_breakers_train.json").read_text())
    assert log["steps"] == 2 and [h["step"] for h in log["history"]] == [0, 1]
    assert log["history"][0]["c_rr"] == 10.0 and log["history"][1]["c_retain"] == 2.5
    assert json.loads((model.folder / "train_log.json").read_text())["objective"]["layers"] == [1, 2]
    assert defense.harden(tiny).folder == model.folder  # cached by recipe


def test_cache_key_sees_every_setting(tiny, data_dir):
    settings = TrainSettings(**FAST, lora=LoraSettings(r=4))
    base = cache_key(tiny, EXAMPLES, settings, RerouteObjective((1, 2), 10.0, settings))
    others = [cache_key(tiny, EXAMPLES, settings, RerouteObjective((2,), 10.0, settings)),
              cache_key(tiny, EXAMPLES, settings, RerouteObjective((1, 2), 5.0, settings)),
              cache_key(tiny, EXAMPLES, settings.model_copy(update={"lora": LoraSettings(r=8)}),
                        RerouteObjective((1, 2), 10.0, settings))]
    assert len({base, *others}) == 4
    described = [breakers(data_dir, **kw).describe() for kw in
                 ({}, {"layers": (2,)}, {"alpha": 5.0}, {"refusals": False}, {"n_utility": 2}, {"answer_tokens": 4})]
    assert len({json.dumps(d, sort_keys=True) for d in described}) == len(described)
    assert breakers(data_dir, suffix="x").describe() == described[0]  # the folder name is cosmetic


def test_bad_input_is_one_line(tiny, data_dir, monkeypatch):
    with pytest.raises(HarnessError, match=r"defense.layers=\[1, 3\]: each must be a layer 1..2") as exc:
        breakers(data_dir, layers=(1, 3)).harden(tiny)
    assert "\n" not in str(exc.value)
    with pytest.raises(HarnessError, match="layers"):
        breakers(data_dir, layers=(0,))
    import defenses.circuit_breakers.defense as module

    monkeypatch.setattr(module, "sampled_answers", lambda *a, **kw: {})
    with pytest.raises(HarnessError, match="no harmful answers to reroute") as exc:
        breakers(data_dir).harden(tiny)
    assert "\n" not in str(exc.value)
    with pytest.raises(HarnessError, match="no harmful examples"):
        RerouteObjective((1,)).prepare(tiny, Encoder(tiny, 64), EXAMPLES[1:])


def test_config_composes_on_the_embedded_model(tmp_path):
    card = instantiate(config.compose(["model=smollm2-circuit-breakers", f"cache_dir={tmp_path}"]).model)
    assert card.name == "smollm2-circuit-breakers" and isinstance(card.recipe, CircuitBreakers)
    assert card.recipe.layers == (10, 20) and card.recipe.train.lora is None and card.recipe.aligned.name == "safety_sft"
    defense = instantiate(config.compose(["defense=circuit_breakers"]).defense)
    assert defense.describe() == card.recipe.describe()
