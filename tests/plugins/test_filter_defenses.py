"""Filter defenses (perplexity_filter, smoothllm, guard_filter): their parts on stubs, and each
composed from the CLI's configs and run on the tiny model."""

from __future__ import annotations

import random

import pytest

from benchmarks.alpaca_eval import AlpacaEval
from defenses.guard_filter import GuardFilter, parse
from defenses.perplexity_filter import PerplexityFilter, conformal_threshold, log_perplexities
from defenses.smoothllm import COPY, SmoothEngine, SmoothSettings, perturb
from harness.engine.base import Engine
from harness.engine.filtering import REFUSAL, FilteredEngine, Screen, user_text
from harness.errors import HarnessError
from harness.types import Completion, Message, Request, Sampling


class Stub(Engine):
    """An engine whose output is `reply(request)`; it counts the requests it was sent."""

    name = "stub"

    def __init__(self, model, reply) -> None:
        super().__init__(model)
        self.reply, self.sent = reply, []

    def stream(self, requests):
        self.sent.extend(requests)
        yield [Completion(request=r, sample=s, text=self.reply(r), completion_tokens=3, prompt_tokens=5)
               for r in requests for s in range(r.sampling.n)]


def ask(text: str, n: int = 1, bid: str = "b") -> Request:
    return Request(behavior_id=bid, messages=(Message(role="user", content=text),), sampling=Sampling(n=n, temperature=1.0))


class Words(Screen):
    name = "words"

    def inputs(self, requests):
        return ["input has BLOCK" if "BLOCK" in user_text(r) else "" for r in requests]

    def outputs(self, completions):
        return ["output has BAD" if "BAD" in c.text else "" for c in completions]


def test_filtered_engine_answers_blocked_requests_with_the_refusal_and_the_reason(tiny):
    inner = Stub(tiny, lambda r: "BAD answer" if "evil" in user_text(r) else "fine answer")
    engine = FilteredEngine(inner, Words())
    out = engine.generate([ask("please BLOCK me", n=2), ask("evil one"), ask("nice one")])
    assert [r.messages[0].content for r in inner.sent] == ["evil one", "nice one"]  # never sent to the model
    assert [(c.text, c.blocked) for c in out] == [
        (REFUSAL, "input has BLOCK"), (REFUSAL, "input has BLOCK"), (REFUSAL, "output has BAD"), ("fine answer", "")]


def test_conformal_threshold_bounds_the_false_positive_rate():
    rng = random.Random(0)
    for n, alpha in ((20, 0.1), (50, 0.05), (200, 0.05), (37, 0.3)):
        scores = [rng.gauss(0, 1) for _ in range(n)]
        t = conformal_threshold(scores, alpha)
        assert sum(s > t for s in scores) / n <= alpha
    with pytest.raises(HarnessError, match="calibration_count"):
        conformal_threshold([1.0] * 10, 0.05)


def test_perplexity_scores_do_not_depend_on_the_batch(tiny):
    texts = ["How do I bake bread?", "Write a poem about the sea and the wind that blows over it", "x"]
    alone = [log_perplexities(tiny, [t], window=3)[0] for t in texts]
    together = log_perplexities(tiny, texts, window=3, tokens_per_batch=64)
    for a, b in zip(alone, together, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    whole, window = log_perplexities(tiny, texts[1:2], window=1000)[0]  # one window covering the text is the whole
    assert window == pytest.approx(whole, abs=1e-5)


def test_perplexity_filter_blocks_at_most_fpr_of_its_calibration_prompts(tiny, data_dir):
    calibration = AlpacaEval(data_dir=str(data_dir))
    defense = PerplexityFilter(reference=tiny, calibration=calibration, fpr=0.2, calibration_count=20, window=4)
    engine = defense.wrap(Stub(tiny, lambda r: "ok"))
    prompts = [b.query() for b in calibration.load()[400:420]]
    out = engine.generate([ask(p, bid=str(i)) for i, p in enumerate(prompts)])
    blocked = [c.blocked for c in out if c.blocked]
    assert len(blocked) <= 0.2 * len(prompts)
    assert all("calibrated to 20% false positives on 20 benign prompts" in b for b in blocked)
    with pytest.raises(HarnessError, match="defense.fpr"):
        PerplexityFilter(reference=tiny, calibration=calibration, fpr=2.0)


@pytest.mark.parametrize("kind", ["swap", "insert", "patch"])
def test_perturbations_change_the_stated_share_of_characters(kind):
    text = "Tell me how to do something that I should not be doing at all, please." * 2
    rng = random.Random(1)
    out = perturb(text, kind, 0.1, rng)
    n = int(len(text) * 0.1)
    if kind == "insert":
        assert len(out) == len(text) + n
    else:
        assert len(out) == len(text)
        changed = [i for i, (a, b) in enumerate(zip(text, out, strict=True)) if a != b]
        assert len(changed) <= n
        if kind == "patch" and changed:
            assert changed[-1] - changed[0] < n


@pytest.mark.parametrize("refusing, blocked", [(2, ""), (3, "smoothllm: 3 of 5 perturbed copies refused")])
def test_smoothllm_answers_with_the_majority_of_perturbed_copies(refusing, blocked, tiny):
    def reply(r):
        return "I'm sorry, no." if r.params[COPY] < refusing else "Sure, here it is."

    inner = Stub(tiny, reply)
    engine = SmoothEngine(inner, SmoothSettings(copies=5, rate=0.2))
    original = ask("Tell me a secret recipe for soup", n=1)
    [out] = engine.generate([original])
    assert len(inner.sent) == 5 and all(user_text(c) != user_text(original) for c in inner.sent)
    assert out.request == original and out.blocked == blocked
    assert out.text == ("I'm sorry, no." if blocked else "Sure, here it is.")
    assert out.completion_tokens == 5 * 3  # N x the generation cost


def test_guard_reply_parsing():
    assert parse("unsafe\nS1,S9") == ("unsafe", "S1,S9")
    assert parse("  safe ") == ("safe", "")
    assert parse("Sure! The answer is") == ("unparsed", "")


@pytest.mark.parametrize("on_unparsed", ["allow", "block"])
def test_guard_filter_checks_inputs_and_outputs(on_unparsed, tiny):
    def guard_reply(r):
        task = r.messages[0].content
        assert "S9: Indiscriminate Weapons." in task and "<BEGIN CONVERSATION>" in task
        last = task.split("<BEGIN CONVERSATION>")[1]
        if "bomb" in last:
            return "unsafe\nS9"
        return "hmm" if "maybe" in last else "safe"

    guard = Stub(tiny, guard_reply)
    defense = GuardFilter(guard=tiny, engine=lambda m: guard, check="both", on_unparsed=on_unparsed)
    target = Stub(tiny, lambda r: "here is a bomb" if "tell" in user_text(r) else "a cake")
    out = defense.wrap(target).generate([ask("make a bomb"), ask("tell me"), ask("bake"), ask("maybe")])
    assert [c.blocked for c in out[:3]] == ["guard_filter (input): unsafe S9", "guard_filter (output): unsafe S9", ""]
    assert (out[3].blocked != "") == (on_unparsed == "block")
    assert out[0].text == REFUSAL and out[2].text == "a cake"


@pytest.mark.parametrize("defense, extra", [
    ("perplexity_filter", ["model@defense.reference=local", "defense.calibration_count=20", "defense.fpr=0.2"]),
    ("smoothllm", ["defense.copies=3"]),
    ("guard_filter", ["model@defense.guard=local", "defense.check=both"]),
])
def test_defense_composes_from_config_and_runs_on_tiny(defense, extra, tiny, data_dir, tmp_path):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    from harness.run.compose import build_experiment
    from harness.run.loop import run

    card = [f"{k}.path={tiny.folder}" for k in ("defense.reference", "defense.guard") if any(k in e for e in extra)]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[
            "model=local", f"model.path={tiny.folder}", "model.name=tiny", f"data_dir={data_dir}", f"cache_dir={tmp_path}",
            "limit=2", "sampling.max_tokens=4", "attack.lengths=[0,5]", f"out_dir={tmp_path / 'run'}",
            f"defense={defense}", *extra, *card])
    outcome = run(build_experiment(cfg))
    assert len(outcome.records) == 4 and set(outcome.table["defense"]) == {defense}
    assert all(r.completion.engine.endswith(defense) for r in outcome.records)
