"""Harmful examples (Qi et al. 2024): harmful request -> a complying answer.

The answers are the unaligned base model's own (cached greedy samples, refusals dropped),
as the papers sampled theirs from a jailbroken model. Prompts default to HarmBench standard
behaviors, disjoint from the AdvBench evaluation prompts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from attacks.finetune_data.base import FinetuneSet, ask
from harness.benchmark import Benchmark
from harness.errors import DataError
from harness.model.base import Model
from harness.settings import Named, Ref, Settings
from harness.training.answers import Answer, sampled_answers
from harness.training.loop import Example
from harness.types import Behavior


class HarmfulSettings(Settings):
    harmful: Annotated[Benchmark, Named]  # the requests
    answer_model: Annotated[Model, Ref]  # whose answers are trained (an unaligned base that complies)
    n: int = Field(100, ge=1)
    answer_tokens: int = Field(64, ge=1)


class HarmfulExamples(FinetuneSet):
    name = "harmful"
    Settings = HarmfulSettings

    def pairs(self) -> list[tuple[Behavior, Answer]]:
        """Up to n (behavior, harmful answer) pairs; behaviors whose answer was a refusal are skipped."""
        behaviors = self.harmful.load()
        answers = sampled_answers(self.answer_model, behaviors, max_tokens=self.answer_tokens)
        pairs = [(b, answers[b.id]) for b in behaviors if b.id in answers][: self.n]
        if not pairs:
            raise DataError(f"finetune data {self.name}: {self.answer_model.name} refused every {self.harmful.name} prompt; "
                            "set attack.data.answer_model to a model that complies (an unaligned base)")
        return pairs

    def examples(self, model: Model) -> list[Example]:
        return [answer.example(ask(b), kind="harmful") for b, answer in self.pairs()]
