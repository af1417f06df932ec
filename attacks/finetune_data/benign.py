"""Benign fine-tuning: ordinary task data that still erodes safety alignment (Qi et al. 2024).

`reference` answers come from the benchmark itself (GSM8K with solution=true: the worked
solutions); with `answer_model` set instead, answers are that model's own greedy answers
(for instruction sets without usable answers, e.g. AlpacaEval). `skip` leaves out the first
rows (e.g. those an alignment recipe already trained on).
"""

from __future__ import annotations

from typing import Any

from attacks.finetune_data.base import FinetuneSet, ask
from harness.answers import Answer, sampled_answers
from harness.benchmark import Benchmark
from harness.errors import DataError
from harness.model import Model
from harness.training import Example


class BenignSet(FinetuneSet):
    def __init__(self, benign: Benchmark, n: int = 100, skip: int = 0, answer_model: Model | None = None,
                 answer_tokens: int = 128) -> None:
        self.benign = benign
        self.n, self.skip = n, skip
        self.answer_model = answer_model
        self.answer_tokens = answer_tokens
        self.name = f"benign_{benign.name}"

    def describe(self) -> dict[str, Any]:
        return {"data": self.name, "benign": self.benign.name, "n": self.n, "skip": self.skip,
                "answer_model": self.answer_model.id if self.answer_model else None, "answer_tokens": self.answer_tokens}

    def examples(self, model: Model) -> list[Example]:
        behaviors = self.benign.load()[self.skip : self.skip + self.n]
        if self.answer_model is not None:
            answers = sampled_answers(self.answer_model, behaviors, max_tokens=self.answer_tokens)
        else:
            answers = {b.id: Answer(text=b.reference, complete=True) for b in behaviors if b.reference}
        examples = [answers[b.id].example(ask(b), kind="benign") for b in behaviors if b.id in answers]
        if not examples:
            raise DataError(f"finetune data {self.name}: no answers: the benchmark has no reference answers "
                            "(use gsm8k with solution=true) and no attack.data.answer_model is set")
        return examples
