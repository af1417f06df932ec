"""Engines turn requests into completions.

`stream` yields completions batch by batch so the run loop can write each batch to disk as
soon as it exists; `generate` is the same, collected and in request order. `check_fits`
refuses, before anything is generated, a request whose prompt plus `max_tokens` does not
fit in the model's context (a model would otherwise run past its positions silently, or for
ever on an absurd `max_tokens`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from harness.errors import HarnessError
from harness.model.base import Model
from harness.settings import Configured
from harness.types import Completion, Request


class Engine(Configured):
    """`describe()` (part of the run hash) is the name and the settings minus cosmetic ones (speed, progress)."""

    name = "engine"
    option = "engine"

    def __init__(self, model: Model, *args: Any, **values: Any) -> None:
        super().__init__(*args, **values)
        self.model = model

    def preflight(self) -> None:
        """Check what the engine needs from outside (a package, a server, a key) before anything expensive
        runs; the run loop calls it first, on an engine built for the undefended model. Nothing by default."""

    def context_length(self) -> int | None:
        """Prompt + generated tokens the engine can hold; None when it cannot know (a remote server)."""
        return self.model.context_length

    def check_fits(self, requests: Sequence[Request]) -> None:
        """A HarnessError naming the first request whose prompt + max_tokens exceeds the context."""
        limit = self.context_length()
        if limit is None:
            return
        for r in requests:
            prompt = len(self.model.prompt_ids(r.messages, r.prefill))
            if prompt + r.sampling.max_tokens > limit:
                raise HarnessError(
                    f"behavior {r.behavior_id!r}: its prompt has {prompt} tokens and sampling.max_tokens="
                    f"{r.sampling.max_tokens}, {prompt + r.sampling.max_tokens} in all, more than the {limit} tokens "
                    f"engine={self.name} can hold for model {self.model.name!r} (its positions, or "
                    f"engine.max_model_len where set); lower sampling.max_tokens or shorten the prompt."
                )

    def stream(self, requests: Sequence[Request]) -> Iterator[list[Completion]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.check_fits(requests)
        order = {r.key: i for i, r in enumerate(requests)}
        out = [c for batch in self.stream(requests) for c in batch]
        return sorted(out, key=lambda c: (order[c.request.key], c.sample))
