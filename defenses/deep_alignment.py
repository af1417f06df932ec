"""Deep safety alignment by data augmentation (Qi et al. 2025, "safety recovery examples").

A recovery example is a harmful request x, the first k tokens of a harmful answer h (given
as assistant context, no loss), then a refusal r (trained): the model learns to return to a
refusal *from inside* a harmful answer, not only at its first token. k = 0 with probability
`p_zero`, else uniform in 1..`max_k` (capped at the answer's length), redrawn every epoch.
Utility anchors (benign request -> the base's own answer; `n_utility` of the aligned
recipe's, all by default) keep helpfulness; the safety term
is weighted `alpha`, the utility term 1 - alpha, as in the paper (alpha = 0.2).

As in the paper, training starts from the standard aligned model (the `aligned` recipe, by
default safety SFT on the same base), and the harmful answers are the unaligned base's own.
"""

from __future__ import annotations

import random
from typing import Annotated

from pydantic import Field

from defenses.safety_sft import SafetySFT, ask
from harness.defense import Defense
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Ref, Settings
from harness.training.answers import sample_answers
from harness.training.loop import Example, TrainKey, TrainSettings, train
from harness.training.refusals import refusal_for


class DeepAlignmentSettings(Settings):
    cosmetic = frozenset({"suffix"})
    aligned: Annotated[SafetySFT | None, Ref]  # the recipe of the model training starts from
    p_zero: float = Field(0.5, ge=0, le=1)  # probability of k = 0 (a plain refusal example)
    max_k: int = Field(100, ge=1)
    alpha: float = Field(0.2, gt=0, lt=1)  # weight of the safety term (utility: 1 - alpha)
    answer_tokens: int = Field(128, ge=1)
    n_utility: int | None = Field(None, ge=0)
    train: Annotated[TrainSettings, TrainKey] = TrainSettings()
    suffix: str = "deep"
    seed: int = 0


class DeepAlignment(Defense):
    name = "deep_alignment"
    Settings = DeepAlignmentSettings

    def all_training_prompts(self) -> list[str]:
        """The same user turns as the aligned recipe it starts from (it adds prefixes, not prompts)."""
        return self.aligned.all_training_prompts() if self.aligned else []

    def data(self, model: Model):
        """epoch -> examples: recovery/refusal examples (redrawn k) plus utility anchors."""
        harmful = self.aligned.training_prompts()
        answers = sample_answers(model, harmful, max_tokens=self.answer_tokens)  # the unaligned base complies
        tok = model.tokenizer
        answer_ids = {b.id: tok(answers[b.id], add_special_tokens=False).input_ids for b in harmful if b.id in answers}
        utility = self.aligned.utility_examples(model, weight=1 - self.alpha)[: self.n_utility]

        def examples(epoch: int) -> list[Example]:
            rng = random.Random(f"{self.seed}-{epoch}")
            out = []
            for b in harmful:
                ids = answer_ids.get(b.id, [])
                k = 0 if (rng.random() < self.p_zero or not ids) else min(rng.randint(1, self.max_k), len(ids))
                out.append(Example(messages=ask(b), prefix=tok.decode(ids[:k]), response=refusal_for(b.id),
                                   weight=self.alpha, kind="recovery" if k else "refusal"))
            return out + utility

        return examples

    def harden(self, model: Model) -> Model:
        if self.aligned is None:
            raise HarnessError("defense=deep_alignment needs defense.aligned (the recipe of the model it starts from)")
        start = self.aligned.harden(model)
        return train(start, self.data(model), self.train, name=f"{model.name}-{self.suffix}", recipe=self.describe())
