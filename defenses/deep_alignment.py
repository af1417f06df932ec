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
from typing import Any

from defenses.safety_sft import SafetySFT, ask
from harness.answers import sample_answers
from harness.defense import Defense
from harness.errors import HarnessError
from harness.model import Model
from harness.refusals import refusal_for
from harness.training import Example, TrainSettings, train


class DeepAlignment(Defense):
    name = "deep_alignment"

    def __init__(self, aligned: SafetySFT | None, p_zero: float = 0.5, max_k: int = 100, alpha: float = 0.2,
                 answer_tokens: int = 128, n_utility: int | None = None, train: dict[str, Any] | None = None,
                 suffix: str = "deep", seed: int = 0) -> None:
        if not 0 <= p_zero <= 1 or not 0 < alpha < 1 or max_k < 1:
            raise HarnessError(f"defense: need 0 <= p_zero <= 1 (got {p_zero}), 0 < alpha < 1 (got {alpha}), max_k >= 1 (got {max_k})")
        self.aligned = aligned
        self.p_zero, self.max_k, self.alpha = p_zero, max_k, alpha
        self.answer_tokens = answer_tokens
        self.n_utility = n_utility
        self.settings = TrainSettings(**(train or {}))
        self.suffix = suffix
        self.seed = seed

    def describe(self) -> dict[str, Any]:
        return {"defense": self.name, "aligned": self.aligned.describe() if self.aligned else None, "p_zero": self.p_zero,
                "max_k": self.max_k, "alpha": self.alpha, "answer_tokens": self.answer_tokens, "seed": self.seed,
                "n_utility": self.n_utility,
                "train": self.settings.key()}

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
        return train(start, self.data(model), self.settings, name=f"{model.name}-{self.suffix}", recipe=self.describe())
