"""Standard safety SFT ("shallow" alignment): harmful request -> refusal, benign -> helpful.

Harmful prompts come from a training benchmark disjoint from evaluation (default: HarmBench
standard behaviors for training, AdvBench for evaluation). Helpful answers are the base
model's own greedy answers to benign instructions (AlpacaEval), so the utility anchors
teach no new style. The result is cached by recipe, e.g. `smollm2-aligned`.
"""

from __future__ import annotations

from typing import Any

from harness.answers import sampled_answers
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.errors import HarnessError
from harness.model import Model
from harness.refusals import refusal_for
from harness.training import Example, TrainSettings, train
from harness.types import Behavior, Message


def ask(b: Behavior) -> tuple[Message, ...]:
    return (Message(role="user", content=b.query()),)


class SafetySFT(Defense):
    name = "safety_sft"

    def __init__(self, harmful: Benchmark, benign: Benchmark, n_harmful: int = 150, n_benign: int = 150,
                 answer_tokens: int = 64, train: dict[str, Any] | None = None, suffix: str = "aligned") -> None:
        self.harmful = harmful
        self.benign = benign
        self.n_harmful = n_harmful
        self.n_benign = n_benign
        self.answer_tokens = answer_tokens
        try:
            self.settings = TrainSettings(**(train or {}))
        except Exception as exc:
            raise HarnessError(f"defense.train: {exc}") from None
        self.suffix = suffix

    def describe(self) -> dict[str, Any]:
        return {"defense": self.name, "harmful": self.harmful.name, "benign": self.benign.name, "n_harmful": self.n_harmful,
                "n_benign": self.n_benign, "answer_tokens": self.answer_tokens, "train": self.settings.key()}

    def refusal_examples(self) -> list[Example]:
        harmful = self.harmful.load()[: self.n_harmful]
        return [Example(messages=ask(b), response=refusal_for(b.id), kind="refusal") for b in harmful]

    def utility_examples(self, model: Model, weight: float = 1.0) -> list[Example]:
        benign = self.benign.load()[: self.n_benign]
        answers = sampled_answers(model, benign, max_tokens=self.answer_tokens)
        return [answers[b.id].example(ask(b), kind="utility", weight=weight) for b in benign if b.id in answers]

    def harden(self, model: Model) -> Model:
        examples = self.refusal_examples() + self.utility_examples(model)
        return train(model, examples, self.settings, name=f"{model.name}-{self.suffix}", recipe=self.describe())
