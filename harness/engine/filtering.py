"""Input/output filters around any engine: what every filter defense shares.

A `Screen` says, per request (before generation) and per completion (after), why it should be
blocked ("" lets it through). `FilteredEngine` wraps any engine with a screen: a blocked
request is never sent to the model and gets the refusal as its completion; a blocked output
is replaced by the refusal. Either way `Completion.blocked` records the screen's reason, so
a filter's refusals are judged and counted like the model's own (ASR on harmful benchmarks,
over-refusal on XSTest safe / JBB benign), and the report can count what the filter blocked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from harness.engine.base import Engine
from harness.types import Completion, Request

log = logging.getLogger(__name__)

REFUSAL = "I'm sorry, but I can't help with that request."


def user_text(request: Request) -> str:
    """What the user (the attacker) wrote: every user turn, joined. System prompts are the defender's."""
    return "\n".join(m.content for m in request.messages if m.role == "user")


def response_text(completion: Completion) -> str:
    """What the user sees of the assistant turn: the prefill and its continuation."""
    return completion.request.prefill + completion.text


class Screen:
    """A filter's decisions; subclasses override one or both checks."""

    name = "screen"

    def describe(self) -> dict[str, Any]:
        return {"screen": self.name}

    def inputs(self, requests: Sequence[Request]) -> list[str]:
        return [""] * len(requests)

    def outputs(self, completions: Sequence[Completion]) -> list[str]:
        return [""] * len(completions)


class FilteredEngine(Engine):
    """`inner`, with `screen` checking requests before and completions after generation."""

    def __init__(self, inner: Engine, screen: Screen, refusal: str = REFUSAL, chunk: int = 64) -> None:
        super().__init__(inner.model)
        self.inner = inner
        self.screen = screen
        self.refusal = refusal
        self.chunk = chunk
        self.name = f"{inner.name}+{screen.name}"

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "filter": self.screen.describe(), "refusal": self.refusal}

    def refused(self, request: Request, sample: int, reason: str, completion: Completion | None = None) -> Completion:
        return Completion(request=request, sample=sample, text=self.refusal, engine=self.name, model=self.model.id,
                          prompt_tokens=completion.prompt_tokens if completion else 0,
                          completion_tokens=completion.completion_tokens if completion else 0, blocked=reason)

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        for start in range(0, len(requests), self.chunk):
            part = list(requests[start : start + self.chunk])
            reasons = self.screen.inputs(part)
            blocked = [self.refused(r, s, why) for r, why in zip(part, reasons, strict=True) if why
                       for s in range(r.sampling.n)]
            passed = [r for r, why in zip(part, reasons, strict=True) if not why]
            if blocked:
                log.info("%s: blocked %d of %d requests at the input", self.screen.name, len(blocked), len(part))
                yield blocked
            for batch in self.inner.stream(passed) if passed else ():
                verdicts = self.screen.outputs(batch)
                out = [self.refused(c.request, c.sample, why, c) if why else c.model_copy(update={"engine": self.name})
                       for c, why in zip(batch, verdicts, strict=True)]
                caught = sum(bool(w) for w in verdicts)
                if caught:
                    log.info("%s: blocked %d of %d outputs", self.screen.name, caught, len(batch))
                yield out
