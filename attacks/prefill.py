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

from harness.attack import Attack
from harness.errors import HarnessError, choices
from harness.model import Model
from harness.types import Behavior, Request, Sampling

log = logging.getLogger(__name__)

SOURCES = ("auto", "harmful_prefix", "target", "answers")


class PrefillAttack(Attack):
    name = "prefill"

    def __init__(self, lengths: Sequence[int] = (0, 5, 10, 20), source: str = "auto", answers_from: Model | None = None,
                 answer_tokens: int = 64, name: str = "prefill") -> None:
        lengths = list(lengths) if not isinstance(lengths, int) else [lengths]
        bad = [k for k in lengths if not isinstance(k, int) or k < 0]
        if bad or not lengths:
            raise HarnessError(f"attack.lengths={lengths}: prefill lengths are token counts, integers >= 0 (e.g. [0,5,10,20])")
        if source not in SOURCES:
            raise HarnessError(f"attack.source={source!r}: choose one of {choices(SOURCES)}")
        if source == "answers" and answers_from is None:
            raise HarnessError("attack.source=answers needs the model whose answers are prefilled: "
                               "+model@attack.answers_from=<card> (e.g. smollm2, the unaligned base), or attack=prefill_answers")
        if source == "answers" and answer_tokens < max(lengths):
            raise HarnessError(f"attack.answer_tokens={answer_tokens}: the answers must be at least as long as the largest "
                               f"prefill length ({max(lengths)} tokens)")
        self.name = name  # the attack column of records and tables (attack=prefill_answers sets its own)
        self.lengths = sorted(set(lengths))
        self.source = source
        self.answers_from = answers_from if source == "answers" else None
        self.answer_tokens = answer_tokens

    def describe(self):
        out = {"attack": self.name, "source": self.source}
        if self.answers_from is not None:
            out.update(answers_from=self.answers_from.id, answer_tokens=self.answer_tokens)
        return out

    def texts(self, behaviors: Sequence[Behavior]) -> Mapping[str, str]:
        """behavior id -> the harmful text whose first k tokens are prefilled ("" when there is none)."""
        if self.answers_from is not None:
            from harness.answers import sample_answers

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
