"""Prefilling attack (Qi et al. 2025, shallow safety alignment).

The assistant turn is opened by the model's own chat template and starts with the first k
tokens (in the *target model's* tokenizer) of a harmful answer: the behavior's harmful
prefix when the benchmark has one (HEx-PHI's harmful responses), else its affirmative
target ("Sure, here is ..."). The model continues from there. When the text is shorter than
k tokens the whole text is used and the real count is recorded (`Request.prefill_tokens`).

AdvBench and HarmBench targets are one short sentence (~15 tokens), so k = 20 or 40 cannot
go past it. `source: answers` prefills with the harmful answer another model gives to the
same request instead (`answers_from`, e.g. the unaligned base; sampled greedily once and
cached, refusals dropped), the way the shallow-alignment paper prefilled HEx-PHI's harmful
responses: `attack=prefill_answers`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.attack import Attack
from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Ref, Settings
from harness.types import Behavior, Request, Sampling

log = logging.getLogger(__name__)

class PrefillSettings(Settings):
    lengths: tuple[int, ...] = (0, 5, 10, 20)  # prefill lengths in the target model's tokens (sorted, unique)
    source: Literal["auto", "harmful_prefix", "target", "answers"] = "auto"
    answers_from: Annotated[Model | None, Ref] = None  # source=answers: whose greedy answers are prefilled
    answer_tokens: int = Field(64, ge=1)
    name: str = "prefill"  # the attack column of records and tables (attack=prefill_answers sets its own)

    @field_validator("lengths", mode="before")
    @classmethod
    def token_counts(cls, value: Any) -> Any:
        lengths = [value] if isinstance(value, int) else list(value)
        if not lengths or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in lengths):
            raise ValueError("prefill lengths are token counts, integers >= 0 (e.g. [0,5,10,20])")
        return tuple(sorted(set(lengths)))

    @model_validator(mode="before")
    @classmethod
    def answers_only_for_answers(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("source", "auto") != "answers":
            return {**values, "answers_from": None}  # a card left in the config is not used
        return values

    @model_validator(mode="after")
    def answers_available(self) -> PrefillSettings:
        if self.source == "answers" and self.answers_from is None:
            raise ValueError("attack.source=answers needs the model whose answers are prefilled: +model@attack.answers_from="
                             "<card> (e.g. smollm2, the unaligned base), or attack=prefill_answers")
        if self.source == "answers" and self.answer_tokens < max(self.lengths):
            raise ValueError(f"attack.answer_tokens={self.answer_tokens}: the answers must be at least as long as the "
                             f"largest prefill length ({max(self.lengths)} tokens)")
        return self


class PrefillAttack(Attack):
    Settings = PrefillSettings

    def __init__(self, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.name = self.settings.name

    def texts(self, behaviors: Sequence[Behavior]) -> Mapping[str, str]:
        """behavior id -> the harmful text whose first k tokens are prefilled ("" when there is none)."""
        if self.answers_from is not None:
            from harness.training.answers import sample_answers

            answers = sample_answers(self.answers_from, behaviors, max_tokens=self.answer_tokens)
            return {b.id: answers.get(b.id, "") for b in behaviors}
        if self.source == "auto":
            return {b.id: b.harmful_prefix or b.target for b in behaviors}
        return {b.id: getattr(b, self.source) or "" for b in behaviors}

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        out, missing = [], []
        texts = self.texts(behaviors) if any(self.lengths) else {}
        for b in behaviors:
            text = texts.get(b.id, "")
            if not text and any(self.lengths):
                missing.append(b.id)
            for k in self.lengths:
                if k and not text:
                    continue
                prefill, used = model.first_tokens(text, k) if k else ("", 0)
                out.append(self.ask(b, sampling, prefill=prefill, prefill_tokens=used, params={"k": k}))
        if missing and len(missing) == len(behaviors):
            what = f"harmful answer from {self.answers_from.name}" if self.answers_from else \
                "target or harmful prefix" if self.source == "auto" else self.source
            raise HarnessError(
                f"attack={self.name} with attack.lengths={self.lengths}: no behavior of this benchmark has a "
                f"{what} to prefill, so only k=0 could run. Use attack=prefill_answers (prefill another "
                f"model's own answers), map a target column (+benchmark.columns.target=<column> for a custom file), or attack=direct.")
        if missing:
            what = f"answer from {self.answers_from.name} (it refused or said nothing)" if self.answers_from else f"{self.source} text"
            log.warning("prefill: %d behaviors have no %s to prefill (e.g. %s); only k=0 runs for them",
                        len(missing), what, missing[0])
        return out
