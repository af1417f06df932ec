"""Benign fine-tuning: ordinary task data that still erodes safety alignment (Qi et al. 2024).

`reference` answers come from the benchmark itself (GSM8K with solution=true: the worked
solutions); with `answer_model` set instead, answers are that model's own greedy answers
(for instruction sets without usable answers, e.g. AlpacaEval). `skip` leaves out the first
rows (e.g. those an alignment recipe already trained on).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from attacks.finetune_data.base import FinetuneSet, ask
from harness.benchmark import Benchmark
from harness.errors import DataError
from harness.model.base import Model
from harness.settings import Named, Ref, Settings
from harness.training.answers import Answer, sampled_answers
from harness.training.loop import Example


class BenignSettings(Settings):
    benign: Annotated[Benchmark, Named]
    n: int = Field(100, ge=1)
    skip: int = Field(0, ge=0)
    answer_model: Annotated[Model | None, Ref] = None  # null: the benchmark's reference answers (gsm8k solutions)
    answer_tokens: int = Field(128, ge=1)


class BenignSet(FinetuneSet):
    Settings = BenignSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.name = f"benign_{self.benign.name}"

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
