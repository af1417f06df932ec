"""Standard safety SFT ("shallow" alignment): harmful request -> refusal, benign -> helpful.

Harmful prompts come from a training benchmark disjoint from evaluation (default: HarmBench
standard behaviors for training, AdvBench for evaluation). Helpful answers are the base
model's own greedy answers to benign instructions (AlpacaEval), so the utility anchors
teach no new style. The result is cached by recipe, e.g. `smollm2-aligned`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from harness.answers import sample_answers
from harness.benchmark import Benchmark
from harness.defense import Defense
from harness.model import Model
from harness.refusals import refusal_for
from harness.settings import Named, Settings
from harness.training import Example, TrainKey, TrainSettings, train
from harness.types import Behavior, Message


def ask(b: Behavior) -> tuple[Message, ...]:
    return (Message(role="user", content=b.query()),)


class SafetySFTSettings(Settings):
    cosmetic = frozenset({"suffix"})
    harmful: Annotated[Benchmark, Named]  # harmful requests -> refusals
    benign: Annotated[Benchmark, Named]  # benign instructions -> the base's own answers
    n_harmful: int = Field(150, ge=1)
    n_benign: int = Field(150, ge=1)
    answer_tokens: int = Field(64, ge=1)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings()
    suffix: str = "aligned"  # the trained model's folder name: <base>-<suffix>


class SafetySFT(Defense):
    name = "safety_sft"
    Settings = SafetySFTSettings

    def refusal_examples(self) -> list[Example]:
        harmful = self.harmful.load()[: self.n_harmful]
        return [Example(messages=ask(b), response=refusal_for(b.id), kind="refusal") for b in harmful]

    def utility_examples(self, model: Model, weight: float = 1.0) -> list[Example]:
        benign = self.benign.load()[: self.n_benign]
        answers = sample_answers(model, benign, max_tokens=self.answer_tokens)
        return [Example(messages=ask(b), response=answers[b.id], kind="utility", weight=weight) for b in benign if b.id in answers]

    def harden(self, model: Model) -> Model:
        examples = self.refusal_examples() + self.utility_examples(model)
        return train(model, examples, self.train, name=f"{model.name}-{self.suffix}", recipe=self.describe())
