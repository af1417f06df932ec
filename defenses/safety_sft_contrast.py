"""Safety SFT with contrast: the `safety_sft` data, plus negatives trained to be unlikely.

- `avoid_refusal`: every benign look-alike the recipe answers (contrast questions, writing tasks,
  hand-written look-alikes, wrapped requests, borderline and everyday prompts) also trains a refusal
  of it as *unlikely* (its first `avoid_tokens` tokens; `defenses.unlikelihood`).
- `avoid_compliance`: every harmful training prompt, in every phrasing, also trains the base's own
  compliant opening as unlikely (the base's greedy first `avoid_tokens` tokens).

Plain SFT only raises the chosen response: on a benign look-alike most of the loss is the answer's
content, and the refuse-or-answer decision in the first tokens gets a small share of it. A negative
spends its whole loss on that decision. Same prompts as the `safety_sft` recipe it extends: the
negatives add no prompt, so the training/evaluation split is unchanged.
"""

from __future__ import annotations

from pydantic import Field

from defenses.safety_sft import SafetySFT, SafetySFTSettings
from defenses.unlikelihood import UnlikelihoodObjective
from harness.answers import sampled_answers
from harness.model import Model
from harness.refusals import VARIED, refusal_for
from harness.training import Example, train
from harness.types import Behavior, Message

AVOID_REFUSAL, AVOID_COMPLIANCE = "avoid_refusal", "avoid_compliance"


class ContrastSettings(SafetySFTSettings):
    avoid_refusal: bool = True  # benign look-alike -> a refusal, trained unlikely
    avoid_compliance: bool = False  # harmful prompt (every phrasing) -> the base's compliant opening, trained unlikely
    avoid_tokens: int = Field(6, ge=1)  # the opening's length, in tokens
    avoid_weight: float = Field(1.0, gt=0)  # the unlikelihood term's weight against the SFT term
    suffix: str = "aligned-contrast"


class ContrastSafetySFT(SafetySFT):
    name = "safety_sft_contrast"
    Settings = ContrastSettings

    def negative_examples(self, model: Model) -> list[Example]:
        out = []
        if self.avoid_refusal:
            out += [Example(messages=(Message(role="user", content=b.query()),), response=refusal_for(b.query(), VARIED),
                            ends=False, kind=AVOID_REFUSAL) for b in self.lookalike_prompts()]
        if self.avoid_compliance:
            harmful = [Behavior(id=f"harmful-{i}", prompt=q, label="harmful", source="training")
                       for i, q in enumerate(self.harmful_queries())]
            answers = sampled_answers(model, harmful, max_tokens=self.avoid_tokens)
            out += [answers[b.id].example((Message(role="user", content=b.prompt),), kind=AVOID_COMPLIANCE)
                    for b in harmful if b.id in answers]
        return out

    def harmful_queries(self) -> list[str]:
        """Every harmful user turn this recipe refuses (as written, rephrased, blunt)."""
        return [e.messages[0].content for e in self.refusal_examples()]

    def harden(self, model: Model) -> Model:
        examples = self.refusal_examples() + self.utility_examples(model) + self.negative_examples(model)
        objective = UnlikelihoodObjective((AVOID_REFUSAL, AVOID_COMPLIANCE), self.avoid_tokens, self.avoid_weight)
        return train(model, examples, self.train, objective, name=f"{model.name}-{self.suffix}", recipe=self.describe())
