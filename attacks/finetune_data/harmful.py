"""Harmful examples (Qi et al. 2024): harmful request -> a complying answer.

The answers are the unaligned base model's own (cached greedy samples, refusals dropped),
as the papers sampled theirs from a jailbroken model. Prompts default to HarmBench standard
behaviors, disjoint from the AdvBench evaluation prompts.
"""

from __future__ import annotations

from typing import Any

from attacks.finetune_data.base import FinetuneSet, ask
from harness.answers import Answer, sampled_answers
from harness.benchmark import Benchmark
from harness.errors import DataError
from harness.model import Model
from harness.training import Example
from harness.types import Behavior


class HarmfulExamples(FinetuneSet):
    name = "harmful"

    def __init__(self, harmful: Benchmark, answer_model: Model, n: int = 100, answer_tokens: int = 64) -> None:
        self.harmful = harmful
        self.answer_model = answer_model
        self.n = n
        self.answer_tokens = answer_tokens

    def describe(self) -> dict[str, Any]:
        return {"data": self.name, "harmful": self.harmful.name, "answer_model": self.answer_model.id, "n": self.n,
                "answer_tokens": self.answer_tokens}

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
