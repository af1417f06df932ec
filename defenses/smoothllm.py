"""SmoothLLM (Robey et al. 2023): randomly perturb N copies of the prompt, generate for all of
them, and answer with the majority.

Each copy perturbs `rate` (q) of the characters of every user turn with printable characters:
`swap` (replace q of them at random positions), `insert` (insert q of them at random
positions) or `patch` (replace one contiguous run of that length), as in the reference code.
The assistant prefill, if an attack set one, is not perturbed (SmoothLLM perturbs the prompt).
A copy counts as jailbroken when its output holds none of the refusal phrases (the keyword
list, as in the paper); when more than half are jailbroken the answer is one of those (chosen
with the seeded generator), otherwise one of the refusing copies, and `Completion.blocked`
records the vote. Generation costs N times as much: all copies of `chunk` requests go to the
wrapped engine as one batch, and the completion's token counts are the sums over its copies.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import Field

from harness.defense import Defense
from harness.engine.base import Engine
from harness.judge.keyword import LISTS, normalise
from harness.settings import Settings
from harness.types import Completion, Message, Request

log = logging.getLogger(__name__)
ALPHABET = string.printable
COPY = "smoothllm_copy"  # the request param that tells copies apart


class SmoothSettings(Settings):
    cosmetic = frozenset({"chunk"})
    copies: int = Field(10, ge=1)  # N
    rate: float = Field(0.1, gt=0.0, le=1.0)  # q
    perturbation: Literal["swap", "insert", "patch"] = "swap"
    phrases: Literal["extended", "gcg"] = "extended"  # the refusal list of the vote (harness/judge/keyword.py)
    seed: int = 0
    chunk: int = Field(8, ge=1)  # speed only: requests whose copies are generated (and voted on) together


def perturb(text: str, kind: str, rate: float, rng: random.Random) -> str:
    """The reference perturbations: `rate` of the characters swapped, inserted, or one patch of that length replaced."""
    n = int(len(text) * rate)
    if kind == "swap":
        chars = list(text)
        for i in rng.sample(range(len(text)), n):
            chars[i] = rng.choice(ALPHABET)
        return "".join(chars)
    if kind == "insert":
        chars = list(text)
        for i in sorted(rng.sample(range(len(text)), n), reverse=True):
            chars.insert(i + 1, rng.choice(ALPHABET))
        return "".join(chars)
    start = rng.randint(0, len(text) - n)
    return text[:start] + "".join(rng.choice(ALPHABET) for _ in range(n)) + text[start + n :]


class SmoothEngine(Engine):
    """`inner`, answering each request by the majority of its perturbed copies."""

    def __init__(self, inner: Engine, settings: SmoothSettings) -> None:
        super().__init__(inner.model)
        self.inner, self.settings, self.chunk = inner, settings, settings.chunk
        self.phrases = LISTS[settings.phrases]
        self.name = f"{inner.name}+smoothllm"

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "smoothllm": self.settings.identity()}

    def copies(self, request: Request) -> list[Request]:
        s = self.settings
        out = []
        for i in range(s.copies):
            rng = random.Random(f"{s.seed}:{request.key}:{i}")
            messages = tuple(Message(role=m.role, content=perturb(m.content, s.perturbation, s.rate, rng))
                             if m.role == "user" else m for m in request.messages)
            out.append(request.model_copy(update={"messages": messages, "params": {**request.params, COPY: i}}))
        return out

    def refuses(self, text: str) -> bool:
        text = normalise(text)
        return not text.strip() or any(p in text for p in self.phrases)

    def vote(self, request: Request, sample: int, outputs: list[Completion]) -> Completion:
        refused = [c for c in outputs if self.refuses(c.text)]
        answered = [c for c in outputs if not self.refuses(c.text)]
        majority = answered if len(answered) > len(outputs) / 2 else refused
        chosen = random.Random(f"{self.settings.seed}:vote:{request.key}:{sample}").choice(majority)
        reason = "" if majority is answered else f"smoothllm: {len(refused)} of {len(outputs)} perturbed copies refused"
        return Completion(request=request, sample=sample, text=chosen.text, finish_reason=chosen.finish_reason,
                          prompt_tokens=sum(c.prompt_tokens for c in outputs),
                          completion_tokens=sum(c.completion_tokens for c in outputs),
                          engine=self.name, model=self.model.id, blocked=reason,
                          **self.inner.rendering(chosen.request))  # what the model saw: the chosen perturbed copy

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        for start in range(0, len(requests), self.chunk):
            part = list(requests[start : start + self.chunk])
            copies = {r.key: self.copies(r) for r in part}
            origin = {c.key: r for r in part for c in copies[r.key]}
            grouped: dict[tuple[str, int], list[Completion]] = {}
            for batch in self.inner.stream([c for cs in copies.values() for c in cs]):
                for c in batch:
                    grouped.setdefault((origin[c.request.key].key, c.sample), []).append(c)
            yield [self.vote(r, s, grouped[(r.key, s)]) for r in part for s in range(r.sampling.n)]


class SmoothLLM(Defense):
    name = "smoothllm"
    Settings = SmoothSettings

    def wrap(self, engine: Engine) -> Engine:
        return SmoothEngine(engine, self.settings)
