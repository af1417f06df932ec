"""Prefilling attack (Qi et al. 2025, shallow safety alignment).

The assistant turn is opened by the model's own chat template and starts with the first k
tokens (in the *target model's* tokenizer) of a harmful answer: the behavior's harmful
prefix when the benchmark has one (HEx-PHI's harmful responses), else its affirmative
target ("Sure, here is ..."). The model continues from there. When the text is shorter than
k tokens the whole text is used and the real count is recorded (`Request.prefill_tokens`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from harness.attack import Attack
from harness.errors import HarnessError, choices
from harness.model import Model
from harness.types import Behavior, Request, Sampling

log = logging.getLogger(__name__)

SOURCES = ("auto", "harmful_prefix", "target")


class PrefillAttack(Attack):
    name = "prefill"

    def __init__(self, lengths: Sequence[int] = (0, 5, 10, 20), source: str = "auto") -> None:
        lengths = list(lengths) if not isinstance(lengths, int) else [lengths]
        bad = [k for k in lengths if not isinstance(k, int) or k < 0]
        if bad or not lengths:
            raise HarnessError(f"attack.lengths={lengths}: prefill lengths are token counts, integers >= 0 (e.g. [0,5,10,20])")
        if source not in SOURCES:
            raise HarnessError(f"attack.source={source!r}: choose one of {choices(SOURCES)}")
        self.lengths = sorted(set(lengths))
        self.source = source

    def describe(self):
        return {"attack": self.name, "source": self.source}

    def text_for(self, behavior: Behavior) -> str:
        if self.source == "auto":
            return behavior.harmful_prefix or behavior.target
        return getattr(behavior, self.source)

    def requests(self, behaviors: Sequence[Behavior], model: Model, sampling: Sampling) -> list[Request]:
        out, missing = [], []
        for b in behaviors:
            text = self.text_for(b)
            if not text and any(self.lengths):
                missing.append(b.id)
            for k in self.lengths:
                if k and not text:
                    continue
                prefill, used = model.first_tokens(text, k) if k else ("", 0)
                out.append(self.ask(b, sampling, prefill=prefill, prefill_tokens=used, params={"k": k}))
        if missing:
            log.warning("prefill: %d behaviors have no %s text to prefill (e.g. %s); only k=0 runs for them",
                        len(missing), self.source, missing[0])
        return out
